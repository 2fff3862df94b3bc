"""The Dofbot side of the sim-to-real link: a TCP server that owns the arm's safety.

Runs on the Dofbot's Jetson Nano: standard library only, Python 3.6 compatible.
``python3 dofbot_server.pyz --arm armlib`` (see :mod:`dofbot_rl.sim2real.bundle`) or
``dofbot-rl serve --arm armlib``; ``--help`` lists the options.

Two ways to drive the arm:

* **direct** (the default): the controlling client streams COMMAND frames (joint targets);
* **policy mode** (``--policy policy.npz``, needs numpy): the server runs the exported
  policy itself (:class:`PolicyRunner` around
  :class:`dofbot_rl.sim2real.onboard.OnboardController`) at the control rate, toward a
  goal from ``--goal`` or from a client's GOAL frame (protocol v1.1). COMMAND frames are
  refused with ERROR ``POLICY_MODE`` unless the controlling client first takes over with
  a MODE ``direct`` frame; when that client leaves, the server holds (or releases) and
  returns to policy mode without a goal, so the arm stays still until the next GOAL.

Safety is decided here, whatever a client sends, and the policy goes through the same
rules:

* every target is clamped to :data:`LIMITS_LOWER` / :data:`LIMITS_UPPER`: the safe
  limits ``robot.SAFE_LIMITS_*`` for joints 1-5 and the gripper's full open/close range
  (``robot.TELEOP_LIMITS_*``); non-finite targets are ignored;
* the servos are written at most ``max_rate_hz`` times per second, and each write moves
  every joint at most ``max_step_deg`` from the previous write (a far target becomes a
  ramp), so the commanded speed is bounded by ``max_step_deg * max_rate_hz``;
* when the controlling client goes silent for ``heartbeat_ms`` or disconnects, the
  server stops following and holds the last pose it wrote (``on_timeout="hold"``) or
  switches servo torque off (``"release"``); in policy mode the policy, not the client,
  drives the arm, so it keeps going to its goal;
* one controlling client at a time; others are refused with a REFUSED frame (v1);
* malformed, truncated, oversized or hostile input closes that connection, never the
  server; frame sizes are bounded before anything is buffered.

All servo I/O happens on one thread (:class:`ArmController`); network sessions only hand
it targets and read its status.
"""

import argparse
import collections
import logging
import logging.handlers
import math
import select
import signal
import socket
import sys
import threading
import time
import typing

from .. import robot
from . import protocol as P

_log = logging.getLogger(__name__)

#: Longest move time the server passes to the servos (ms); longer requests are shortened.
MAX_SERVO_MOVE_MS = 2000
#: Move time (ms) of the first write after start-up or after torque was off: the arm may
#: be anywhere, so it is brought to the first target slowly.
HOME_MOVE_MS = 1000
#: Joint limits (rad, task order) every target is clamped to: ``robot.TELEOP_LIMITS_*``,
#: i.e. the safe limits ``robot.SAFE_LIMITS_*`` for joints 1-5 and the gripper's full
#: open/close range (-30..60 deg), so keyboard teleop opens and closes the real gripper.
LIMITS_LOWER = tuple(robot.TELEOP_LIMITS_LOWER)
LIMITS_UPPER = tuple(robot.TELEOP_LIMITS_UPPER)
#: Servo move time (ms) sent with the policy's targets in policy mode.
POLICY_MOVE_MS = 50
_NAN6 = (float("nan"),) * robot.NUM_DOF


def _servo_to_joint(index, servo_deg):
    """Joint angle (rad) of servo ``index`` (0-5) at ``servo_deg`` (deg), via ``robot``'s map."""
    neutral = robot.sim_to_servo_deg(robot.DEFAULT_DOF_POS)
    neutral[index] = servo_deg
    return robot.servo_deg_to_sim(neutral)[index]


class ControllerStatus(typing.NamedTuple):
    """A consistent snapshot of :class:`ArmController` (angles in rad, task order)."""

    target: tuple  #: clamped target being followed (NaN when holding / none)
    applied: tuple  #: last pose written to the servos (NaN when none / torque off)
    readback: tuple  #: latest servo readings (NaN where the last read failed / none yet)
    readback_age_ms: int  #: age of the oldest reading (ms, 65535 when never read)
    holding: bool  #: no live target: the last pose is held (or torque is off)
    torque_on: bool  #: False once torque has been released
    ramping: bool  #: the written pose has not reached the target yet (step limit)


