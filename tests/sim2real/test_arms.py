"""Arm drivers: the simulated servo bus's behaviour, and the Arm_Lib wrapper."""

import sys
import types

import pytest

from dofbot_rl import robot
from dofbot_rl.sim2real import arms


class FakeClock(object):
    def __init__(self):
        self.t = 100.0
        self.slept = []

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.slept.append(s)
        self.t += s


def make_arm(**kw):
    clock = FakeClock()
    kw.setdefault("read_failure_prob", 0.0)
    return arms.SimulatedArm(clock=clock, sleep=clock.sleep, **kw), clock


def test_linear_move_over_the_commanded_time():
    arm, clock = make_arm(read_latency_ms=0.0)
    start = arm.position_deg()
    goal = [s + 20.0 for s in start]
    arm.write_servos_deg(goal, 1000)
    clock.t += 0.5
    assert arm.position_deg() == pytest.approx([s + 10.0 for s in start])
    # A new command mid-move restarts from where the servos are.
    arm.write_servos_deg(start, 100)
    clock.t += 0.05
    assert arm.position_deg() == pytest.approx([s + 5.0 for s in start])
    clock.t += 1.0
    assert arm.position_deg() == pytest.approx(start)


def test_out_of_range_commands_are_dropped_like_arm_lib():
    arm, clock = make_arm()
    before = arm.position_deg()
    arm.write_servos_deg([181, 90, 90, 90, 90, 90], 0)
    arm.write_servos_deg([90, 90, 90, 90, 271, 90], 0)
    arm.write_servos_deg([-1, 90, 90, 90, 90, 90], 0)
    arm.write_servos_deg([float("nan"), 90, 90, 90, 90, 90], 0)
    assert arm.position_deg() == before
    assert arm.num_rejected == 4
    assert [w.outcome for w in arm.writes] == ["rejected"] * 4
    arm.write_servos_deg([0, 180, 90, 90, 270, 0], 0)  # the ends are legal; servo 5 goes to 270
    assert arm.position_deg() == [0, 180, 90, 90, 270, 0]
    assert arm.max_sent_deg[0] == 181 and arm.min_sent_deg[0] == -1


def test_clamp_mode():
    arm, _ = make_arm(out_of_range="clamp")
    arm.write_servos_deg([200, -5, 90, 90, 300, 90], 0)
    assert arm.position_deg() == [180, 0, 90, 90, 270, 90]
    assert arm.writes[-1].outcome == "clamped"


def test_reads_are_slow_quantised_and_sometimes_fail():
    arm, clock = make_arm(read_latency_ms=3.0)
    arm.write_servos_deg([45.7, 90, 90, 90, 200.9, 90], 0)
    assert arm.read_servo_deg(1) == 45.0  # integer degrees, truncated like Arm_Lib
    assert arm.read_servo_deg(5) == 200.0
    assert clock.slept == [0.003, 0.003]
    with pytest.raises(ValueError):
        arm.read_servo_deg(7)

    def failures(seed):
        a = arms.SimulatedArm(read_latency_ms=0.0, read_failure_prob=0.2, seed=seed)
        return [a.read_servo_deg(1 + i % 6) is None for i in range(3000)]

    f = failures(3)
    assert 0.17 < sum(f) / len(f) < 0.23
    assert failures(3) == f and failures(4) != f  # seeded


def test_torque_off_ignores_writes_and_allows_moving_by_hand():
    arm, clock = make_arm()
    with pytest.raises(RuntimeError):
        arm.move_by_hand([90] * 6)
    arm.set_torque(False)
    before = arm.position_deg()
    arm.write_servos_deg([10] * 6, 0)
    assert arm.position_deg() == before and arm.num_ignored == 1
    arm.move_by_hand([100, 80, 70, 60, 50, 40])
    assert arm.read_servo_deg(3) == 70
    arm.set_torque(True)
    assert [on for _, on in arm.torque_events] == [False, True]


def test_bad_arguments():
    with pytest.raises(ValueError):
        arms.SimulatedArm(out_of_range="wrap")
    with pytest.raises(ValueError):
        arms.SimulatedArm(read_failure_prob=2)
    arm, _ = make_arm()
    with pytest.raises(ValueError):
        arm.write_servos_deg([90] * 5, 0)
    with pytest.raises(ValueError):
        arm.write_servos_deg([90] * 6, 70000)


class FakeArmDevice(object):
    """Records calls the way Yahboom's Arm_Device would receive them."""

    def __init__(self):
        self.calls = []

    def Arm_serial_servo_write6(self, s1, s2, s3, s4, s5, s6, time):
        self.calls.append(("write6", (s1, s2, s3, s4, s5, s6), time))

    def Arm_serial_servo_read(self, servo_id):
        self.calls.append(("read", servo_id))
        return None if servo_id == 6 else 91

    def Arm_serial_set_torque(self, onoff):
        self.calls.append(("torque", onoff))


def test_armlib_wrapper_forwards_and_checks():
    dev = FakeArmDevice()
    arm = arms.ArmLibArm(device=dev)
    arm.write_servos_deg(robot.sim_to_servo_deg([0.0] * 6), 33.0)
    assert dev.calls[-1] == ("write6", (90.0, 90.0, 90.0, 90.0, 90.0, 120.0), 33)
    assert isinstance(dev.calls[-1][2], int)  # Arm_Lib bit-shifts the time
    with pytest.raises(ValueError, match="servo 5"):
        arm.write_servos_deg([90, 90, 90, 90, 271, 90], 10)
    with pytest.raises(ValueError, match="servo 1"):
        arm.write_servos_deg([-0.5, 90, 90, 90, 90, 90], 10)
    assert len([c for c in dev.calls if c[0] == "write6"]) == 1
    assert arm.read_servo_deg(2) == 91.0
    assert arm.read_servo_deg(6) is None
    arm.set_torque(False)
    arm.set_torque(True)
    assert dev.calls[-2:] == [("torque", 0), ("torque", 1)]


def test_armlib_imported_lazily_with_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "Arm_Lib", None)  # makes the import fail
    with pytest.raises(ImportError, match="--arm sim"):
        arms.ArmLibArm()
    fake = types.ModuleType("Arm_Lib")
    fake.Arm_Device = FakeArmDevice
    monkeypatch.setitem(sys.modules, "Arm_Lib", fake)
    monkeypatch.setattr(arms.time, "sleep", lambda s: None)
    assert arms.ArmLibArm().read_servo_deg(1) == 91.0
