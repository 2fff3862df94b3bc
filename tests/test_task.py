"""The DofbotReacher task on the real MuJoCo backend: steps, goals, episodes, teleop seam, bad actions."""

import pytest
import torch

from dofbot_rl import robot
from dofbot_rl.config import load_config
from dofbot_rl.tasks import NonFiniteActionError, make_task


def make(num_envs=8, *overrides):
    return make_task(load_config([f"num_envs={num_envs}", "sim_device=cpu", *overrides]))


def test_reset_and_step_shapes_and_reset_noise():
    task = make(16)
    obs = task.reset()
    assert obs.shape == (16, 29) and torch.isfinite(obs).all()
    noise = torch.tensor(robot.SAFE_LIMITS_UPPER) * 0.2
    assert (task.dof_pos[:, :5].abs() <= noise[:5] + 1e-4).all()
    assert (task.dof_pos[:, 5].abs() < 1e-6).all()
    obs, rew, reset, extras = task.step(torch.zeros(16, 6))
    assert rew.shape == (16,) and reset.shape == (16,) and extras["time_outs"].dtype == torch.bool
    assert (obs.abs() <= 5.0).all()


def test_gripper_action_is_ignored_and_actions_are_clipped():
    task = make(2)
    task.reset()
    task.step(torch.tensor([[2.0, -3.0, 0.0, 0.0, 0.0, 1.0]] * 2))
    assert task.actions[0].tolist() == pytest.approx([1.0, -1.0, 0.0, 0.0, 0.0, 0.0])
    assert task.joint_pos_targets[0, 0].item() == pytest.approx(robot.SAFE_LIMITS_UPPER[0])
    assert task.joint_pos_targets[0, 5].item() == pytest.approx(0.0)
    assert torch.allclose(task.obs_buf[:, 23:29], task.actions)


def test_success_resamples_goal_and_counts():
    task = make(4)
    task.reset()
    task.step(torch.zeros(4, 6))
    # put env 1's goal on its fingertip: the next step reaches it
    task.goal_pos_env[1] = task.tip_pos_env[1]
    old_goal = task.goal_pos_env[1].clone()
    task.step(torch.zeros(4, 6))
    assert task.successes[1].item() == 1.0
    assert task.rew_buf[1].item() > 200.0
    assert not torch.allclose(task.goal_pos_env[1], old_goal)
    assert task.successes[[0, 2, 3]].sum().item() == 0.0


def test_episode_times_out_after_episode_length_and_reports_stats():
    task = make(3, "task.env.episode_length=20")
    task.reset()
    ends = []
    for step in range(45):
        _, _, reset, extras = task.step(torch.zeros(3, 6))
        if reset.any():
            ends.append(step)
            assert extras["time_outs"].all()
            stats = extras["episode"]
            assert set(stats) >= {"goals_reached", "goals_counted", "rew_dist"}
            assert stats["goals_reached"].shape == (3,)
    assert ends == [18, 37]  # timeout at progress >= episode_length - 1 (reference main)
    assert (task.progress_buf == 45 - 38).all()


def test_nan_actions_raise_a_clear_error():
    task = make(2)
    task.reset()
    bad = torch.zeros(2, 6)
    bad[1, 2] = float("nan")
    with pytest.raises(NonFiniteActionError, match=r"envs \[1\]"):
        task.step(bad)
    with pytest.raises(ValueError, match="actions must be"):
        task.step(torch.zeros(3, 6))


def test_manual_targets_override_one_env_and_stop_its_timeout():
    from dofbot_rl.teleop import TeleopModel, drive_task

    task = make(4, "task.env.episode_length=10")
    task.reset()
    model = TeleopModel()
    model.select(2, task.dof_pos[2])
    model.key_down("A")  # joint1 +
    for _ in range(120):  # 2 s at 1 rad/s: joint1 reaches its +90 deg limit
        drive_task(model, task, task.control_dt)
        _, _, reset, _ = task.step(torch.zeros(4, 6))
        assert reset[2].item() == 0
    assert task.joint_pos_targets[2, 0].item() == pytest.approx(robot.SAFE_LIMITS_UPPER[0], abs=1e-5)
    assert task.dof_pos[2, 0].item() > 1.0  # the robot followed
    others = task.joint_pos_targets[[0, 1, 3]]
    assert torch.allclose(others, torch.zeros_like(others).add(task.joint_pos_targets[0]))  # policy targets
    model.key_up("A")
    model.release()
    drive_task(model, task, task.control_dt)
    assert task.manual_env_ids == []
    with pytest.raises(IndexError):
        task.set_manual_targets(7, None)