class ArmController(object):
    """The one thread that talks to the arm; applies the safety rules of this module.

    Network sessions (and :class:`PolicyRunner`) call :meth:`command`, :meth:`link_lost`
    and :meth:`hold`; :meth:`run` (on its own
    thread) writes the servos at most ``max_rate_hz`` times per second, each write at most
    ``max_step_deg`` per joint from the previous one, and reads the servos back round-robin
    so that each is read about ``readback_hz`` times per second.

    Args:
        arm: a driver (:mod:`dofbot_rl.sim2real.arms`), speaking servo degrees.
        max_step_deg: largest change of any joint between two writes (deg, > 0).
        max_rate_hz: most servo writes per second (> 0).
        on_timeout: ``"hold"`` (write the last pose again and stop following) or
            ``"release"`` (torque off) when the link is lost.
        readback_hz: servo read-back rate per servo (Hz); 0 disables read-back.
        lower, upper: joint limits (rad) every target is clamped to (default
            :data:`LIMITS_LOWER` / :data:`LIMITS_UPPER`); within the hardware limits
            ``robot.JOINT_LIMITS_LOWER/UPPER``.
        clock: time source (s).

    Raises:
        ValueError: a bad argument (named).
    """

    def __init__(self, arm, max_step_deg=5.0, max_rate_hz=60.0, on_timeout="hold", readback_hz=20.0,
                 lower=LIMITS_LOWER, upper=LIMITS_UPPER, clock=time.monotonic):
        if not max_step_deg > 0:
            raise ValueError("max_step_deg must be > 0, got %r" % (max_step_deg,))
        if not max_rate_hz > 0:
            raise ValueError("max_rate_hz must be > 0, got %r" % (max_rate_hz,))
        if on_timeout not in ("hold", "release"):
            raise ValueError("on_timeout must be 'hold' or 'release', got %r" % (on_timeout,))
        if not readback_hz >= 0:
            raise ValueError("readback_hz must be >= 0, got %r" % (readback_hz,))
        for lo, hi, hw_lo, hw_hi, name in zip(lower, upper, robot.JOINT_LIMITS_LOWER, robot.JOINT_LIMITS_UPPER,
                                              robot.JOINT_NAMES):
            if not hw_lo <= lo <= hi <= hw_hi:
                raise ValueError("limits of %s must satisfy %g <= lower <= upper <= %g rad, got [%r, %r]"
                                 % (name, hw_lo, hw_hi, lo, hi))
        self.arm = arm
        self.max_step_rad = math.radians(max_step_deg)
        self.max_rate_hz = float(max_rate_hz)
        self.on_timeout = on_timeout
        self.readback_hz = float(readback_hz)
        self.lower, self.upper = tuple(lower), tuple(upper)
        self._clock = clock
        self._cv = threading.Condition(threading.Lock())
        self._target = None
        self._move_ms = int(round(2000.0 / self.max_rate_hz))
        self._applied = None
        self._holding = True
        self._torque_on = None  # unknown until the first write or release
        self._pending_loss = None  # (action "hold" | "release", reason)
        self._next_write = 0.0
        self._readback = list(_NAN6)
        self._readback_t = [None] * robot.NUM_DOF
        self._next_servo = 0
        #: ``(time s, "hold" | "release", reason)`` of the last 1000 holds / releases acted on.
        self.events = collections.deque(maxlen=1000)
        #: Number of holds / releases acted on since start.
        self.num_events = 0
        self.num_writes = 0
        self.num_io_errors = 0

    # -- called by network sessions ---------------------------------------------------

    def command(self, q, move_ms):
        """Set a new target (rad, task order) reached with ``move_ms`` (ms) per write.

        Returns:
            ``(flags, accepted)``: ``P.ACK_CLAMPED`` when the target was clamped into the
            limits, ``P.ACK_REJECTED`` (and ``accepted`` False) when it held non-finite
            values, in which case nothing changes.
        """
        vals = [float(v) for v in q]
        if len(vals) != robot.NUM_DOF or not all(math.isfinite(v) for v in vals):
            return P.ACK_REJECTED, False
        clamped = robot.clamp_to_limits(vals, self.lower, self.upper)
        flags = P.ACK_CLAMPED if clamped != vals else 0
        move_ms = min(max(int(move_ms), 0), MAX_SERVO_MOVE_MS)
        with self._cv:
            self._target = clamped
            self._move_ms = move_ms
            self._holding = False
            self._pending_loss = None
            self._cv.notify_all()
        return flags, True

    def link_lost(self, reason):
        """Stop following: the run loop holds the last pose or releases torque (``on_timeout``) at once."""
        self._stop_following(self.on_timeout, reason)

    def hold(self, reason):
        """Stop following and hold the last pose written, whatever ``on_timeout`` says."""
        self._stop_following("hold", reason)

    def _stop_following(self, action, reason):
        with self._cv:
            self._target = None
            self._holding = True
            self._pending_loss = (action, str(reason))
            self._cv.notify_all()

    def status(self):
        """Return a :class:`ControllerStatus` snapshot."""
        with self._cv:
            now = self._clock()
            if any(t is None for t in self._readback_t):
                age = P.AGE_UNKNOWN_MS
            else:
                age = min(int((now - min(self._readback_t)) * 1000.0), P.AGE_UNKNOWN_MS)
            target = tuple(self._target) if self._target is not None else _NAN6
            applied = tuple(self._applied) if self._applied is not None else _NAN6
            ramping = self._target is not None and self._applied != self._target
            return ControllerStatus(target, applied, tuple(self._readback), age, self._holding,
                                    self._torque_on is not False, ramping)

    def ack_flags(self, status):
        """ACK flag bits describing ``status`` (holding, torque off, ramping)."""
        flags = 0
        if status.holding:
            flags |= P.ACK_HOLDING
        if not status.torque_on:
            flags |= P.ACK_TORQUE_OFF
        if status.ramping:
            flags |= P.ACK_RAMPING
        return flags

    # -- the arm thread ---------------------------------------------------------------

    def run(self, stop_event):
        """Serve the arm until ``stop_event`` is set (call on a dedicated thread)."""
        if self.readback_hz > 0:
            for index in range(robot.NUM_DOF):
                self._read_one(index)
        read_period = 1.0 / (self.readback_hz * robot.NUM_DOF) if self.readback_hz > 0 else None
        next_read = self._clock()
        while True:
            job = None
            with self._cv:
                while job is None and not stop_event.is_set():
                    now = self._clock()
                    if self._pending_loss is not None:
                        job = ("loss", self._pending_loss)
                        self._pending_loss = None
                        break
                    write = self._plan_write(now)
                    if write is not None:
                        job = ("write",) + write
                        break
                    if read_period is not None and now >= next_read:
                        job = ("read", self._next_servo)
                        self._next_servo = (self._next_servo + 1) % robot.NUM_DOF
                        next_read = max(next_read + read_period, now - read_period)
                        break
                    wake = now + 0.1
                    if read_period is not None:
                        wake = min(wake, next_read)
                    if self._write_pending():
                        wake = min(wake, self._next_write)
                    self._cv.wait(max(wake - now, 0.0005))
            if job is None:
                return
            if job[0] == "loss":
                self._act_on_loss(*job[1])
            elif job[0] == "write":
                self._write(*job[1:])
            else:
                self._read_one(job[1])

    def final_action(self, reason):
        """Apply the link-loss action once more, synchronously (at server shutdown)."""
        with self._cv:
            self._target = None
            self._holding = True
            self._pending_loss = None
        self._act_on_loss(self.on_timeout, reason)

    def _write_pending(self):
        """Under the lock: a target is live and the written pose has not reached it."""
        if self._holding or self._target is None:
            return False
        return self._applied is None or self._torque_on is not True or self._applied != self._target

    def _plan_write(self, now):
        """Under the lock: next pose to write (committed as applied), or None."""
        if self._holding or self._target is None or now < self._next_write:
            return None
        fresh = self._applied is None or self._torque_on is not True
        if fresh:
            base = [r if math.isfinite(r) else d for r, d in zip(self._readback, robot.DEFAULT_DOF_POS)]
            base = robot.clamp_to_limits(base, self.lower, self.upper)
        else:
            base = self._applied
        step = self.max_step_rad
        pose = [b + min(max(t - b, -step), step) for t, b in zip(self._target, base)]
        pose = robot.clamp_to_limits(pose, self.lower, self.upper)
        if not fresh and pose == self._applied:
            return None
        self._applied = pose
        self._next_write = now + 1.0 / self.max_rate_hz
        move_ms = max(self._move_ms, HOME_MOVE_MS) if fresh else self._move_ms
        return pose, move_ms, self._torque_on is not True

    def _write(self, pose, move_ms, torque_first):
        try:
            if torque_first:
                self.arm.set_torque(True)
                with self._cv:
                    self._torque_on = True
            self.arm.write_servos_deg(robot.sim_to_servo_deg(pose), move_ms)
            self.num_writes += 1
        except Exception:  # a bus error must not stop the arm thread
            self.num_io_errors += 1
            _log.exception("servo write failed; the next write starts again from the read-back")
            with self._cv:
                self._applied = None

    def _act_on_loss(self, action, reason):
        try:
            if action == "release":
                self.arm.set_torque(False)
                with self._cv:
                    self._torque_on = False
                    self._applied = None
            else:
                with self._cv:
                    pose, move_ms, torque = self._applied, self._move_ms, self._torque_on
                if pose is not None and torque:
                    self.arm.write_servos_deg(robot.sim_to_servo_deg(pose), move_ms)
                    self.num_writes += 1
        except Exception:
            self.num_io_errors += 1
            _log.exception("servo %s failed", action)
        self.events.append((self._clock(), action, reason))
        self.num_events += 1
        _log.info("%s: %s", action, reason)

    def _read_one(self, index):
        try:
            value = self.arm.read_servo_deg(robot.SERVO_IDS[index])
        except Exception:
            self.num_io_errors += 1
            _log.exception("servo %d read failed", robot.SERVO_IDS[index])
            value = None
        q = float("nan")
        if value is not None and math.isfinite(value):
            q = _servo_to_joint(index, value)
        with self._cv:
            self._readback[index] = q
            self._readback_t[index] = self._clock()



