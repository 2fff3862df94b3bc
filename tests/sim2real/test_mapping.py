"""The one sim <-> servo mapping (``robot``), both ways, as the link uses it."""

import math
import random

import pytest

from dofbot_rl import robot
from dofbot_rl.sim2real import safety as S


def test_reference_formula_joints_1_to_5():
    rng = random.Random(0)
    for _ in range(200):
        q = [rng.uniform(lo, hi) for lo, hi in zip(robot.SAFE_LIMITS_LOWER, robot.SAFE_LIMITS_UPPER)]
        servo = robot.sim_to_servo_deg(q)
        for i in range(5):
            assert servo[i] == pytest.approx(math.degrees(q[i]) + 90.0, abs=1e-9)
        assert servo[5] == pytest.approx(180.0 - 2.0 * (math.degrees(q[5]) + 30.0), abs=1e-9)


def test_straight_up_pose():
    assert robot.sim_to_servo_deg([0.0] * 6)[:5] == pytest.approx([90.0] * 5)


@pytest.mark.parametrize("seed", range(5))
def test_round_trip_sim_servo_sim(seed):
    rng = random.Random(seed)
    q = [rng.uniform(lo, hi) for lo, hi in zip(robot.JOINT_LIMITS_LOWER, robot.JOINT_LIMITS_UPPER)]
    assert robot.servo_deg_to_sim(robot.sim_to_servo_deg(q)) == pytest.approx(q, abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_round_trip_servo_sim_servo(seed):
    rng = random.Random(seed)
    servo = [rng.uniform(lo, hi) for lo, hi in robot.SERVO_RANGES_DEG]
    assert robot.sim_to_servo_deg(robot.servo_deg_to_sim(servo)) == pytest.approx(servo, abs=1e-9)


def test_safe_limits_map_inside_servo_ranges():
    for q in (robot.SAFE_LIMITS_LOWER, robot.SAFE_LIMITS_UPPER):
        for s, (lo, hi) in zip(robot.sim_to_servo_deg(q), robot.SERVO_RANGES_DEG):
            assert lo <= s <= hi


def test_server_per_joint_inverse_matches_robot():
    rng = random.Random(1)
    for _ in range(50):
        servo = [float(rng.randint(int(lo), int(hi))) for lo, hi in robot.SERVO_RANGES_DEG]
        expected = robot.servo_deg_to_sim(servo)
        for i in range(6):
            assert S._servo_to_joint(i, servo[i]) == pytest.approx(expected[i], abs=1e-12)


def test_mapping_rejects_bad_input():
    with pytest.raises(ValueError):
        robot.sim_to_servo_deg([0.0] * 5)
    with pytest.raises(ValueError):
        robot.servo_deg_to_sim([float("nan")] * 6)
