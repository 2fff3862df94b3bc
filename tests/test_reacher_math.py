"""Reward, observations, goal sampling and action scaling against the reference task's numbers."""

import math

import pytest
import torch

from dofbot_rl import robot
from dofbot_rl.tasks import reacher_math as rm

LOWER = torch.tensor(robot.SAFE_LIMITS_LOWER)
UPPER = torch.tensor(robot.SAFE_LIMITS_UPPER)


def test_action_scaling_maps_unit_box_onto_conservative_limits():
    a = torch.tensor([[-1.0] * 6, [0.0] * 6, [1.0] * 6, [3.0] * 6])
    t = rm.actions_to_joint_targets(a, LOWER, UPPER)
    assert torch.allclose(t[0], LOWER) and torch.allclose(t[2], UPPER)
    assert torch.allclose(t[1], (LOWER + UPPER) / 2)
    assert torch.allclose(t[3], UPPER)  # clamped
    assert t[2, 1].item() == pytest.approx(math.pi / 4)
    assert torch.allclose(rm.joint_targets_to_actions(t[:3], LOWER, UPPER), a[:3], atol=1e-6)


def test_unscale_dof_pos_is_minus_one_to_one():
    assert torch.allclose(rm.unscale_dof_pos(LOWER, LOWER, UPPER), -torch.ones(6))
    assert torch.allclose(rm.unscale_dof_pos(UPPER, LOWER, UPPER), torch.ones(6))


def test_reward_matches_reference_formula():
    tip = torch.tensor([[0.0, 0.0, 0.3], [0.0, 0.0, 0.3]])
    goal = torch.tensor([[0.0, 0.0, 0.4], [0.0, 0.04, 0.3]])
    actions = torch.tensor([[1.0] * 6, [0.0] * 6])
    reward, terms, d = rm.compute_reward(tip, goal, actions, -10.0, -0.0002, 250.0, 0.05)
    assert d.tolist() == pytest.approx([0.1, 0.04])
    assert reward[0].item() == pytest.approx(-10 * 0.1 - 0.0002 * 6)
    assert reward[1].item() == pytest.approx(-10 * 0.04 + 250.0)
    assert set(terms) == {"dist", "action_penalty", "reach_bonus"}
    assert torch.allclose(terms["dist"] + terms["action_penalty"] + terms["reach_bonus"], reward)


def test_goal_sampling_fills_the_reference_region():
    g = rm.sample_goal_positions(20000, 0.15, 0.20, 0.15, 0.35, torch.device("cpu"))
    assert g.shape == (20000, 3)
    assert ((g[:, :2].abs() >= 0.15 - 1e-6) & (g[:, :2].abs() <= 0.20 + 1e-6)).all()
    assert ((g[:, 2] >= 0.15) & (g[:, 2] <= 0.35)).all()
    # every quadrant is used
    quadrants = set(zip((g[:, 0] > 0).tolist(), (g[:, 1] > 0).tolist()))
    assert len(quadrants) == 4
    rot = rm.sample_goal_rotations(1000, torch.device("cpu"))
    assert torch.allclose(rot.norm(dim=-1), torch.ones(1000), atol=1e-5)


def test_quaternion_helpers():
    q = rm.quat_from_angle_axis(torch.tensor([math.pi / 2]), torch.tensor([[0.0, 0.0, 1.0]]))
    v = rm.quat_rotate(q, torch.tensor([[1.0, 0.0, 0.0]]))
    assert torch.allclose(v, torch.tensor([[0.0, 1.0, 0.0]]), atol=1e-6)
    ident = rm.quat_mul(q, rm.quat_conjugate(q))
    assert torch.allclose(ident, torch.tensor([[1.0, 0.0, 0.0, 0.0]]), atol=1e-6)


def test_tip_positions_follow_robot_facts():
    from dofbot_rl.physics.mujoco_cpu import MujocoCpuBackend
    from dofbot_rl.paths import robot_model_path

    backend = MujocoCpuBackend(robot_model_path("mjcf"), 3)
    q = torch.tensor([[0.0] * 6, [0.3, 0.5, -0.4, 0.2, 1.0, 0.0], [-1.2, -0.7, 0.7, 0.7, -1.5, 0.0]])
    backend.write_joint_state(torch.arange(3), q, torch.zeros(3, 6))
    tip = rm.tip_positions(backend.ee_pose, torch.tensor(robot.TIP_OFFSET_EE))
    for i in range(3):
        assert tip[i].tolist() == pytest.approx(robot.fingertip_position(q[i].tolist()), abs=1e-5)


def test_observation_layout():
    n = 2
    dof_pos = torch.stack((LOWER, UPPER))
    dof_vel = torch.full((n, 6), 2.0)
    goal_pos = torch.tensor([[0.1, 0.2, 0.3]] * n)
    goal_rot = torch.tensor([[1.0, 0.0, 0.0, 0.0]] * n)
    ee_rot = torch.tensor([[1.0, 0.0, 0.0, 0.0]] * n)
    actions = torch.full((n, 6), 0.5)
    obs = rm.compute_observations(dof_pos, dof_vel, goal_pos, goal_rot, ee_rot, actions, LOWER, UPPER, 0.2)
    assert obs.shape == (n, 29) and len(rm.OBSERVATION_NAMES) == 29
    assert torch.allclose(obs[0, 0:6], -torch.ones(6)) and torch.allclose(obs[1, 0:6], torch.ones(6))
    assert torch.allclose(obs[:, 6:12], torch.full((n, 6), 0.4))
    assert torch.allclose(obs[:, 12:15], goal_pos)
    assert torch.allclose(obs[:, 15:19], goal_rot)
    assert torch.allclose(obs[:, 19:23], torch.tensor([[1.0, 0.0, 0.0, 0.0]] * n))
    assert torch.allclose(obs[:, 23:29], actions)