class PolicyRunner(object):
    """Policy mode: runs an onboard policy on its own thread, through the arm's safety layer.

    Every ``1 / rate_hz`` s, while the mode is ``"policy"`` and a goal is set, one tick
    reads the :class:`ArmController`'s read-back, runs ``onboard.step`` and hands the
    targets to :meth:`ArmController.command` (clamp, step and rate limits apply). Without
    a goal, or in ``"direct"`` mode, it commands nothing and the arm holds. The runner
    starts in ``"policy"`` mode. Network sessions call :meth:`set_goal`,
    :meth:`take_over`, :meth:`resume` and :meth:`end_takeover`; only the runner's thread
    touches ``onboard``.

    Args:
        onboard: an :class:`~dofbot_rl.sim2real.onboard.OnboardController` (duck-typed:
            ``control_rate_hz``, ``reset()``, ``set_goal(pos, quat)``,
            ``step(readback_rad, now_s) -> 6 targets``).
        controller: the server's :class:`ArmController`.
        move_ms: servo move time sent with each target (ms).
        rate_hz: ticks per second; default ``onboard.control_rate_hz`` (60 Hz).
        goal, goal_quat: initial goal (m, base frame) and quaternion, or None.
        clock: time source (s).

    Raises:
        ValueError: a bad rate, move time or goal.
    """

    def __init__(self, onboard, controller, move_ms=POLICY_MOVE_MS, rate_hz=None, goal=None, goal_quat=None,
                 clock=time.monotonic):
        self.rate_hz = float(rate_hz or onboard.control_rate_hz)
        if not self.rate_hz > 0:
            raise ValueError("policy rate must be > 0 Hz, got %r" % (rate_hz,))
        if not 0 <= int(move_ms) <= MAX_SERVO_MOVE_MS:
            raise ValueError("policy move time must be in 0..%d ms, got %r" % (MAX_SERVO_MOVE_MS, move_ms))
        self.onboard = onboard
        self.controller = controller
        self.move_ms = int(move_ms)
        self._clock = clock
        self._lock = threading.Lock()
        self._mode = P.ServerMode.POLICY
        self._goal = None if goal is None else P.check_goal(goal, goal_quat)
        self._generation = 0  # bumped by every goal or mode change
        #: Policy ticks that commanded the arm, and ticks that failed (each failure holds the arm).
        self.num_ticks = 0
        self.num_errors = 0

    @property
    def mode(self):
        """``P.ServerMode.POLICY`` or ``P.ServerMode.DIRECT``."""
        return self._mode

    @property
    def goal(self):
        """``(pos, quat or None)`` of the goal followed, or None."""
        return self._goal

    def set_goal(self, pos, quat=None):
        """Set the goal (m, base frame; quaternion w, x, y, z or None); used at once in policy mode.

        In direct mode the goal is kept for when the policy resumes.

        Raises:
            ValueError: see :func:`dofbot_rl.sim2real.protocol.check_goal` (nothing changes).
        """
        goal = P.check_goal(pos, quat)
        with self._lock:
            self._goal = goal
            self._generation += 1
        _log.info("goal %s%s", ",".join("%.3f" % v for v in goal[0]),
                  "" if goal[1] is None else " quat " + ",".join("%.3f" % v for v in goal[1]))

    def take_over(self, reason):
        """Direct mode: pause the policy, forget its goal, hold the arm until the client commands."""
        with self._lock:
            if self._mode == P.ServerMode.DIRECT:
                return
            self._mode = P.ServerMode.DIRECT
            self._goal = None
            self._generation += 1
            self.controller.hold("direct mode: %s" % reason)

    def resume(self):
        """Policy mode again (with the goal set since, if any)."""
        with self._lock:
            if self._mode == P.ServerMode.POLICY:
                return
            self._mode = P.ServerMode.POLICY
            self._generation += 1
        _log.info("policy mode")

    def end_takeover(self):
        """The client that took over is gone: policy mode without a goal (the arm stays still)."""
        with self._lock:
            self._goal = None
            self._generation += 1
            self._mode = P.ServerMode.POLICY
        _log.info("policy mode (no goal until the next GOAL)")

    def run(self, stop_event):
        """Tick at ``rate_hz`` until ``stop_event`` is set (call on a dedicated thread)."""
        period = 1.0 / self.rate_hz
        running = None  # generation the onboard controller follows, None while idle
        next_t = self._clock()
        while not stop_event.is_set():
            with self._lock:
                gen, goal = self._generation, self._goal
                active = self._mode == P.ServerMode.POLICY and goal is not None
            if not active:
                running = None
            else:
                try:
                    if running is None:
                        self.onboard.reset()  # velocities and last action start again from rest
                    if gen != running:
                        self.onboard.set_goal(*goal)
                        running = gen
                    targets = self.onboard.step(self.controller.status().readback, self._clock())
                    with self._lock:  # a goal or mode change during the step wins
                        if self._generation == gen:
                            self.controller.command(targets, self.move_ms)
                            self.num_ticks += 1
                except Exception:  # a bad step must not kill the thread: hold and wait for a new goal
                    self.num_errors += 1
                    _log.exception("policy step failed: holding the arm until the next GOAL")
                    with self._lock:
                        if self._generation == gen:
                            self._goal = None
                            self._generation += 1
                    self.controller.hold("policy step failed")
                    running = None
            next_t += period
            delay = next_t - self._clock()
            if delay > 0:
                stop_event.wait(delay)
            elif delay < -period:  # fell behind (slow machine): do not try to catch up
                next_t = self._clock()


