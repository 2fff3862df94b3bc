"""Real rl_games PPO on the real task: a short run, its checkpoint reloaded, resumed, played, stopped."""

import json
import math
import os
import re
import shutil
import subprocess
import sys
import threading
import time

import pytest
import torch

from dofbot_rl.config import load_config
from dofbot_rl.rl.checkpoints import latest_checkpoint, load_checkpoint, validate_for_task
from dofbot_rl.rl.play import evaluate
from dofbot_rl.rl.trainer import Trainer


def test_short_training_writes_checkpoint_summaries_and_curve(tiny_run):
    cfg, checkpoint = tiny_run
    run_dir = checkpoint.parent.parent
    assert checkpoint.name.startswith("last_tiny_ep_3_rew_")
    state = validate_for_task(checkpoint, 29, 6)
    assert state["epoch"] == 3 and state["frame"] > 0
    assert all(torch.isfinite(v).all() for v in state["model"].values() if torch.is_tensor(v) and v.is_floating_point())
    rows = [json.loads(line) for line in (run_dir / "progress.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    # Epoch k has played k epochs of env-steps (rl_games hands its observer the count from
    # before the epoch: epoch 1 read 0 env-steps and 0 env-steps/s); the last equals the checkpoint's.
    per_epoch = int(cfg.task.env.num_envs) * int(cfg.train.params.config.horizon_length)
    assert [r["frame"] for r in rows] == [per_epoch, 2 * per_epoch, 3 * per_epoch] and rows[-1]["frame"] == state["frame"]
    assert all(math.isfinite(r["env_steps_per_s"]) and r["env_steps_per_s"] > 0 for r in rows)
    assert (run_dir / "learning_curve.png").stat().st_size > 1000
    assert any((run_dir / "summaries").iterdir())
    assert not list(run_dir.glob("nn/*.tmp")) and not list(run_dir.glob("nn/.*.tmp"))  # atomic checkpoint writes


def test_checkpoint_plays_and_reports_goals(tiny_run):
    cfg, checkpoint = tiny_run
    result = evaluate(cfg, checkpoint, episodes=64)
    assert result.episodes == 64
    assert 0.0 <= result.success_rate <= 1.0
    assert result.summary_line().startswith("success_rate=")


def test_resume_trains_more_epochs_and_reports_its_own_checkpoint(tiny_run, tmp_path):
    """Resume adds max_iterations epochs; the run's result is the file it wrote, not a higher
    epoch already in the folder; leftover temporary files are removed."""
    _, checkpoint = tiny_run
    nn_dir = tmp_path / "resumed" / "nn"
    nn_dir.mkdir(parents=True)
    start = nn_dir / checkpoint.name.replace("tiny", "resumed")
    shutil.copy(checkpoint, start)
    stale = nn_dir / "last_resumed_ep_999_rew_50.0.pth"
    shutil.copy(checkpoint, stale)
    os.utime(stale, (time.time() - 3600,) * 2)
    (nn_dir / ".last_resumed_ep_4.pth.x1y2.tmp").write_bytes(b"half a file")
    cfg = load_config(["num_envs=64", "max_iterations=2", f"train_dir={tmp_path}", "experiment=resumed",
                       f"checkpoint={start}", "sim_device=cpu"])
    result = Trainer(cfg).train()
    assert [p.epoch for p in result.history] == [4, 5]  # 3 + 2 more
    assert result.history[-1].max_epochs == 5
    assert result.checkpoint.name.startswith("last_resumed_ep_5_") and load_checkpoint(result.checkpoint)["epoch"] == 5
    assert latest_checkpoint(tmp_path / "resumed") == result.checkpoint
    assert stale.is_file() and not list(nn_dir.glob("*.tmp"))


def test_stop_from_another_thread_leaves_a_checkpoint(tmp_path):
    cfg = load_config(["num_envs=64", "max_iterations=1000", f"train_dir={tmp_path}", "experiment=stopped",
                       "sim_device=cpu"])
    trainer = Trainer(cfg, on_progress=lambda p: trainer.stop() if p.epoch >= 2 else None)
    result = {}
    thread = threading.Thread(target=lambda: result.update(r=trainer.train()))
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive()
    r = result["r"]
    assert r.stopped and r.history[-1].epoch == 2
    assert load_checkpoint(r.checkpoint)["epoch"] == 2


@pytest.mark.slow
def test_default_cpu_training_reaches_goals(tmp_path):
    """README's main job, shortened: the CPU defaults train a policy that reaches >= 50 % of its goals."""
    cfg = load_config(["sim_device=cpu", "max_iterations=60", f"train_dir={tmp_path}", "experiment=reach"])
    result = Trainer(cfg).train()
    played = evaluate(cfg, result.checkpoint, episodes=128)
    assert played.success_rate >= 0.5, played.summary_line()
    assert played.goals_per_episode >= 5.0, played.summary_line()


def test_start_up_is_reported_stage_by_stage(tmp_path):
    """Issue 17: start-up is reported apart from training: the seconds to import rl_games, build the
    task and the agent, and the first epoch; `dofbot-rl train` prints them as one line before its bar."""
    from dofbot_rl.rl.trainer import process_age_s

    age = process_age_s()
    assert age is not None and 0 < age < 24 * 3600  # this test process, on Linux
    cfg = load_config(["num_envs=8", "max_iterations=2", f"train_dir={tmp_path}", "experiment=s", "sim_device=cpu"])
    trainer = Trainer(cfg)
    trainer.train()
    s = trainer.startup
    assert list(s) == ["process", "rl_games", "task", "agent", "first_epoch"]
    assert s["process"] >= age and 0 <= s["rl_games"] <= s["task"] <= s["agent"] <= s["first_epoch"]
    proc = subprocess.run([sys.executable, "-m", "dofbot_rl.cli", "train", "num_envs=8", "max_iterations=2",
                           f"train_dir={tmp_path}", "experiment=cli", "sim_device=cpu"], capture_output=True, text=True,
                          timeout=300)
    lines = [line for line in proc.stderr.replace("\r", "\n").splitlines() if line.startswith("start-up: ")]
    assert proc.returncode == 0 and len(lines) == 1, proc.stderr
    assert re.fullmatch(r"start-up: [0-9.]+ s before train\(\), rl_games import [0-9.]+ s, task [0-9.]+ s, "
                        r"agent [0-9.]+ s, first epoch [0-9.]+ s", lines[0]), lines[0]
