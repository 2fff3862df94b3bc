"""Shared fixtures: one tiny real training run per test session, reused by play/export/CLI tests."""

import pytest

from _tiny_policy import tiny_checkpoint


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """``(cfg, checkpoint)`` of 3 real rl_games PPO epochs on 64 envs (trained once per session)."""
    return tiny_checkpoint(tmp_path_factory.mktemp("tiny"))
