"""The evaluation harness of benchmarks/onboard_vs_sim.py: goals sampled and counted like the task's."""

import math
import random

import numpy as np
import pytest

import onboard_vs_sim  # benchmarks/ is on sys.path (conftest)


def test_goal_sampling_matches_the_task_region():
    rng = random.Random(0)
    goals = np.array([onboard_vs_sim.sample_goal_position(rng, (0.15, 0.20, 0.15, 0.35)) for _ in range(2000)])
    assert np.all((np.abs(goals[:, :2]) >= 0.15 - 1e-9) & (np.abs(goals[:, :2]) <= 0.20 + 1e-9))
    assert np.all((goals[:, 2] >= 0.15) & (goals[:, 2] <= 0.35))
    assert (goals[:, 0] > 0).mean() == pytest.approx(0.5, abs=0.05)
    rot = np.array([onboard_vs_sim.sample_goal_rotation(rng) for _ in range(100)])
    np.testing.assert_allclose(np.linalg.norm(rot, axis=1), 1.0, atol=1e-12)


def test_goal_rotation_matches_the_task_composition():
    rng = random.Random(3)
    q = onboard_vs_sim.sample_goal_rotation(rng)
    rng = random.Random(3)
    ax, ay = math.pi * rng.uniform(-1.0, 1.0), math.pi * rng.uniform(-1.0, 1.0)
    from dofbot_rl.sim2real.onboard import _axis_quat, quat_mul
    np.testing.assert_allclose(q, quat_mul(_axis_quat(0, ax), _axis_quat(1, ay)), atol=1e-12)


class _Target:
    """A goal target whose fingertip jumps onto each goal after ``lag`` ticks."""

    def __init__(self, lag):
        self.lag, self.goal_pos, self.fingertip, self._ticks = lag, None, None, 0

    def set_goal(self, pos, quat=None):
        self.goal_pos, self.fingertip, self._ticks = list(pos), None, 0

    def tick(self):
        self._ticks += 1
        if self._ticks >= self.lag:
            self.fingertip = list(self.goal_pos)


def test_goal_episodes_counts_like_the_task():
    target = _Target(lag=3)
    counter = onboard_vs_sim.GoalEpisodes(random.Random(0), (0.15, 0.20, 0.15, 0.35), episodes=2, episode_s=1.0,
                                          window_s=0.5, tolerance=0.05)
    t, done = 0.0, False
    while not done:
        done = counter.on_tick(t, target)
        target.tick()
        t += 0.1
    assert counter.episodes == 2 and counter.goals_reached > 0
    assert counter.goals_counted >= counter.goals_reached and 0 < counter.success_rate <= 1
