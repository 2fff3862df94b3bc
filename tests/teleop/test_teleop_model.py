"""TeleopModel: key sequences -> joint targets, clamping, hold, release, reset, camera, drive_task."""

import math

import pytest
import torch

from dofbot_rl import robot
from dofbot_rl.teleop import TeleopBindings, TeleopModel, drive_task

LOWER, UPPER = robot.TELEOP_LIMITS_LOWER, robot.TELEOP_LIMITS_UPPER
DT = 1.0 / 60.0


def run(model, seconds, dt=DT):
    """Call update for ``seconds`` at ``dt``; returns the last result."""
    out = None
    for _ in range(round(seconds / dt)):
        out = model.update(dt)
    return out


def selected(env_id=0, q=(0.0,) * 6, bindings=None):
    model = TeleopModel(bindings)
    model.select(env_id, list(q))
    return model


def test_nothing_selected_ignores_keys_and_update_returns_none():
    model = TeleopModel()
    assert model.selected_env is None
    assert model.targets == tuple(robot.DEFAULT_DOF_POS)
    assert model.key_down("Q") is False
    assert model.update(DT) is None
    assert model.held_keys == frozenset()


def test_select_starts_from_current_pose_clamped():
    q = [0.3, -0.2, 0.1, 0.0, 0.5, 0.4]
    model = selected(7, q)
    assert model.selected_env == 7
    assert model.targets == pytest.approx(q)
    assert model.update(DT) == pytest.approx(q)  # nothing held: holds
    model.select(7, torch.tensor([3.0, -3.0, 0.0, 0.0, 0.0, 0.0]))  # a tensor, outside the limits
    assert model.targets[0] == pytest.approx(UPPER[0]) and model.targets[1] == pytest.approx(LOWER[1])


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_select_rejects_bad_env_id(bad):
    with pytest.raises(ValueError, match="env_id"):
        TeleopModel().select(bad, [0.0] * 6)


@pytest.mark.parametrize("bad", [[0.0] * 5, [0.0] * 5 + [float("nan")], "abcdef", None])
def test_select_rejects_bad_pose(bad):
    with pytest.raises(ValueError, match="current_dof_pos"):
        TeleopModel().select(0, bad)


@pytest.mark.parametrize("joint, minus, plus", [(0, "Q", "A"), (1, "W", "S"), (2, "E", "D"),
                                               (3, "R", "F"), (4, "T", "G"), (5, "Y", "H")])
def test_each_key_pair_jogs_its_joint_at_speed(joint, minus, plus):
    speed = TeleopBindings().speed_rad_s[joint]
    model = selected()
    assert model.key_down(plus) is True
    out = run(model, 0.2)
    expected = [0.0] * 6
    expected[joint] = speed * 0.2
    assert out == pytest.approx(expected, abs=1e-9)
    model.key_up(plus)
    model.key_down(minus)
    out = run(model, 0.1)
    expected[joint] = speed * 0.1
    assert out == pytest.approx(expected, abs=1e-9)


def test_gripper_y_opens_h_closes_faster_than_arm():
    b = TeleopBindings()
    assert b.speed_rad_s[5] > b.speed_rad_s[0]
    model = selected()
    model.key_down("y")  # lower case works too
    assert run(model, 0.1)[5] == pytest.approx(-0.1 * b.speed_rad_s[5])  # towards open (lower limit)
    model.key_up("Y")
    model.key_down("H")
    assert run(model, 0.2)[5] == pytest.approx(0.1 * b.speed_rad_s[5])


def test_hold_after_release_and_repeat_is_idempotent():
    model = selected()
    for _ in range(5):  # key repeat: several downs, one hold
        model.key_down("A")
    run(model, 0.25)
    assert model.key_up("A") is True
    assert model.key_up("A") is False
    held = model.targets
    run(model, 1.0)
    assert model.targets == held
    assert held[0] == pytest.approx(0.25)


def test_opposite_keys_cancel_and_several_joints_move_together():
    model = selected()
    model.key_down("Q")
    model.key_down("A")
    model.key_down("S")
    model.key_down("T")
    out = run(model, 0.3)
    assert out == pytest.approx([0.0, 0.3, 0.0, 0.0, -0.3, 0.0])


def test_clamping_at_both_limits_for_every_joint():
    model = selected()
    for minus, _ in TeleopBindings().joint_keys:
        model.key_down(minus)
    assert run(model, 5.0) == pytest.approx(LOWER)
    for minus, plus in TeleopBindings().joint_keys:
        model.key_up(minus)
        model.key_down(plus)
    assert run(model, 5.0) == pytest.approx(UPPER)
    # Gripper uses its full range, the arm the safe limits.
    assert UPPER[5] == pytest.approx(math.radians(60.0)) and UPPER[1] == pytest.approx(math.pi / 4)


