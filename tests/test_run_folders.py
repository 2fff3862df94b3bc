"""A run owns its experiment folder: atomic saves with unique temporary files, one training
per folder, no overwriting of an earlier run, the newest checkpoint by modification time,
and a killed training that still leaves a usable checkpoint and its progress rows."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from dofbot_rl.config import load_config
from dofbot_rl.rl.checkpoints import (RunFolderError, RunLock, atomic_save, check_run_folder, latest_checkpoint,
                                      list_checkpoints, load_checkpoint, remove_temp_files, validate_for_task)
from dofbot_rl.rl.trainer import Trainer


def _fake_checkpoint(path, epoch, mtime=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": {"w": torch.zeros(2)}, "epoch": epoch}, path)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def test_newest_checkpoint_is_the_last_written_not_the_highest_epoch(tmp_path):
    run = tmp_path / "runs" / "exp"
    old = _fake_checkpoint(run / "nn" / "last_exp_ep_500_rew_9.0.pth", 500, mtime=time.time() - 3600)
    new = _fake_checkpoint(run / "nn" / "last_exp_ep_30_rew__1.0_.pth", 30)
    assert latest_checkpoint(run) == new
    other = _fake_checkpoint(tmp_path / "runs" / "older" / "nn" / "older.pth", 1, mtime=time.time() - 7200)
    entries = list_checkpoints(tmp_path / "runs")
    assert [e.path for e in entries] == [new, old, other]  # runs newest first, within a run newest first
    assert latest_checkpoint(tmp_path / "runs" / "missing") is None


def test_a_new_run_never_takes_a_folder_with_another_runs_checkpoints(tmp_path):
    run = tmp_path / "exp"
    check_run_folder(run)  # no folder: free
    mine = _fake_checkpoint(run / "nn" / "last_exp_ep_3_rew_1.0.pth", 3)
    with pytest.raises(RunFolderError, match="already holds 1 checkpoint.*new experiment=NAME.*checkpoint="):
        check_run_folder(run)
    with pytest.raises(RunFolderError):
        check_run_folder(run, resume_from=_fake_checkpoint(tmp_path / "elsewhere.pth", 1))
    check_run_folder(run, resume_from=mine)  # continuing that run is fine


def test_training_into_a_used_experiment_is_one_cli_line_and_writes_nothing(tmp_path):
    _fake_checkpoint(tmp_path / "exp" / "nn" / "exp.pth", 100)
    proc = subprocess.run([sys.executable, "-m", "dofbot_rl.cli", "train", f"train_dir={tmp_path}", "experiment=exp",
                           "sim_device=cpu", "num_envs=8", "max_iterations=1"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dofbot-rl: error: "), proc.stderr  # no "training ..." line first
    assert "already holds 1 checkpoint" in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(p.name for p in (tmp_path / "exp").iterdir()) == ["nn"]  # no config.yaml, summaries, lock


def test_a_folder_in_use_by_another_training_is_refused(tmp_path):
    cfg = load_config(["num_envs=8", "max_iterations=1", f"train_dir={tmp_path}", "experiment=busy", "sim_device=cpu"])
    with RunLock(tmp_path / "busy"):
        with pytest.raises(RunFolderError, match=rf"in use by another training \(process {os.getpid()}\)"):
            Trainer(cfg).train()
        assert not (tmp_path / "busy" / "config.yaml").exists()
    with RunLock(tmp_path / "busy"):  # released on exit (and by the OS when a process dies)
        pass


def test_a_folder_in_use_is_the_only_line_on_the_console(tmp_path):
    """A second `dofbot-rl train` into a folder another training holds prints the refusal alone
    (it printed "training ..." first, and built the task, before the lock said no)."""
    with RunLock(tmp_path / "busy"):
        proc = subprocess.run([sys.executable, "-m", "dofbot_rl.cli", "train", f"train_dir={tmp_path}", "experiment=busy",
                               "sim_device=cpu", "num_envs=8", "max_iterations=1"], capture_output=True, text=True,
                              timeout=300)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("dofbot-rl: error: ") and f"in use by another training (process {os.getpid()})" in lines[0]


def test_a_resume_from_an_older_checkpoint_says_which_files_it_replaces(tmp_path, caplog):
    """Issue 18 item 11: resuming epoch 2 of a run that reached epoch 4 writes `last_r_ep_4...` again;
    the earlier continuation's file is replaced, but not silently."""
    common = ["num_envs=16", "sim_device=cpu", f"train_dir={tmp_path}", "experiment=r", "max_iterations=2",
              "train.params.config.horizon_length=8", "train.params.config.num_minibatches=2"]
    first = Trainer(load_config(common)).train()
    second = Trainer(load_config(common + [f"checkpoint={first.checkpoint}"])).train()
    caplog.set_level("WARNING", logger="dofbot_rl")
    caplog.clear()
    third = Trainer(load_config(common + [f"checkpoint={first.checkpoint}"])).train()
    assert third.checkpoint == second.checkpoint  # the same name, epoch 4
    replaced = [r.getMessage() for r in caplog.records if "replac" in r.getMessage()]
    assert any(str(second.checkpoint) in m for m in replaced), caplog.text


