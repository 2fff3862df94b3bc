"""Policy mode of the Dofbot server: the exported policy drives the arm through the safety layer.

Standard library only, Python 3.6 compatible: the policy itself
(:class:`~dofbot_rl.sim2real.onboard.OnboardController`, numpy) is handed in, duck-typed.
:class:`PolicyRunner` holds the one pacing loop of the project that runs a policy on the
robot: the server's policy mode runs it on a thread, and ``python -m
dofbot_rl.sim2real.onboard`` runs it in the foreground.
"""

import logging
import threading
import time

from . import protocol as P
from .safety import MAX_SERVO_MOVE_MS

_log = logging.getLogger(__name__)

#: Servo move time (ms) sent with the policy's targets in policy mode.
POLICY_MOVE_MS = 50
#: Highest policy rate accepted (Hz); the task runs at 60.
MAX_POLICY_RATE_HZ = 1000.0


class PolicyRunner(object):
    """Runs an onboard policy at its control rate, through the arm's safety layer.

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
        if not 0 < self.rate_hz <= MAX_POLICY_RATE_HZ:  # also false for NaN; inf would pin a core
            raise ValueError("policy rate must be in (0, %g] Hz, got %r" % (MAX_POLICY_RATE_HZ, self.rate_hz))
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

    def run(self, stop_event, on_tick=None):
        """Tick at ``rate_hz`` until ``stop_event`` is set (the server calls it on a dedicated thread).

        Args:
            stop_event: a ``threading.Event``.
            on_tick: optional ``on_tick(now_s)`` called after every tick; returning True stops.

        Returns:
            The number of ticks run (commanding or idle).
        """
        period = 1.0 / self.rate_hz
        running = None  # generation the onboard controller follows, None while idle
        ticks, next_t = 0, self._clock()
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
            ticks += 1
            if on_tick is not None and on_tick(self._clock()):
                break
            next_t += period
            delay = next_t - self._clock()
            if delay > 0:
                stop_event.wait(delay)
            elif delay < -period:  # fell behind (slow machine): do not try to catch up
                next_t = self._clock()
        return ticks
