"""Test setup for the teleop tests.

Makes ``dofbot_rl`` importable (the lead may move the path insert to a root conftest) and
provides ``make_task``: a stand-in for DofbotReacher's teleop seam
``set_manual_targets(env_id, targets | None)`` until the real task lands.
"""

import sys
from pathlib import Path

import pytest
import torch

_EXT = Path(__file__).resolve().parents[2] / "exts" / "dofbot.rl_examples"
if str(_EXT) not in sys.path:
    sys.path.insert(0, str(_EXT))


class StubTask:
    """Holds ``joint_pos_targets (num_envs, 6)`` rad: a fake policy writes every row, then
    the manual overrides replace their env's row (what DofbotReacher does after the action)."""

    def __init__(self, num_envs=4):
        self.num_envs = num_envs
        self.joint_pos_targets = torch.zeros(num_envs, 6)
        self.manual = {}  # env_id -> (6,) tensor rad
        self.calls = []  # (env_id, targets | None) in call order

    def set_manual_targets(self, env_id, targets):
        assert isinstance(env_id, int) and 0 <= env_id < self.num_envs
        self.calls.append((env_id, None if targets is None else targets.clone()))
        if targets is None:
            self.manual.pop(env_id, None)
        else:
            assert targets.shape == (6,) and targets.dtype == torch.float32
            self.manual[env_id] = targets.clone()

    def apply_policy(self, policy_targets):
        """One control step: the policy's targets ``(num_envs, 6)``, then the manual overrides."""
        self.joint_pos_targets[:] = policy_targets
        for env_id, targets in self.manual.items():
            self.joint_pos_targets[env_id] = targets


@pytest.fixture
def make_task():
    """Factory: ``make_task(num_envs=4) -> StubTask``."""
    return StubTask
