"""The `dofbot-rl` command: summary lines and one clear error line for bad input, nothing half-written."""

import os
import re
import subprocess
import sys

import pytest
import torch

from dofbot_rl import cli


def run_cli(capsys, *args):
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("args, message", [
    (["train", "foo=1"], "Could not override 'foo'"),
    (["train", "num_envs=0"], "num_envs must be > 0"),
    (["train", "num_envs=many"], "num_envs"),
    (["train", "task.env.episode_length=-5"], "episode_length must be > 1"),
    (["train", "task=Nope"], "task/Nope"),
    (["play", "checkpoint=missing.pth"], "checkpoint not found"),
    (["bench", "sizes=0"], "sizes must be positive"),
    (["frobnicate"], "unknown command"),
])
def test_bad_input_gives_one_error_line_and_writes_nothing(capsys, in_tmp, args, message):
    code, out, err = run_cli(capsys, *args)
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dofbot-rl: error:") and message in lines[0], err
    assert "Traceback" not in err
    assert not (in_tmp / "runs").exists()


def test_foreign_and_mismatched_checkpoints_are_refused(capsys, in_tmp, tiny_run):
    (in_tmp / "notes.pth").write_text("not a checkpoint")
    code, _, err = run_cli(capsys, "play", "checkpoint=notes.pth")
    assert code == 2 and "not a loadable rl_games checkpoint" in err

    torch.save({"weights": torch.zeros(3)}, in_tmp / "foreign.pth")
    code, _, err = run_cli(capsys, "play", "checkpoint=foreign.pth")
    assert code == 2 and "no 'model' state dict" in err

    _, checkpoint = tiny_run
    state = torch.load(checkpoint, weights_only=False)
    state["model"]["running_mean_std.running_mean"] = torch.zeros(27)
    torch.save(state, in_tmp / "urdf27.pth")
    code, _, err = run_cli(capsys, "train", "checkpoint=urdf27.pth", "max_iterations=1", "num_envs=8")
    assert code == 2 and "trained for 27 observations / 6 actions, the task has 29 / 6" in err
    assert not (in_tmp / "runs").exists()


def test_play_ends_with_the_machine_readable_line(capsys, tiny_run):
    _, checkpoint = tiny_run
    code, out, _ = run_cli(capsys, "play", f"checkpoint={checkpoint}", "num_envs=16", "episodes=16")
    assert code == 0
    assert re.fullmatch(r"success_rate=[0-9.]+ goals_per_episode=[0-9.]+ episodes=16", out.strip().splitlines()[-1])


def test_bench_ends_with_the_machine_readable_line(capsys):
    code, out, _ = run_cli(capsys, "bench", "sizes=8,32", "seconds=0.2", "sim_device=cpu")
    assert code == 0
    last = out.strip().splitlines()[-1]
    assert re.fullmatch(r"env_steps_per_s=[0-9.]+ overhead_ratio=[0-9.]+ num_envs=(8|32) device=cpu", last), last
    assert "| num_envs |" in out


def test_console_script_is_installed_and_fails_cleanly(in_tmp):
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, "-m", "dofbot_rl.cli", "train", "num_envs=-1"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "dofbot-rl: error: num_envs must be > 0, got -1"
