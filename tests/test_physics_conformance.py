"""Conformance of every physics backend to the seam (dofbot_rl.physics.base).

Each backend must: report kinematics that match the robot facts after a reset, track PD
targets, leave other envs alone on a partial reset, and be deterministic. The MuJoCo C
backend runs by default; MuJoCo Warp on warp's CPU device is `slow` (about a minute of
kernel compilation on a cold cache); the Isaac Sim backend runs these checks in Kit
(dofbot_rl/app/tests).
"""

import importlib.util

import pytest
import torch

from dofbot_rl import robot
from dofbot_rl.paths import robot_model_path
from dofbot_rl.physics.base import PhysicsBackend


def _mujoco_cpu(n):
    from dofbot_rl.physics.mujoco_cpu import MujocoCpuBackend

    return MujocoCpuBackend(robot_model_path("mjcf"), n)


def _mujoco_warp_cpu(n):
    from dofbot_rl.physics.mujoco_warp import MujocoWarpBackend

    return MujocoWarpBackend(robot_model_path("mjcf"), n, device="cpu")


BACKENDS = [pytest.param(_mujoco_cpu, id="mujoco-cpu")]
if importlib.util.find_spec("mujoco_warp") is not None:
    BACKENDS.append(pytest.param(_mujoco_warp_cpu, id="mujoco-warp", marks=pytest.mark.slow))


@pytest.fixture(params=BACKENDS)
def make_backend(request):
    return request.param


def _poses(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    lo, hi = torch.tensor(robot.SAFE_LIMITS_LOWER), torch.tensor(robot.SAFE_LIMITS_UPPER)
    q = lo + (hi - lo) * torch.rand(n, 6, generator=g)
    q[:, 5] = 0.0
    return q


def test_implements_the_protocol(make_backend):
    b = make_backend(4)
    assert isinstance(b, PhysicsBackend)
    assert b.num_envs == 4 and b.num_dof == 6 and b.dt == pytest.approx(1 / 120, rel=1e-4)
    assert b.env_origins.shape == (4, 3)


def test_reset_gives_the_kinematics_of_the_robot_facts(make_backend):
    n = 6
    b = make_backend(n)
    q = _poses(n)
    b.write_joint_state(torch.arange(n, device=b.device), q.to(b.device), torch.zeros(n, 6, device=b.device))
    assert torch.allclose(b.dof_pos.cpu(), q, atol=1e-6)
    assert torch.allclose(b.dof_vel.cpu(), torch.zeros(n, 6))
    pose = b.ee_pose.cpu()
    assert pose.shape == (n, 7)
    for i in range(n):
        pos, _ = robot.link_frames(q[i].tolist())[-1]
        assert pose[i, :3].tolist() == pytest.approx(pos, abs=1e-5)
    assert torch.allclose(pose[:, 3:].norm(dim=-1), torch.ones(n), atol=1e-5)


def test_pd_targets_are_tracked(make_backend):
    n = 8
    b = make_backend(n)
    b.write_joint_state(torch.arange(n, device=b.device), torch.zeros(n, 6, device=b.device), torch.zeros(n, 6, device=b.device))
    targets = _poses(n, seed=1)
    b.set_joint_position_targets(targets.to(b.device))
    for _ in range(60):  # 1 s
        b.step(2)
    err = (b.dof_pos.cpu() - targets).abs()
    assert err.max().item() < 0.05, f"tracking error {err.max().item():.3f} rad after 1 s"
    assert b.dof_vel.cpu().abs().max().item() < 0.2


def test_partial_reset_leaves_other_envs_alone(make_backend):
    n = 4
    b = make_backend(n)
    b.write_joint_state(torch.arange(n, device=b.device), torch.zeros(n, 6, device=b.device), torch.zeros(n, 6, device=b.device))
    b.set_joint_position_targets(_poses(n).to(b.device))
    for _ in range(10):
        b.step(2)
    before = b.dof_pos.cpu().clone()
    q = _poses(1, seed=3)
    b.write_joint_state(torch.tensor([2], device=b.device), q.to(b.device), torch.zeros(1, 6, device=b.device))
    after = b.dof_pos.cpu()
    assert torch.allclose(after[[0, 1, 3]], before[[0, 1, 3]])
    assert torch.allclose(after[2], q[0], atol=1e-6)


def test_same_reset_same_trajectory(make_backend):
    n = 3
    runs = []
    for _ in range(2):
        b = make_backend(n)
        b.write_joint_state(torch.arange(n, device=b.device), _poses(n).to(b.device), torch.zeros(n, 6, device=b.device))
        b.set_joint_position_targets(_poses(n, seed=5).to(b.device))
        for _ in range(20):
            b.step(2)
        runs.append(b.ee_pose.cpu())
    assert torch.equal(runs[0], runs[1])


@pytest.mark.slow
def test_warp_and_c_backends_agree():
    """MuJoCo Warp (float32) and MuJoCo C (float64) give the same motion (facts: within 1e-4)."""
    pytest.importorskip("mujoco_warp")
    n = 4
    backends = [_mujoco_cpu(n), _mujoco_warp_cpu(n)]
    for b in backends:
        b.write_joint_state(torch.arange(n), _poses(n), torch.zeros(n, 6))
        b.set_joint_position_targets(_poses(n, seed=7))
    for _ in range(60):
        for b in backends:
            b.step(2)
    assert torch.allclose(backends[0].dof_pos, backends[1].dof_pos.cpu(), atol=1e-4)
    assert torch.allclose(backends[0].ee_pose, backends[1].ee_pose.cpu(), atol=1e-4)