def test_update_rejects_bad_dt():
    model = selected()
    for bad in (-0.01, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="dt"):
            model.update(bad)
    assert model.update(0.0) == pytest.approx([0.0] * 6)


def test_escape_releases_and_clears_keys():
    model = selected(2)
    model.key_down("A")
    model.key_down("C")
    assert model.follow_camera is True
    assert model.key_down("ESCAPE") is True
    assert model.selected_env is None and model.follow_camera is False and model.held_keys == frozenset()
    assert model.update(DT) is None
    assert model.take_released_envs() == (2,)
    assert model.take_released_envs() == ()
    assert model.release() is None  # releasing again is a no-op


def test_reset_key_drives_targets_to_default_pose():
    model = selected(1, [0.5, 0.5, -0.5, 0.2, 1.0, 0.8])
    assert model.key_down("Z") is True
    assert model.targets == pytest.approx(robot.DEFAULT_DOF_POS)
    assert model.selected_env == 1
    assert TeleopModel().reset_pose() is False


def test_camera_key_toggles_flag_only_while_selected():
    model = TeleopModel()
    assert model.key_down("C") is False and model.follow_camera is False
    model.select(0, [0.0] * 6)
    model.key_down("C")
    model.key_up("C")
    assert model.follow_camera is True
    model.key_down("c")
    assert model.follow_camera is False


def test_unbound_and_unknown_keys_are_not_consumed():
    model = selected()
    assert model.key_down("P") is False
    assert model.key_down("NOT_A_KEY") is False
    assert model.key_up("NOT_A_KEY") is False
    assert run(model, 0.5) == pytest.approx([0.0] * 6)


def test_selecting_another_env_releases_the_previous():
    model = selected(1)
    model.key_down("A")
    model.select(3, [0.1] * 6)
    assert model.selected_env == 3 and model.held_keys == frozenset()
    assert model.take_released_envs() == (1,)
    model.select(3, [0.2] * 6)  # same env again: nothing released
    assert model.take_released_envs() == ()


def test_custom_speeds_from_bindings():
    b = TeleopBindings(speed_rad_s=(0.5, 0.25, 1.0, 1.0, 1.0, 3.0))
    model = selected(bindings=b)
    model.key_down("A")
    model.key_down("S")
    model.key_down("H")
    assert run(model, 0.1) == pytest.approx([0.05, 0.025, 0.0, 0.0, 0.0, 0.3])


# ----------------------------------------------------------------------------------
# drive_task against a stub of the task's teleop seam
# ----------------------------------------------------------------------------------


def test_drive_task_overrides_only_the_selected_env(make_task):
    task = make_task(num_envs=4)
    policy = torch.arange(24, dtype=torch.float32).reshape(4, 6) / 100.0
    model = TeleopModel()
    assert drive_task(model, task, DT) is None and task.calls == []
    model.select(2, policy[2])
    model.key_down("A")
    for _ in range(30):
        drive_task(model, task, DT)
        task.apply_policy(policy)
    expected = policy[2].clone()
    expected[0] += 0.5  # 30 steps of 1/60 s at 1 rad/s
    assert torch.allclose(task.joint_pos_targets[2], expected, atol=1e-6)
    others = [0, 1, 3]
    assert torch.equal(task.joint_pos_targets[others], policy[others])
    assert {env for env, _ in task.calls} == {2}

    model.key_up("A")
    drive_task(model, task, DT)
    task.apply_policy(policy)
    assert torch.allclose(task.joint_pos_targets[2], expected, atol=1e-6)  # holds

    model.key_down("ESCAPE")
    assert drive_task(model, task, DT) is None
    assert task.calls[-1] == (2, None)
    task.apply_policy(policy)
    assert torch.equal(task.joint_pos_targets, policy)  # the policy drives env 2 again


def test_drive_task_hands_back_a_previous_env_on_reselect(make_task):
    task = make_task(num_envs=3)
    model = TeleopModel()
    model.select(0, [0.0] * 6)
    drive_task(model, task, DT)
    model.select(1, [0.0] * 6)
    drive_task(model, task, DT)
    assert [env for env, t in task.calls] == [0, 0, 1]
    assert task.calls[1][1] is None
    assert set(task.manual) == {1}
    # Release then re-select the same env before the next step: no spurious release.
    model.release()
    model.select(1, [0.1] * 6)
    drive_task(model, task, DT)
    assert task.calls[-1][0] == 1 and task.calls[-1][1] is not None
    assert set(task.manual) == {1}
