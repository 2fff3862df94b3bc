"""One GPU session's measurements (issue: GPU training speed). Writes everything under OUT.

    python benchmarks/gpu_session.py OUT_DIR [--quick]

1. agreement of MuJoCo Warp (cuda) with MuJoCo C (cpu): same reset + targets -> joint and EE error;
2. `dofbot-rl bench` table on cuda at 1024 / 4096 / 16384 / 65536 envs, PPO included;
3. time to 90 % success: PPO training runs (3 seeds) with the progress of each epoch;
4. a torch profile of two PPO epochs, to show where the time goes;
5. the shipped policy (8192 envs, 300 epochs, seed 42) with its progress and config.
"""

import json
import os
import sys
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from dofbot_rl.bench import format_table, run_bench
from dofbot_rl.config import load_config
from dofbot_rl.paths import robot_model_path

OUT = Path(sys.argv[1])
OUT.mkdir(parents=True, exist_ok=True)
QUICK = "--quick" in sys.argv
report = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "gpu": torch.cuda.get_device_name(0),
          "torch": torch.__version__}


def save():
    (OUT / "gpu_report.json").write_text(json.dumps(report, indent=2))


def log(*a):
    print(*a, flush=True)


# 1. agreement --------------------------------------------------------------------------
import mujoco
import warp as wp

from dofbot_rl.physics.mujoco_cpu import MujocoCpuBackend
from dofbot_rl.physics.mujoco_warp import MujocoWarpBackend

report.update(mujoco=mujoco.__version__, warp=wp.__version__)
N = 64
t0 = time.perf_counter()
gpu = MujocoWarpBackend(robot_model_path("mjcf"), N, device="cuda:0")
cpu = MujocoCpuBackend(robot_model_path("mjcf"), N)
build = time.perf_counter() - t0
gen = torch.Generator().manual_seed(0)
q0 = (torch.rand(N, 6, generator=gen) - 0.5) * 0.6
q0[:, 5] = 0
tgt = (torch.rand(N, 6, generator=gen) - 0.5) * 1.2
tgt[:, 5] = 0
for b in (gpu, cpu):
    b.write_joint_state(torch.arange(N, device=b.device), q0.to(b.device), torch.zeros(N, 6, device=b.device))
    b.set_joint_position_targets(tgt.to(b.device))
t0 = time.perf_counter()
gpu.step(2)
torch.cuda.synchronize()
first = time.perf_counter() - t0
cpu.step(2)
for _ in range(59):
    gpu.step(2)
    cpu.step(2)
report["agreement"] = {"num_envs": N, "control_steps": 60, "first_step_s_incl_compile": first, "build_s": build,
                       "max_abs_dof_pos_rad": float((gpu.dof_pos.cpu() - cpu.dof_pos).abs().max()),
                       "max_abs_ee_pos_m": float((gpu.ee_pose[:, :3].cpu() - cpu.ee_pose[:, :3]).abs().max())}
log("agreement", report["agreement"])
save()
gpu.close()

# 2. bench ---------------------------------------------------------------------------------
cfg = load_config(["sim_device=cuda:0"])
sizes = [1024, 4096, 16384] if QUICK else [1024, 4096, 16384, 65536]
rows = run_bench(cfg, sizes, seconds=1.5, train_epochs=3, json_path=str(OUT / "bench.json"),
                 on_row=lambda r: log("bench", r))
log(format_table(rows))

# 3. time to success ------------------------------------------------------------------------
from dofbot_rl.rl.trainer import Trainer

runs = {}
num_envs = int(os.environ.get("TTS_ENVS", "8192"))
for seed in (0, 1, 2):
    run_cfg = load_config(["sim_device=cuda:0", f"num_envs={num_envs}", f"seed={seed}",
                           f"max_iterations={int(os.environ.get('TTS_EPOCHS', '80'))}",
                           "train_dir=/tmp/gpu_runs", f"experiment=tts_s{seed}"])
    t0 = time.perf_counter()
    result = Trainer(run_cfg).train()
    hist = [p.__dict__ for p in result.history]
    hit = next((p for p in hist if p["success_rate"] == p["success_rate"] and p["success_rate"] >= 0.9), None)
    runs[seed] = {"wall_s": time.perf_counter() - t0, "time_to_90_s": hit["elapsed_s"] if hit else None,
                  "env_steps_to_90": hit["frame"] if hit else None,
                  "final_goals_per_episode": next((p["goals_per_episode"] for p in reversed(hist)
                                                   if p["goals_per_episode"] == p["goals_per_episode"]), None),
                  "final_success_rate": next((p["success_rate"] for p in reversed(hist)
                                              if p["success_rate"] == p["success_rate"]), None),
                  "checkpoint": str(result.checkpoint)}
    log("tts", seed, runs[seed])
    report["time_to_success"] = {"num_envs": num_envs, "runs": runs}
    save()

# 4. profile ----------------------------------------------------------------------------------
from torch.profiler import ProfilerActivity, profile

prof_cfg = load_config(["sim_device=cuda:0", "num_envs=16384", "max_iterations=2", "train_dir=/tmp/gpu_runs",
                        "experiment=prof"])
with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
    Trainer(prof_cfg).train()
(OUT / "profile.txt").write_text(prof.key_averages().table(sort_by="cpu_time_total", row_limit=40) + "\n\n" +
                                 prof.key_averages().table(sort_by="cuda_time_total", row_limit=25))
save()

# 5. the shipped policy --------------------------------------------------------------------------
if os.environ.get("SHIP", "1") == "0":
    log("done (SHIP=0: no shipped-policy run)")
    sys.exit(0)
import shutil

ship_cfg = load_config(["sim_device=cuda:0", "num_envs=8192", "seed=42", "max_iterations=300",
                        "train_dir=/tmp/gpu_runs", "experiment=DofbotReacher"])
t0 = time.perf_counter()
ship = Trainer(ship_cfg).train()
report["shipped"] = {"wall_s": time.perf_counter() - t0, "checkpoint": ship.checkpoint.name,
                     "last": ship.history[-1].__dict__}
shutil.copy(ship.checkpoint, OUT / "DofbotReacher.pth")
shutil.copy(ship.experiment_dir / "progress.jsonl", OUT / "ship_progress.jsonl")
shutil.copy(ship.experiment_dir / "config.yaml", OUT / "ship_config.yaml")
log("shipped", report["shipped"])
log("done")
save()
