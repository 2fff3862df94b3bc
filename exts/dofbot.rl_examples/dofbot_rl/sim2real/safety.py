"""The servo safety layer of the Dofbot server: the one thread that talks to the arm.

Standard library only, Python 3.6 compatible (it runs on the Dofbot's Jetson Nano).
Whatever drives the arm (a TCP client's COMMAND frames, :mod:`.tcp_server`; the onboard
policy, :mod:`.policy_mode`) only hands :class:`ArmController` targets and reads its
status; :meth:`ArmController.run` applies the rules:

* every target is clamped to :data:`LIMITS_LOWER` / :data:`LIMITS_UPPER`: the safe
  limits ``robot.SAFE_LIMITS_*`` for joints 1-5 and the gripper's full open/close range
  (``robot.TELEOP_LIMITS_*``); non-finite targets are ignored;
* the servos are written at most ``max_rate_hz`` times per second, and each write moves
  every joint at most ``max_step_deg`` from the previous write (a far target becomes a
  ramp), so the commanded speed is bounded by ``max_step_deg * max_rate_hz``;
* on link loss it holds the last pose it wrote or switches servo torque off
  (``on_timeout``), and :meth:`ArmController.link_lost` returns only once that is done.
"""

import collections
import logging
import math
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
#: Largest per-write step (deg) and write / read-back rate (Hz) accepted: finite bounds, so
#: neither the ramp nor the pacing can be switched off.
MAX_STEP_DEG = 180.0
MAX_RATE_HZ = 1000.0
#: Joint limits (rad, task order) every target is clamped to: ``robot.TELEOP_LIMITS_*``,
#: i.e. the safe limits ``robot.SAFE_LIMITS_*`` for joints 1-5 and the gripper's full
#: open/close range (-30..60 deg), so keyboard teleop opens and closes the real gripper.
LIMITS_LOWER = tuple(robot.TELEOP_LIMITS_LOWER)
LIMITS_UPPER = tuple(robot.TELEOP_LIMITS_UPPER)
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

    Network sessions (and :class:`~dofbot_rl.sim2real.policy_mode.PolicyRunner`) call :meth:`command`, :meth:`link_lost`
    and :meth:`hold`; :meth:`run` (on its own
    thread) writes the servos at most ``max_rate_hz`` times per second, each write at most
    ``max_step_deg`` per joint from the previous one, and reads the servos back round-robin
    so that each is read about ``readback_hz`` times per second.

    Args:
        arm: a driver (:mod:`dofbot_rl.sim2real.arms`), speaking servo degrees.
        max_step_deg: largest change of any joint between two writes (deg, in (0, 180]).
        max_rate_hz: most servo writes per second (Hz, in (0, 1000]).
        on_timeout: ``"hold"`` (write the last pose again and stop following) or
            ``"release"`` (torque off) when the link is lost.
        readback_hz: servo read-back rate per servo (Hz, in [0, 1000]); 0 disables read-back.
        lower, upper: joint limits (rad) every target is clamped to (default
            :data:`LIMITS_LOWER` / :data:`LIMITS_UPPER`); within the hardware limits
            ``robot.JOINT_LIMITS_LOWER/UPPER``.
        clock: time source (s).

    Raises:
        ValueError: a bad argument (named).
    """

    def __init__(self, arm, max_step_deg=5.0, max_rate_hz=60.0, on_timeout="hold", readback_hz=20.0,
                 lower=LIMITS_LOWER, upper=LIMITS_UPPER, clock=time.monotonic):
        for name, value, low, high in (("max_step_deg", max_step_deg, 0.0, MAX_STEP_DEG),
                                       ("max_rate_hz", max_rate_hz, 0.0, MAX_RATE_HZ),
                                       ("readback_hz", readback_hz, None, MAX_RATE_HZ)):
            ok = 0.0 <= value <= high if low is None else low < value <= high  # also false for NaN, inf
            if not ok:
                raise ValueError("%s must be in %s0, %g], got %r" % (name, "[" if low is None else "(", high, value))
        if on_timeout not in ("hold", "release"):
            raise ValueError("on_timeout must be 'hold' or 'release', got %r" % (on_timeout,))
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
        self._loss_seq = 0  # holds / releases asked for ...
        self._loss_done = 0  # ... and acted on (or superseded by a new target)
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
        try:
            vals = list(P.as_floats(q))
        except ValueError:
            return P.ACK_REJECTED, False
        clamped = robot.clamp_to_limits(vals, self.lower, self.upper)
        flags = P.ACK_CLAMPED if clamped != vals else 0
        move_ms = min(max(int(move_ms), 0), MAX_SERVO_MOVE_MS)
        with self._cv:
            self._target = clamped
            self._move_ms = move_ms
            self._holding = False
            self._pending_loss = None  # a new target supersedes a hold not yet acted on
            self._loss_done = self._loss_seq
            self._cv.notify_all()
        return flags, True

    def link_lost(self, reason, wait_s=None):
        """Stop following: the arm thread holds the last pose or releases torque (``on_timeout``) at once.

        Args:
            reason: logged with the action.
            wait_s: None: return at once. A number: return once the arm thread has acted
                (or at most after ``wait_s`` s).

        Returns:
            True when the action has been carried out by then (without ``wait_s``: almost
            always False, the arm thread acts a moment later).
        """
        return self._stop_following(self.on_timeout, reason, wait_s)

    def hold(self, reason, wait_s=None):
        """Stop following and hold the last pose written, whatever ``on_timeout`` says (``wait_s``: see :meth:`link_lost`)."""
        return self._stop_following("hold", reason, wait_s)

    def _stop_following(self, action, reason, wait_s):
        with self._cv:
            self._target = None
            self._holding = True
            self._pending_loss = (action, str(reason))
            self._loss_seq += 1
            ticket = self._loss_seq
            self._cv.notify_all()
            if wait_s is not None:
                deadline = self._clock() + wait_s
                while self._loss_done < ticket:
                    remaining = deadline - self._clock()
                    if remaining <= 0:
                        break
                    self._cv.wait(remaining)
            return self._loss_done >= ticket

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
                        job = ("loss", self._pending_loss, self._loss_seq)
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
                with self._cv:  # done: wake link_lost(wait_s=...)
                    self._loss_done = max(self._loss_done, job[2])
                    self._cv.notify_all()
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
        with self._cv:
            self._loss_done = self._loss_seq
            self._cv.notify_all()

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
