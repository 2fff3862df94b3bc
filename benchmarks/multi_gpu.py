"""Multi-GPU scaling of PPO training (issue: several GPUs under torchrun), run on one host with 2 GPUs.

Prints, from fresh processes started the way a user starts them:
- PPO env-steps/s at 16384 envs per GPU on 1 GPU vs 2 GPUs (scaling efficiency = 2-GPU / (2 x 1-GPU));
- wall time from process start to the first epoch with >= 90 % success, 1 x 16384 envs vs 2 x 8192.

Usage (on the GPU host, from the repository root)::

    python benchmarks/multi_gpu.py [--epochs 30] [--t90-epochs 60] [--out results.json]

The time of each epoch is read from rank 0's progress bar as it streams (seconds since the
process was started); the success figures from progress.jsonl at the end.
"""

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

EPOCH = re.compile(r"\|\s*(\d+)/(\d+) \[")


def run(label, ngpu, num_envs, epochs, train_dir, extra=()):
    """Start one training (torchrun for ngpu > 1); returns figures read from its bar and progress.jsonl."""
    exp = f"{label}"
    overrides = [f"num_envs={num_envs}", f"max_iterations={epochs}", "sim_device=cuda:0", f"train_dir={train_dir}",
                 f"experiment={exp}", *extra]
    if ngpu > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ngpu}",
               "-m", "dofbot_rl.cli", "train", "multi_gpu=True", *overrides]
    else:
        cmd = [sys.executable, "-m", "dofbot_rl.cli", "train", *overrides]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
    epoch_time = {}
    tail = []

    def read_err():
        buf = ""
        while True:
            ch = proc.stderr.read(256)
            if not ch:
                break
            buf += ch
            parts = re.split(r"[\r\n]", buf)
            buf = parts.pop()
            for part in parts:
                m = EPOCH.search(part)
                if m:
                    epoch_time.setdefault(int(m.group(1)), time.monotonic() - t0)
                elif part.strip():
                    tail.append(part)

    reader = threading.Thread(target=read_err, daemon=True)
    reader.start()
    out = proc.stdout.read()
    proc.wait()
    reader.join(timeout=5)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        print(f"{label}: exit {proc.returncode}\n" + "\n".join(tail[-30:]), file=sys.stderr)
        return {"label": label, "failed": True}
    rows = [json.loads(line) for line in (Path(train_dir) / exp / "progress.jsonl").read_text().splitlines()]
    rates = [r["env_steps_per_s"] for r in rows[3:]] or [r["env_steps_per_s"] for r in rows]
    e90 = next((r["epoch"] for r in rows if (r.get("success_rate") or 0) >= 0.9), None)
    return {"label": label, "gpus": ngpu, "envs_per_gpu": num_envs, "epochs": len(rows),
            "ppo_env_steps_per_s": statistics.median(rates), "first_epoch_s": epoch_time.get(1),
            "epoch_90": e90, "t90_from_process_start_s": epoch_time.get(e90) if e90 else None,
            "t90_frames": next((r["frame"] for r in rows if r["epoch"] == e90), None) if e90 else None,
            "final_success_rate": rows[-1].get("success_rate"), "wall_s": wall, "final_line": out.strip()[-200:]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30, help="epochs of the throughput runs")
    parser.add_argument("--t90-epochs", type=int, default=60, help="epochs of the time-to-90%% runs")
    parser.add_argument("--seeds", type=int, default=1, help="seeds of the time-to-90%% runs")
    parser.add_argument("--out", default="", help="write the figures as JSON here")
    args = parser.parse_args(argv)
    import torch

    print(f"GPUs: {torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}; torch {torch.__version__}", flush=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results.append(run("warmup", 1, 1024, 2, tmp))  # warp kernel cache: compiled once, before any clock
        results.append(run("tp_1gpu", 1, 16384, args.epochs, tmp))
        results.append(run("tp_2gpu", 2, 16384, args.epochs, tmp))
        for seed in range(args.seeds):
            results.append(run(f"t90_1x16384_s{seed}", 1, 16384, args.t90_epochs, tmp, [f"seed={seed}"]))
            results.append(run(f"t90_2x8192_s{seed}", 2, 8192, args.t90_epochs, tmp, [f"seed={seed}"]))
    by = {r["label"]: r for r in results}
    print("\n| run | GPUs | envs/GPU | PPO env-steps/s | first epoch (s from start) | 90 % success (s from start) | env-steps to 90 % |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results[1:]:
        if r.get("failed"):
            print(f"| {r['label']} | failed |")
            continue
        t90, frames = r["t90_from_process_start_s"], r["t90_frames"]
        print(f"| {r['label']} | {r['gpus']} | {r['envs_per_gpu']} | {r['ppo_env_steps_per_s'] / 1e6:.2f}M | "
              f"{r['first_epoch_s'] or float('nan'):.1f} | {'-' if t90 is None else f'{t90:.1f}'} | "
              f"{'-' if frames is None else f'{frames / 1e6:.1f}M'} |")
    one, two = by.get("tp_1gpu"), by.get("tp_2gpu")
    if one and two and not one.get("failed") and not two.get("failed"):
        print(f"\nscaling 1 -> 2 GPUs at 16384 envs/GPU: {two['ppo_env_steps_per_s'] / one['ppo_env_steps_per_s']:.2f}x "
              f"(efficiency {two['ppo_env_steps_per_s'] / (2 * one['ppo_env_steps_per_s']):.0%})")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