class _Close(Exception):
    """Ends a session; ``reply`` (a message or None) is sent first."""

    def __init__(self, reason, reply=None):
        Exception.__init__(self, reason)
        self.reply = reply


class Sim2RealServer(object):
    """TCP server for one Dofbot: v1 or legacy protocol, one controlling client.

    Binds in the constructor (``port=0`` picks a free port, see :attr:`address`); call
    :meth:`serve_forever` (blocking, e.g. on a thread in tests) and stop it with the
    ``stop_event`` passed there or :meth:`shutdown`.

    Args:
        arm: an arm driver (servo degrees), see :mod:`dofbot_rl.sim2real.arms`.
        host: interface to bind ("0.0.0.0" all IPv4, "127.0.0.1" local only).
        port: TCP port (0: any free port).
        protocol: ``"v1"`` or ``"legacy"``.
        token: shared secret (bytes) for the v1 HMAC challenge; None: no authentication.
        heartbeat_ms: silence (ms) after which the controlling client is considered gone.
        on_timeout: ``"hold"`` or ``"release"`` (see :class:`ArmController`).
        max_step_deg, max_rate_hz, readback_hz: see :class:`ArmController`.
        handshake_timeout_s: time (s) a new connection has to finish HELLO / AUTH.
        max_connections: simultaneous connections (others are refused at once).
        max_observers: simultaneous v1 observe-only (real->sim) clients.
        send_timeout_s: a client that does not read its ACKs for this long (s) is dropped.
        policy: an :class:`~dofbot_rl.sim2real.onboard.OnboardController` to run in policy
            mode (v1 only), or None (direct mode only).
        goal, goal_quat: the policy's first goal (m, base frame; quaternion w, x, y, z) or
            None (the arm stays still until a client's GOAL).
        policy_move_ms: servo move time (ms) sent with the policy's targets.

    Raises:
        ValueError: a bad argument (named).
        OSError: the address cannot be bound.
    """

    def __init__(self, arm, host="0.0.0.0", port=P.DEFAULT_PORT, protocol="v1", token=None,
                 heartbeat_ms=200, on_timeout="hold", max_step_deg=5.0, max_rate_hz=60.0,
                 readback_hz=20.0, handshake_timeout_s=2.0, max_connections=8, max_observers=2,
                 send_timeout_s=1.0, policy=None, goal=None, goal_quat=None, policy_move_ms=POLICY_MOVE_MS):
        if protocol not in ("v1", "legacy"):
            raise ValueError("protocol must be 'v1' or 'legacy', got %r" % (protocol,))
        if policy is not None and protocol != "v1":
            raise ValueError("policy mode needs protocol v1 (legacy clients cannot send goals)")
        if goal is not None and policy is None:
            raise ValueError("a goal needs a policy (--policy policy.npz)")
        if policy is not None and not readback_hz > 0:
            raise ValueError("policy mode needs servo read-back (readback_hz > 0), got %r" % (readback_hz,))
        if protocol == "legacy" and token is not None:
            raise ValueError("the legacy protocol has no authentication; a token needs protocol v1")
        if token is not None and not isinstance(token, bytes):
            raise ValueError("token must be bytes, got %r" % (type(token).__name__,))
        if not 10 <= int(heartbeat_ms) <= 0xFFFF:
            raise ValueError("heartbeat_ms must be in 10..65535, got %r" % (heartbeat_ms,))
        if int(max_connections) < 1:
            raise ValueError("max_connections must be >= 1, got %r" % (max_connections,))
        self.protocol = protocol
        self.token = token
        self.heartbeat_s = int(heartbeat_ms) / 1000.0
        self.handshake_timeout_s = float(handshake_timeout_s)
        self.max_connections = int(max_connections)
        self.max_observers = int(max_observers)
        self.send_timeout_s = float(send_timeout_s)
        self.controller = ArmController(arm, max_step_deg=max_step_deg, max_rate_hz=max_rate_hz,
                                        on_timeout=on_timeout, readback_hz=readback_hz)
        #: The :class:`PolicyRunner` of policy mode, or None.
        self.policy = None
        if policy is not None:
            self.policy = PolicyRunner(policy, self.controller, move_ms=policy_move_ms, goal=goal,
                                       goal_quat=goal_quat)
        self._welcome = P.Welcome(P.welcome_version(), int(heartbeat_ms),
                                  int(min(max(round(max_rate_hz), 1), 0xFFFF)),
                                  self.controller.lower, self.controller.upper)
        #: Move time (ms) for legacy targets, which carry none: two write periods.
        self._legacy_move_ms = int(round(2000.0 / max_rate_hz))
        family, socktype, proto, _, sockaddr = socket.getaddrinfo(
            host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)[0]
        self._sock = socket.socket(family, socktype, proto)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._sock.bind(sockaddr)
            self._sock.listen(16)
        except OSError as exc:
            self._sock.close()
            raise OSError(exc.errno, "cannot listen on %s:%s: %s" % (host, port, exc.strerror or exc))
        self._lock = threading.Lock()
        self._sessions = {}  # socket -> thread
        self._controlling = None
        self._observers = set()
        self._stopping = threading.Event()
        #: Clock time (s, ``time.monotonic``) of the last frame from the controlling client.
        self.last_control_frame_s = None
        self.stats = {"connections": 0, "refused": 0, "protocol_errors": 0, "frames": 0,
                      "commands": 0, "timeouts": 0, "goals": 0, "mode_changes": 0}

    @property
    def address(self):
        """``(host, port)`` actually bound."""
        return self._sock.getsockname()[:2]

    @property
    def has_controller(self):
        """True while a client holds the control slot."""
        with self._lock:
            return self._controlling is not None

    def shutdown(self):
        """Ask :meth:`serve_forever` to return (thread-safe)."""
        self._stopping.set()

    # -- main loop --------------------------------------------------------------------

    def serve_forever(self, stop_event=None, poll_s=0.05):
        """Accept and serve clients until ``stop_event`` (or :meth:`shutdown`) is set.

        On return every connection is closed (v1 clients get an ERROR ``SHUTDOWN``), the
        link-loss action (hold / release) has been applied once more, and the listening
        socket is closed: a server serves once.
        """
        stop_event = stop_event or self._stopping
        arm_stop = threading.Event()
        arm_thread = threading.Thread(target=self.controller.run, args=(arm_stop,),
                                      name="dofbot-arm", daemon=True)
        arm_thread.start()
        policy_thread = None
        if self.policy is not None:
            policy_thread = threading.Thread(target=self.policy.run, args=(arm_stop,), name="dofbot-policy",
                                             daemon=True)
            policy_thread.start()
        host, port = self.address
        _log.info("serving %s on %s:%d (heartbeat %d ms, on timeout %s, auth %s, %s)", self.protocol, host,
                  port, int(self.heartbeat_s * 1000), self.controller.on_timeout,
                  "token" if self.token else "none", self._mode_line())
        try:
            while not (stop_event.is_set() or self._stopping.is_set()):
                try:
                    readable, _, _ = select.select([self._sock], [], [], poll_s)
                    if not readable:
                        continue
                    conn, peer = self._sock.accept()
                except OSError as exc:
                    _log.warning("accept failed: %s", exc)
                    time.sleep(poll_s)
                    continue
                self._start_session(conn, peer)
        finally:
            self._stopping.set()
            self._sock.close()
            with self._lock:
                threads = list(self._sessions.values())
            for thread in threads:
                thread.join(timeout=2.0)
            arm_stop.set()
            if policy_thread is not None:
                policy_thread.join(timeout=2.0)
            arm_thread.join(timeout=2.0)
            self.controller.final_action("server stopping")
            _log.info("stopped")

    def _mode_line(self):
        if self.policy is None:
            return "direct mode"
        goal = self.policy.goal
        return "policy mode at %.0f Hz, goal %s" % (
            self.policy.rate_hz, "none (waiting for GOAL)" if goal is None else ",".join("%.3f" % v for v in goal[0]))

    def _start_session(self, conn, peer):
        with self._lock:
            full = len(self._sessions) >= self.max_connections
            if not full:
                self.stats["connections"] += 1
                thread = threading.Thread(target=self._session, args=(conn, peer),
                                          name="dofbot-session", daemon=True)
                self._sessions[conn] = thread
        if full:
            self.stats["refused"] += 1
            _log.warning("%s refused: %d connections open", _peer(peer), self.max_connections)
            if self.protocol == "v1":
                conn.settimeout(0.2)
                self._try_send(conn, P.Refused(P.ErrorCode.TOO_MANY_CONNECTIONS, "too many connections"))
            conn.close()
            return
        thread.start()

    def _session(self, conn, peer):
        reason, reply = "closed", None
        try:
            conn.settimeout(self.send_timeout_s)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.protocol == "v1":
                reason = self._v1_session(conn)
            else:
                reason = self._legacy_session(conn)
        except _Close as close:
            reason, reply = str(close), close.reply
        except OSError as exc:
            reason = "socket error: %s" % exc
        except Exception:  # a bug must not take the server down; log it loudly
            _log.exception("session %s failed", _peer(peer))
            reason = "internal error"
        finally:
            self._release(conn, reason)  # hold first, then tell the client why
            if reply is not None and self.protocol == "v1":  # legacy clients get no replies
                self._try_send(conn, reply)
            try:
                conn.close()
            except OSError:
                pass
            _log.info("%s: session ended: %s", _peer(peer), reason)

    def _release(self, conn, reason):
        with self._lock:
            if self._controlling is conn:
                if self.policy is not None and self.policy.mode == P.ServerMode.POLICY:
                    # The policy drives the arm, not this client: it keeps going to its goal.
                    _log.info("controlling client gone (%s); the policy keeps driving", reason)
                else:
                    # Hold first, then free the slot: a new controller can only start after.
                    self.controller.link_lost("%s (controlling client)" % reason)
                    if self.policy is not None:
                        self.policy.end_takeover()
                self._controlling = None
            self._observers.discard(conn)
            self._sessions.pop(conn, None)

    def _claim(self, conn, role):
        with self._lock:
            if role == P.Role.CONTROL:
                if self._controlling is None:
                    self._controlling = conn
                    return True
                return False
            if len(self._observers) < self.max_observers:
                self._observers.add(conn)
                return True
            return False

    def _try_send(self, conn, msg):
        try:
            conn.sendall(P.encode(msg))
        except OSError:
            pass

    def _recv(self, conn, deadline):
        """Wait for data until ``deadline``: the bytes, b"" on EOF, None on timeout.

        Raises:
            _Close: the server is stopping.
        """
        while not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            readable, _, _ = select.select([conn], [], [], min(remaining, 0.1))
            if readable:
                return conn.recv(4096)
        raise _Close("server stopping", P.Error(P.ErrorCode.SHUTDOWN, "server stopping"))

    # -- v1 ---------------------------------------------------------------------------

    def _v1_session(self, conn):
        decoder = P.FrameDecoder()
        state, role, nonce = "hello", None, None
        deadline = time.monotonic() + self.handshake_timeout_s
        while True:
            data = self._recv(conn, deadline)
            if data is None:
                self.stats["timeouts"] += 1
                if state == "live":
                    why = "no frame for %d ms" % int(self.heartbeat_s * 1000)
                    raise _Close("heartbeat timeout", P.Error(P.ErrorCode.TIMEOUT, why))
                raise _Close("handshake timeout", P.Error(P.ErrorCode.TIMEOUT, "handshake not finished in time"))
            if not data:
                return "client closed the connection"
            try:
                messages = decoder.feed(data)
            except P.ProtocolError as exc:
                self.stats["protocol_errors"] += 1
                reply = (P.Refused if state != "live" else P.Error)(exc.code, str(exc))
                raise _Close("protocol error: %s" % exc, reply)
            for msg in messages:
                self.stats["frames"] += 1
                if state == "hello":
                    if not isinstance(msg, P.Hello):
                        raise _Close("expected HELLO", P.Error(P.ErrorCode.UNEXPECTED,
                                                               "expected HELLO, got %s" % type(msg).__name__))
                    role = msg.role
                    if self.token is not None:
                        nonce = P.new_nonce()
                        conn.sendall(P.encode(P.Challenge(nonce)))
                        state = "auth"
                        continue
                elif state == "auth":
                    if not isinstance(msg, P.Auth):
                        raise _Close("expected AUTH", P.Error(P.ErrorCode.UNEXPECTED,
                                                              "expected AUTH, got %s" % type(msg).__name__))
                    if not P.verify_mac(self.token, nonce, role, msg.mac):
                        self.stats["refused"] += 1
                        raise _Close("authentication failed", P.Refused(P.ErrorCode.AUTH, "authentication failed"))
                else:
                    self._v1_live(conn, role, msg)
                    deadline = time.monotonic() + self.heartbeat_s
                    if role == P.Role.CONTROL:
                        self.last_control_frame_s = deadline - self.heartbeat_s
                    continue
                # HELLO without token, or AUTH verified: open the session.
                if not self._claim(conn, role):
                    self.stats["refused"] += 1
                    what = "another client controls the arm" if role == P.Role.CONTROL else "observer slots full"
                    role = None
                    raise _Close("refused: busy", P.Refused(P.ErrorCode.BUSY, what))
                conn.sendall(P.encode(self._welcome))
                state = "live"
                deadline = time.monotonic() + self.heartbeat_s

    def _v1_live(self, conn, role, msg):
        name = type(msg).__name__.upper()
        if isinstance(msg, P.Heartbeat):
            flags, seq = P.ACK_HEARTBEAT, msg.seq
        elif not isinstance(msg, (P.Command, P.Goal, P.Mode)):
            raise _Close("unexpected %s" % name, P.Error(P.ErrorCode.UNEXPECTED, "unexpected %s in a session" % name))
        elif role != P.Role.CONTROL:
            raise _Close("observer sent %s" % name,
                         P.Error(P.ErrorCode.UNEXPECTED, "observers cannot send %s (connect as controller)" % name))
        elif isinstance(msg, P.Command):
            if self.policy is not None and self.policy.mode == P.ServerMode.POLICY:
                raise _Close("COMMAND refused in policy mode", P.Error(
                    P.ErrorCode.POLICY_MODE, "policy mode: the server's policy drives the arm; send GOAL, "
                                             "or MODE direct to take over first"))
            self.stats["commands"] += 1
            flags, _ = self.controller.command(msg.q, msg.move_ms)
            seq = msg.seq
        else:
            flags, seq = self._v1_policy_frame(msg), msg.seq
        status = self.controller.status()
        flags |= self.controller.ack_flags(status)
        if self.policy is not None and self.policy.mode == P.ServerMode.POLICY:
            flags |= P.ACK_POLICY
        conn.sendall(P.encode(P.Ack(seq, flags, status.readback_age_ms, status.target, status.applied,
                                    status.readback)))

    def _v1_policy_frame(self, msg):
        """GOAL or MODE from the controlling client; returns ACK flags (``ACK_REJECTED`` for a bad goal)."""
        if self.policy is None:
            if isinstance(msg, P.Mode) and msg.mode == P.ServerMode.DIRECT:
                return 0  # already direct: nothing to take over
            raise _Close("%s without a policy" % type(msg).__name__.upper(), P.Error(
                P.ErrorCode.NO_POLICY, "this server runs no policy (start it with --policy policy.npz)"))
        if isinstance(msg, P.Goal):
            self.stats["goals"] += 1
            try:
                self.policy.set_goal(msg.pos, msg.quat)
            except ValueError as exc:
                _log.warning("goal rejected: %s", exc)
                return P.ACK_REJECTED
            return 0
        self.stats["mode_changes"] += 1
        if msg.mode == P.ServerMode.DIRECT:
            self.policy.take_over("the controlling client took over")
        else:
            self.policy.resume()
        return 0

    # -- legacy -----------------------------------------------------------------------

    def _legacy_session(self, conn):
        if not self._claim(conn, P.Role.CONTROL):
            self.stats["refused"] += 1
            return "refused: another client controls the arm"
        decoder = P.LegacyDecoder()
        following = False
        deadline = time.monotonic() + self.heartbeat_s
        while True:
            data = self._recv(conn, deadline)
            if data is None:  # silence: hold, but keep the connection (legacy clients never reconnect)
                if following:
                    self.stats["timeouts"] += 1
                    self.controller.link_lost("legacy client silent for %d ms" % int(self.heartbeat_s * 1000))
                    following = False
                deadline = time.monotonic() + 3600.0
                continue
            if not data:
                return "client closed the connection"
            for servo in decoder.feed(data):
                self.stats["frames"] += 1
                try:
                    q = robot.servo_deg_to_sim(servo)
                except ValueError:
                    self.stats["protocol_errors"] += 1
                    continue
                self.stats["commands"] += 1
                self.controller.command(q, self._legacy_move_ms)
                following = True
                deadline = time.monotonic() + self.heartbeat_s
                self.last_control_frame_s = deadline - self.heartbeat_s