def test_concurrent_saves_of_one_name_never_collide(tmp_path):
    """Two writers of the same checkpoint name (issue 18: one shared `.tmp` gave rename errors and torn files)."""
    target = tmp_path / "nn" / "exp.pth"
    target.parent.mkdir()
    errors = []

    def writer(value):
        state = {"model": {"w": torch.full((20000,), float(value))}}
        for _ in range(60):
            try:
                atomic_save(state, target)
            except Exception as exc:  # collected and asserted on below
                errors.append(exc)

    threads = [threading.Thread(target=writer, args=(v,)) for v in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    w = load_checkpoint(target)["model"]["w"]
    assert float(w[0]) in (1.0, 2.0) and bool((w == w[0]).all())  # one writer's whole file
    assert sorted(p.name for p in target.parent.iterdir()) == ["exp.pth"]  # no temporary file left
    umask = os.umask(0o022)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600


def test_leftover_temporary_files_are_removed(tmp_path):
    (tmp_path / ".last_x_ep_3.pth.k2j3.tmp").write_bytes(b"half")
    (tmp_path / "x.pth.tmp").write_bytes(b"old name")
    keep = _fake_checkpoint(tmp_path / "x.pth", 1)
    assert len(remove_temp_files(tmp_path)) == 2
    assert list(tmp_path.iterdir()) == [keep]


def test_killed_training_leaves_a_usable_checkpoint_and_progress_rows(tmp_path):
    """SIGKILL a real `dofbot-rl train` mid-run (long before rl_games' first own save)."""
    run = tmp_path / "killed"
    cmd = [sys.executable, "-m", "dofbot_rl.cli", "train", "num_envs=64", "max_iterations=100000", f"train_dir={tmp_path}",
           "experiment=killed", "sim_device=cpu", "task.env.episode_length=40"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 400  # bounded wait on a busy machine; no timing is asserted
        while not list(run.glob("nn/*.pth")):
            assert proc.poll() is None, "training ended by itself"
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(60)
    checkpoint = latest_checkpoint(run)
    state = validate_for_task(checkpoint, 29, 6)
    assert state["epoch"] >= 1 and checkpoint.name.startswith(f"last_killed_ep_{state['epoch']}_rew_")
    assert all(torch.isfinite(v).all() for v in state["model"].values() if torch.is_tensor(v) and v.is_floating_point())
    rows = [json.loads(line) for line in (run / "progress.jsonl").read_text().splitlines()]
    assert len(rows) >= state["epoch"] and [r["epoch"] for r in rows] == list(range(1, len(rows) + 1))
    with RunLock(run):  # the dead process's lock is gone
        pass
