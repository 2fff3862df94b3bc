"""`play` counts the episodes it was asked for even when env 0 is driven by hand or by the arm (issue 18 item 6)."""

import pytest

from dofbot_rl.config import load_config
from dofbot_rl.rl.play import evaluate


def _cfg(tiny_run, *extra):
    cfg, _ = tiny_run
    return load_config(["num_envs=4", "task.env.episode_length=40", "sim_device=cpu", f"train_dir={cfg.train_dir}",
                        "experiment=tiny", "test=True", *extra])


def test_manual_env_is_not_counted_and_the_others_finish_the_episodes(tiny_run):
    _, checkpoint = tiny_run
    cfg = _cfg(tiny_run)
    calls = []

    def hold_env0(task, actions):  # what teleop and real2sim do to env 0
        task.set_manual_targets(0, task.dof_pos[0].tolist())

    result = evaluate(cfg, checkpoint, episodes=8, on_step=hold_env0, progress=lambda d, t: calls.append((d, t)))
    assert result.episodes >= 8  # 3 counted envs: 3 rounds (it was 2 rounds, 6 episodes, before)
    assert calls[0][0] == 0 and calls[0][1] > 1  # the bar knows its total from the start (not 0/1)
    assert calls[-1][0] == calls[-1][1]


def test_until_interrupted_runs_past_the_episode_count_and_keeps_the_figures(tiny_run):
    _, checkpoint = tiny_run
    cfg = _cfg(tiny_run)
    steps = {"n": 0}

    def stop_later(task, actions):
        task.set_manual_targets(0, task.dof_pos[0].tolist())
        steps["n"] += 1
        if steps["n"] == 200:  # 5 rounds of 39 steps: far more than episodes=1 asks for
            raise KeyboardInterrupt

    result = evaluate(cfg, checkpoint, episodes=1, on_step=stop_later, until_interrupted=True)
    assert result.steps == 199 and result.episodes == 15


def test_every_env_manual_is_refused(tiny_run):
    _, checkpoint = tiny_run
    cfg = load_config(["num_envs=1", "task.env.episode_length=40", "sim_device=cpu", "test=True"])
    with pytest.raises(ValueError, match="num_envs >= 2"):
        evaluate(cfg, checkpoint, episodes=2, on_step=lambda task, a: task.set_manual_targets(0, task.dof_pos[0].tolist()),
                 progress=lambda d, t: None)