def _peer(peer):
    try:
        return "%s:%d" % (peer[0], peer[1])
    except (TypeError, IndexError):
        return str(peer)


# ----------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------


def float_list(n, what):
    """An argparse ``type``: ``n`` comma-separated finite numbers (``what`` names the option in errors)."""
    def parse(text):
        try:
            vals = [float(v) for v in text.split(",")]
        except ValueError:
            vals = []
        if len(vals) != n or not all(math.isfinite(v) for v in vals):
            raise argparse.ArgumentTypeError("%s must be %d comma-separated numbers, got %r" % (what, n, text))
        return vals
    return parse


def build_arg_parser():
    """The ``serve`` command line (also used by ``dofbot-rl serve``)."""
    p = argparse.ArgumentParser(
        prog="dofbot-rl serve",
        description="Dofbot sim-to-real server: receives joint targets (or, with --policy, goals for the "
                    "policy it runs itself) over TCP and drives the arm safely (clamped to the safe limits, "
                    "rate and step limited, holds on link loss).")
    p.add_argument("--arm", choices=("sim", "armlib"), default="sim",
                   help="arm driver: 'armlib' = the real Dofbot through Yahboom's Arm_Lib (on the Jetson), "
                        "'sim' = a simulated servo bus (dry runs)")
    p.add_argument("--host", default="0.0.0.0", help="interface to bind (default all IPv4 interfaces)")
    p.add_argument("--port", type=int, default=P.DEFAULT_PORT, help="TCP port (default %(default)s)")
    p.add_argument("--protocol", choices=("v1", "legacy"), default="v1",
                   help="'v1' (framed, acknowledged, optional token) or 'legacy' (the reference's "
                        "24-byte frames, no replies)")
    p.add_argument("--token-file", default=None,
                   help="file holding a shared token; clients must prove it (HMAC-SHA256), v1 only")
    p.add_argument("--heartbeat-ms", type=int, default=200,
                   help="hold (or release) when the controlling client is silent this long (ms)")
    p.add_argument("--on-timeout", choices=("hold", "release"), default="hold",
                   help="on link loss: hold the last safe pose, or release servo torque")
    p.add_argument("--max-step-deg", type=float, default=5.0,
                   help="largest joint change between two servo writes (deg)")
    p.add_argument("--max-rate-hz", type=float, default=60.0, help="most servo writes per second")
    p.add_argument("--readback-hz", type=float, default=None,
                   help="read-back rate per servo (Hz), 0 disables read-back (default 20, 30 with --policy)")
    p.add_argument("--policy", default=None,
                   help="policy mode: run this exported policy (.npz from `dofbot-rl export format=npz`, needs "
                        "numpy) at its control rate toward --goal or a client's GOAL; clients' COMMANDs are "
                        "refused unless they take over (MODE direct)")
    p.add_argument("--goal", type=float_list(3, "--goal"), default=None,
                   help="with --policy: first goal x,y,z (m, robot base frame), e.g. 0.17,0.15,0.25 "
                        "(default: none, the arm stays still until a client sends one)")
    p.add_argument("--goal-quat", type=float_list(4, "--goal-quat"), default=None,
                   help="with --goal: goal orientation w,x,y,z (default identity)")
    p.add_argument("--move-ms", type=int, default=POLICY_MOVE_MS,
                   help="with --policy: servo move time sent with the policy's targets (ms)")
    p.add_argument("--log-file", default=None, help="log to this file (rotated at 5 MB) instead of stderr")
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    p.add_argument("--sim-read-latency-ms", type=float, default=3.0,
                   help="--arm sim: time one servo read takes (ms)")
    p.add_argument("--sim-read-failure", type=float, default=0.02,
                   help="--arm sim: probability that a servo read fails")
    p.add_argument("--seed", type=int, default=0, help="--arm sim: seed of the read-failure RNG")
    return p


