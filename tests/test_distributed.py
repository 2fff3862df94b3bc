"""Several-process training (``multi_gpu=True`` under torchrun) on the CPU over gloo, and W&B logging.

The same code path as several GPUs (rl_games' gradient all-reduce, rank-0-only writes,
statistics summed over ranks), with two CPU processes: what CI can run.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

# Small, fast runs: 8 envs per rank, 16-step episodes, so every env ends one episode per 16-step epoch.
SMALL = ["num_envs=8", "sim_device=cpu", "task.env.episode_length=16", "train.params.config.horizon_length=16",
         "train.params.config.mini_epochs=1"]


def _torchrun(tmp_path, *overrides, nproc=2, **popen):
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--standalone",
           "-m", "dofbot_rl.cli", "train", "multi_gpu=True", f"train_dir={tmp_path}", *SMALL, *overrides]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return cmd, env


def _progress(run_dir: Path):
    return [json.loads(line) for line in (run_dir / "progress.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory):
    """One real 2-process gloo run of 3 epochs (shared by the tests below)."""
    tmp_path = tmp_path_factory.mktemp("mgpu")
    cmd, env = _torchrun(tmp_path, "max_iterations=3", "experiment=two")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp_path, proc


def test_two_ranks_keep_one_policy_and_count_both_ranks_episodes(two_rank_run):
    tmp_path, proc = two_rank_run
    assert "2 ranks: policy weights identical across ranks (max abs diff 0)" in proc.stderr
    assert "8 envs x 2 ranks" in proc.stderr
    rows = _progress(tmp_path / "two")
    # each rank ends 8 episodes per epoch: the reported count is both ranks' (16), not rank 0's (8)
    assert [r["episodes"] for r in rows] == [16, 16, 16]
    # one final line, from rank 0 only
    assert proc.stdout.count("checkpoint=") == 1


def test_only_rank_zero_writes(two_rank_run):
    tmp_path, _ = two_rank_run
    run = tmp_path / "two"
    events = list((run / "summaries").glob("events.*"))
    assert len(events) == 1  # one TensorBoard writer: rank 0's
    assert len(_progress(run)) == 3  # rows written once, not once per rank
    assert sorted(p.name for p in tmp_path.iterdir()) == ["two"]
    assert not list(run.rglob("*.tmp"))


def test_a_multi_rank_checkpoint_resumes_in_one_cpu_process(two_rank_run, tmp_path):
    run_dir, _ = two_rank_run
    checkpoint = sorted((run_dir / "two" / "nn").glob("*.pth"))[-1]
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert state["epoch"] == 3
    proc = subprocess.run([sys.executable, "-m", "dofbot_rl.cli", "train", f"checkpoint={checkpoint}", "max_iterations=1",
                           f"train_dir={tmp_path}", "experiment=resumed", *SMALL], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "epochs=4" in proc.stdout  # epoch 3 + 1 more


def test_multi_gpu_outside_torchrun_is_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE")}
    proc = subprocess.run([sys.executable, "-m", "dofbot_rl.cli", "train", "multi_gpu=True", f"train_dir={tmp_path}",
                           *SMALL], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("dofbot-rl: error: multi_gpu=True needs torchrun")
    assert "Traceback" not in proc.stderr and not any(tmp_path.iterdir())


def test_more_ranks_than_gpus_is_one_line(monkeypatch):
    from dofbot_rl.rl.distributed import DistributedError, RankContext, rank_device

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert rank_device(RankContext(rank=0, local_rank=0, world_size=2), "cuda:0") == "cuda:0"
    with pytest.raises(DistributedError, match="this machine has 1 GPU"):
        rank_device(RankContext(rank=1, local_rank=1, world_size=2), "cuda:0")
    assert rank_device(RankContext(rank=1, local_rank=1, world_size=2), "cpu") == "cpu"


@pytest.mark.slow
def test_a_dead_rank_ends_the_run_without_half_written_checkpoints(tmp_path):
    import psutil

    cmd, env = _torchrun(tmp_path, "max_iterations=100000", "experiment=dies", "dist_timeout_s=30")
    log_path = tmp_path / "stderr.log"
    with log_path.open("w") as log_file:
        launcher = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log_file, text=True)
    try:
        deadline = time.monotonic() + 300
        while " 2/100000 " not in log_path.read_text():  # rank 0's progress bar: two epochs done
            assert launcher.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "no epoch finished"
            time.sleep(0.5)
        victims = [p for p in psutil.Process(launcher.pid).children(recursive=True)
                   if p.environ().get("RANK") == "1"]
        assert victims
        victims[0].send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        launcher.wait(timeout=120)
        assert time.monotonic() - killed_at < 120
        assert launcher.returncode != 0
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert not list(tmp_path.rglob("*.tmp"))
    for checkpoint in tmp_path.rglob("*.pth"):
        torch.load(checkpoint, map_location="cpu", weights_only=True)  # none half-written


def test_wandb_offline_logs_config_scalars_and_curve(tmp_path):
    pytest.importorskip("wandb")
    env = dict(os.environ, WANDB_MODE="offline", WANDB_DIR=str(tmp_path), WANDB_SILENT="true")
    proc = subprocess.run([sys.executable, "-m", "dofbot_rl.cli", "train", "wandb_activate=True", "wandb_project=ci",
                           "wandb_group=g", "max_iterations=2", f"train_dir={tmp_path}", "experiment=wb", *SMALL],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = list(tmp_path.rglob("offline-run-*"))
    assert runs, "no offline W&B run written"
    assert list(runs[0].rglob("media/images/learning_curve_*.png"))  # the learning curve
    record = next(runs[0].glob("*.wandb")).read_bytes()  # W&B's offline log: config and synced scalars
    assert b"num_envs" in record and b"episode/success_rate" in record and b"goals_per_episode" in record


def test_wandb_missing_is_one_line(tmp_path, monkeypatch):
    from dofbot_rl.config import load_config
    from dofbot_rl.rl.distributed import DistributedError, RankContext, wandb_init

    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed
    cfg = load_config(["wandb_activate=True", "num_envs=4", "sim_device=cpu"])
    with pytest.raises(DistributedError, match=r"pip install -e '\.\[wandb\]'"):
        wandb_init(cfg, RankContext(), tmp_path)
    assert wandb_init(load_config(["num_envs=4", "sim_device=cpu"]), RankContext(), tmp_path) is None


@pytest.mark.slow
def test_two_nodes_over_a_loopback_rendezvous(tmp_path):
    """Two 'machines' of one process each (torchrun --nnodes=2), rendezvous on 127.0.0.1."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for node_rank in (0, 1):
        cmd, env = _torchrun(tmp_path, "max_iterations=2", "experiment=nodes", nproc=1)
        cmd = [c for c in cmd if c != "--standalone"]
        cmd[3:3] = ["--nnodes=2", f"--node_rank={node_rank}", "--rdzv-backend=c10d",
                    f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=dofbot-ci"]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][1][-2000:] + outs[1][1][-2000:]
    assert sum(o[0].count("checkpoint=") for o in outs) == 1
    assert [r["episodes"] for r in _progress(tmp_path / "nodes")] == [16, 16]
