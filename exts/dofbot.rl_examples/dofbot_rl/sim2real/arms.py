"""Arm drivers for the sim-to-real server: Yahboom's ``Arm_Lib`` and a simulated servo bus.

Both speak **servo degrees** (servos 1-6, the units of ``Arm_serial_servo_write6``);
the server converts to and from joint radians with ``robot.sim_to_servo_deg`` /
``robot.servo_deg_to_sim``, the one mapping of the project. Standard library only,
Python 3.6 compatible.

The driver interface (duck-typed)::

    write_servos_deg(servo_deg, time_ms)   # six angles (deg), move time (ms)
    read_servo_deg(servo_id) -> float|None # one servo (id 1-6), None when the read fails
    set_torque(on)                         # True: servos hold; False: limp
    close()
"""

import collections
import logging
import random
import threading
import time
import typing

from .. import robot
from . import protocol as P

_log = logging.getLogger(__name__)


def check_servo_range(servo_deg):
    """Return the servo angles (deg) as 6 floats if they fit the bus's ranges.

    Ranges are ``robot.SERVO_RANGES_DEG``: 0-180 deg, servo 5 0-270 deg.

    Raises:
        ValueError: not 6 finite numbers, or an angle outside its servo's range (named).
    """
    vals = list(P.as_floats(servo_deg, what="servo angles (deg)", finite=False))
    for sid, v, (lo, hi) in zip(robot.SERVO_IDS, vals, robot.SERVO_RANGES_DEG):
        if not lo <= v <= hi:  # also false for NaN
            raise ValueError("servo %d angle %r deg is outside its range [%g, %g]" % (sid, v, lo, hi))
    return vals


def _check_time_ms(time_ms):
    t = int(time_ms)
    if not 0 <= t <= 0xFFFF:
        raise ValueError("move time must be 0..65535 ms, got %r" % (time_ms,))
    return t


class ArmLibArm(object):
    """The real Dofbot through Yahboom's ``Arm_Lib`` (I2C, bus address 0x15, on the Jetson).

    ``Arm_Lib`` is imported here, lazily, so nothing else in the project needs it.
    Facts about it (Yahboom ``Arm_Lib`` V0.0.5, I2C version):

    * ``Arm_serial_servo_write6(s1..s6, time_ms)``: s1-s4, s6 in 0-180 deg, s5 in 0-270;
      it silently drops the whole command when an angle is above range (no lower check),
      and reverses servos 2-4 itself. ``time_ms`` is sent as 2 bytes.
    * ``Arm_serial_servo_read(id)``: integer degrees (truncated), ``None`` on an I2C error
      or an implausible reading; each read sleeps 3 ms between request and answer.
    * ``Arm_serial_set_torque(1|0)``: torque on / off (register 0x1A).

    Args:
        device: an ``Arm_Lib.Arm_Device``-like object (tests inject a fake); by default
            ``Arm_Lib.Arm_Device()`` is created.

    Raises:
        ImportError: ``Arm_Lib`` is not installed (it ships with Yahboom's Jetson image).
    """

    def __init__(self, device=None):
        if device is None:
            try:
                from Arm_Lib import Arm_Device  # only present on the robot
            except ImportError as exc:
                raise ImportError("Yahboom's Arm_Lib is not importable (%s); --arm armlib only "
                                  "works on the Dofbot's Jetson, use --arm sim elsewhere" % exc)
            device = Arm_Device()
            time.sleep(0.1)  # Yahboom's examples let the bus settle after opening it
        self._dev = device

    def write_servos_deg(self, servo_deg, time_ms):
        """Move all six servos to ``servo_deg`` (deg) over ``time_ms`` (ms).

        Raises:
            ValueError: an angle outside its servo's range or a bad move time; checked
                here because ``Arm_Lib`` would drop the command without telling.
        """
        vals = check_servo_range(servo_deg)
        self._dev.Arm_serial_servo_write6(*(vals + [_check_time_ms(time_ms)]))

    def read_servo_deg(self, servo_id):
        """Read one servo's angle (deg, integer resolution); ``None`` when the read fails."""
        value = self._dev.Arm_serial_servo_read(int(servo_id))
        return None if value is None else float(value)

    def set_torque(self, on):
        """Switch servo torque on (hold) or off (limp, the arm can be moved by hand)."""
        self._dev.Arm_serial_set_torque(1 if on else 0)

    def close(self):
        """Drop the device (``Arm_Lib`` has no close; its SMBus closes with the object)."""
        self._dev = None