def make_arm(name, sim_read_latency_ms=3.0, sim_read_failure=0.02, seed=0):
    """Create the arm driver ``name`` ("sim" or "armlib").

    Raises:
        ImportError: "armlib" without Yahboom's ``Arm_Lib``.
        ValueError: an unknown name.
    """
    from . import arms
    if name == "armlib":
        return arms.ArmLibArm()
    if name == "sim":
        return arms.SimulatedArm(read_latency_ms=sim_read_latency_ms, read_failure_prob=sim_read_failure,
                                 seed=seed)
    raise ValueError("arm must be 'sim' or 'armlib', got %r" % (name,))


def load_policy(path):
    """An :class:`~dofbot_rl.sim2real.onboard.OnboardController` for the ``.npz`` policy at ``path``.

    numpy is imported here, so the server itself stays standard-library only.

    Raises:
        ImportError: numpy is missing.
        ValueError: the file is missing, unreadable or not a 29 -> 6 dofbot-rl policy
            (``npz_policy.PolicyFileError``).
    """
    from .npz_policy import NumpyPolicy
    from .onboard import OnboardController

    onboard = OnboardController(NumpyPolicy.from_npz(path))
    _log.info("policy %s: %d -> %d, %s, %.0f Hz", path, onboard.policy.num_observations, onboard.policy.num_actions,
              onboard.policy.activation, onboard.control_rate_hz)
    return onboard


def _configure_logging(log_file, level):
    root = logging.getLogger()
    if log_file:
        handler = logging.handlers.RotatingFileHandler(log_file, maxBytes=5 * 1024 * 1024, backupCount=3)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(getattr(logging, level))
    return handler


def main(argv=None):
    """Run the server until SIGINT / SIGTERM. Returns the process exit status.

    Args:
        argv: command-line arguments without the program name (default ``sys.argv[1:]``).

    Returns:
        0 after a clean stop, 1 when the server cannot start (bad token file, port in use,
        ``Arm_Lib`` missing, a bad ``--policy`` file or no numpy for it), with one log line
        saying why; argparse exits with 2 on bad arguments.
    """
    parser = build_arg_parser()
    args = parser.parse_args(argv)
    if args.policy is None and (args.goal is not None or args.goal_quat is not None):
        parser.error("--goal and --goal-quat need --policy")
    if args.goal_quat is not None and args.goal is None:
        parser.error("--goal-quat needs --goal")
    readback_hz = args.readback_hz if args.readback_hz is not None else (30.0 if args.policy else 20.0)
    handler = _configure_logging(args.log_file, args.log_level)
    try:
        token = None
        if args.token_file:
            token = P.read_token_file(args.token_file)
            if not P.token_file_is_private(args.token_file):
                _log.warning("token file %s is readable by other users (chmod 600 it)", args.token_file)
        elif args.protocol == "v1" and args.host not in ("127.0.0.1", "localhost", "::1"):
            _log.warning("no --token-file: anyone who can reach %s:%d can move the arm", args.host, args.port)
        onboard = load_policy(args.policy) if args.policy else None
        arm = make_arm(args.arm, args.sim_read_latency_ms, args.sim_read_failure, args.seed)
        server = Sim2RealServer(arm, host=args.host, port=args.port, protocol=args.protocol, token=token,
                                heartbeat_ms=args.heartbeat_ms, on_timeout=args.on_timeout,
                                max_step_deg=args.max_step_deg, max_rate_hz=args.max_rate_hz,
                                readback_hz=readback_hz, policy=onboard, goal=args.goal, goal_quat=args.goal_quat,
                                policy_move_ms=args.move_ms)
    except (ValueError, ImportError, OSError) as exc:
        _log.error("cannot start: %s", " ".join(str(exc).split()))  # one line, even for multi-line errors
        logging.getLogger().removeHandler(handler)
        return 1
    stop = threading.Event()

    def _on_signal(signum, _frame):
        _log.info("signal %d: stopping", signum)
        stop.set()

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, _on_signal)
    try:
        server.serve_forever(stop)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        arm.close()
        logging.getLogger().removeHandler(handler)
        handler.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