class ServoWrite(typing.NamedTuple):
    """One call to :meth:`SimulatedArm.write_servos_deg`, as the bus saw it."""

    time_s: float  #: clock time of the call (s)
    servo_deg: tuple  #: the six angles sent (deg)
    time_ms: int  #: the move time sent (ms)
    outcome: str  #: "moved", "clamped", "rejected" or "torque_off"


class SimulatedArm(object):
    """A Dofbot servo bus in software, with the real bus's limits, for tests and dry runs.

    What it models:

    * servo ranges (``robot.SERVO_RANGES_DEG``: 0-180 deg, servo 5 0-270): a command with
      an angle outside its range is dropped whole (``out_of_range="reject"``, what
      ``Arm_Lib`` does) or clamped (``"clamp"``);
    * move time: each servo moves linearly from where it is to the target over the
      commanded time (a new command restarts from the current position);
    * read-back: each read takes ``read_latency_ms`` (``Arm_Lib`` sleeps 3 ms per read),
      returns integer degrees (truncated, like ``Arm_Lib``), and fails (``None``) with
      probability ``read_failure_prob`` from a seeded RNG;
    * torque: with torque off, writes are ignored and the arm stays where it is unless
      moved by hand (:meth:`move_by_hand`).

    It also keeps the evidence tests need: every write (:attr:`writes`, the last
    ``log_size``), the smallest / largest angle ever sent per servo, and torque events.

    Args:
        read_latency_ms: time one servo read takes (ms).
        read_failure_prob: probability that a read returns ``None`` (0..1).
        seed: seed of the failure RNG.
        out_of_range: ``"reject"`` or ``"clamp"``.
        initial_servo_deg: starting angles (deg); default the straight-up pose.
        log_size: how many writes :attr:`writes` keeps.
        clock, sleep: time source (s) and sleep function, injectable for tests.

    Raises:
        ValueError: a bad argument (named).
    """

    def __init__(self, read_latency_ms=3.0, read_failure_prob=0.02, seed=0, out_of_range="reject",
                 initial_servo_deg=None, log_size=100000, clock=time.monotonic, sleep=time.sleep):
        if out_of_range not in ("reject", "clamp"):
            raise ValueError("out_of_range must be 'reject' or 'clamp', got %r" % (out_of_range,))
        if not 0.0 <= read_failure_prob <= 1.0:
            raise ValueError("read_failure_prob must be in [0, 1], got %r" % (read_failure_prob,))
        if read_latency_ms < 0:
            raise ValueError("read_latency_ms must be >= 0, got %r" % (read_latency_ms,))
        self.read_latency_ms = float(read_latency_ms)
        self.read_failure_prob = float(read_failure_prob)
        self.out_of_range = out_of_range
        self._clock, self._sleep = clock, sleep
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        if initial_servo_deg is None:
            initial_servo_deg = robot.sim_to_servo_deg(robot.DEFAULT_DOF_POS)
        start = check_servo_range(initial_servo_deg)
        # Current move: (t0 s, start deg, goal deg, duration s).
        self._move = (self._clock(), start, list(start), 0.0)
        self.torque_on = True
        #: The last ``log_size`` writes (:class:`ServoWrite`).
        self.writes = collections.deque(maxlen=log_size)
        self.num_writes = 0
        self.num_rejected = 0
        self.num_ignored = 0
        self.num_reads = 0
        self.num_failed_reads = 0
        #: Smallest / largest angle ever *sent* per servo (deg), accepted or not.
        self.min_sent_deg = [float("inf")] * robot.NUM_DOF
        self.max_sent_deg = [float("-inf")] * robot.NUM_DOF
        #: ``(time s, on)`` for every :meth:`set_torque` call.
        self.torque_events = []

    # -- the driver interface ---------------------------------------------------------

    def write_servos_deg(self, servo_deg, time_ms):
        """Command six servo angles (deg) reached linearly over ``time_ms`` (ms).

        Out-of-range commands are dropped or clamped (see the class); with torque off the
        command is ignored. Never raises for angle values (like ``Arm_Lib``), only logs.

        Raises:
            ValueError: not 6 numbers, or a move time outside 0..65535 ms.
        """
        vals = list(P.as_floats(servo_deg, what="servo angles (deg)", finite=False))
        time_ms = _check_time_ms(time_ms)
        with self._lock:
            now = self._clock()
            self.num_writes += 1
            for i, v in enumerate(vals):
                if v == v:  # skip NaN in the extremes
                    self.min_sent_deg[i] = min(self.min_sent_deg[i], v)
                    self.max_sent_deg[i] = max(self.max_sent_deg[i], v)
            outcome = "moved"
            try:
                check_servo_range(vals)
            except ValueError as exc:
                if self.out_of_range == "reject" or any(v != v for v in vals):
                    outcome = "rejected"
                    self.num_rejected += 1
                    _log.warning("simulated arm: command dropped: %s", exc)
                else:
                    outcome = "clamped"
                    vals = [min(max(v, lo), hi) for v, (lo, hi) in zip(vals, robot.SERVO_RANGES_DEG)]
            if outcome != "rejected" and not self.torque_on:
                outcome = "torque_off"
                self.num_ignored += 1
            if outcome in ("moved", "clamped"):
                self._move = (now, self._position_at(now), vals, time_ms / 1000.0)
            self.writes.append(ServoWrite(now, tuple(vals), time_ms, outcome))

    def read_servo_deg(self, servo_id):
        """Read one servo (id 1-6) after ``read_latency_ms``: integer degrees, or ``None``.

        Raises:
            ValueError: an id outside 1-6.
        """
        servo_id = int(servo_id)
        if servo_id not in robot.SERVO_IDS:
            raise ValueError("servo id must be 1-6, got %r" % (servo_id,))
        if self.read_latency_ms:
            self._sleep(self.read_latency_ms / 1000.0)
        with self._lock:
            self.num_reads += 1
            if self._rng.random() < self.read_failure_prob:
                self.num_failed_reads += 1
                return None
            return float(int(self._position_at(self._clock())[servo_id - 1]))

    def set_torque(self, on):
        """Torque on (servos hold) or off (limp: writes are ignored, the pose stays)."""
        with self._lock:
            now = self._clock()
            if not on:  # freeze wherever the servos are now
                here = self._position_at(now)
                self._move = (now, here, here, 0.0)
            self.torque_on = bool(on)
            self.torque_events.append((now, bool(on)))

    def close(self):
        """Nothing to release; present for the driver interface."""

    # -- test and dry-run helpers -----------------------------------------------------

    def position_deg(self):
        """The true (not quantised) servo angles now (deg)."""
        with self._lock:
            return self._position_at(self._clock())

    def move_by_hand(self, servo_deg):
        """Pose the limp arm by hand (deg). Only possible with torque off.

        Raises:
            RuntimeError: torque is on (the servos resist).
            ValueError: angles outside the servo ranges.
        """
        vals = check_servo_range(servo_deg)
        with self._lock:
            if self.torque_on:
                raise RuntimeError("cannot move the arm by hand while torque is on")
            now = self._clock()
            self._move = (now, vals, vals, 0.0)

    def _position_at(self, now):
        t0, start, goal, duration = self._move
        frac = 1.0 if duration <= 0.0 else min(max((now - t0) / duration, 0.0), 1.0)
        return [s + (g - s) * frac for s, g in zip(start, goal)]


def make_arm(name, sim_read_latency_ms=3.0, sim_read_failure=0.02, seed=0):
    """Create the arm driver ``name``: ``"armlib"`` (:class:`ArmLibArm`) or ``"sim"`` (:class:`SimulatedArm`).

    Raises:
        ImportError: "armlib" without Yahboom's ``Arm_Lib``.
        ValueError: an unknown name or a bad simulated-arm setting.
    """
    if name == "armlib":
        return ArmLibArm()
    if name == "sim":
        return SimulatedArm(read_latency_ms=sim_read_latency_ms, read_failure_prob=sim_read_failure, seed=seed)
    raise ValueError("arm must be 'sim' or 'armlib', got %r" % (name,))
