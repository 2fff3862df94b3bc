"""Throughput benchmark: raw physics loop, task loop, and PPO training, per num_envs.

Figures, not assertions. For each ``num_envs``:

* (a) ``physics``: random joint targets -> ``set_joint_position_targets`` -> ``step`` ->
  read ``dof_pos``, ``dof_vel``, ``ee_pose`` (what any task needs at minimum);
* (b) ``task``: ``DofbotReacher.step`` with random actions (targets, physics, tip,
  reward, goals, resets, observations);
* (c) ``train`` (optional): rl_games PPO epochs, env-steps/s including the updates.

``overhead_ratio = (a) / (b)``: how much slower the task loop is than the bare physics.
"""

import json
import time
from dataclasses import asdict, dataclass
from typing import List, Optional

import torch

from dofbot_rl import robot


@dataclass
class BenchRow:
    """One num_envs's figures (env-steps/s; NaN when not measured)."""

    num_envs: int
    device: str
    physics_steps_per_s: float
    task_steps_per_s: float
    train_steps_per_s: float = float("nan")
    first_step_s: float = float("nan")  #: first physics step (includes JIT / CUDA-graph capture)
    gpu_mem_per_env_kb: float = float("nan")

    @property
    def overhead_ratio(self) -> float:
        """(a) / (b): physics-only rate over task rate (1.0 = no task overhead)."""
        return self.physics_steps_per_s / self.task_steps_per_s

    @property
    def train_ratio(self) -> float:
        """(b) / (c): task rate over training rate (the cost of PPO inference + updates)."""
        return self.task_steps_per_s / self.train_steps_per_s


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device, min_seconds: float, warmup: int = 4) -> float:
    """Calls per second of ``fn`` over at least ``min_seconds`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    calls, start = 0, time.perf_counter()
    while True:
        for _ in range(10):
            fn()
        calls += 10
        _sync(device)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return calls / elapsed


def bench_one(cfg, num_envs: int, seconds: float = 2.0, train_epochs: int = 0) -> BenchRow:
    """Measure (a), (b) and optionally (c) at ``num_envs`` with the config's device and task."""
    from omegaconf import OmegaConf

    from dofbot_rl.physics import make_physics
    from dofbot_rl.tasks import make_task

    cfg = OmegaConf.merge(cfg, {"num_envs": num_envs, "task": {"env": {"num_envs": num_envs}}})
    device = torch.device(cfg.sim_device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        free0 = torch.cuda.mem_get_info(device)[0]
    physics = make_physics(cfg)
    lower = torch.tensor(robot.SAFE_LIMITS_LOWER, device=device)
    upper = torch.tensor(robot.SAFE_LIMITS_UPPER, device=device)
    n_sub = int(cfg.task.env.control_frequency_inv)

    physics.write_joint_state(torch.arange(num_envs, device=device), torch.zeros(num_envs, 6, device=device),
                  torch.zeros(num_envs, 6, device=device))
    start = time.perf_counter()
    physics.step(n_sub)
    _sync(device)
    first_step = time.perf_counter() - start

    def physics_step():
        physics.set_joint_position_targets(lower + (upper - lower) * torch.rand(num_envs, 6, device=device))
        physics.step(n_sub)
        torch.cat((physics.dof_pos, physics.dof_vel, physics.ee_pose), dim=-1)

    physics_rate = _timed(physics_step, device, seconds) * num_envs
    task = make_task(cfg, physics)
    task.reset()

    def task_step():
        task.step(2.0 * torch.rand(num_envs, 6, device=device) - 1.0)

    task_rate = _timed(task_step, device, seconds) * num_envs
    row = BenchRow(num_envs=num_envs, device=str(device), physics_steps_per_s=physics_rate,
                   task_steps_per_s=task_rate, first_step_s=first_step)
    if device.type == "cuda":  # device memory taken by physics + task (warp's pool is not torch's)
        row.gpu_mem_per_env_kb = (free0 - torch.cuda.mem_get_info(device)[0]) / num_envs / 1024
    if train_epochs > 0:
        row.train_steps_per_s = bench_training(cfg, task, train_epochs)
    physics.close()
    return row


def bench_training(cfg, task, epochs: int) -> float:
    """Env-steps/s of rl_games PPO on ``task`` over ``epochs`` epochs (the first one excluded)."""
    import tempfile

    from omegaconf import OmegaConf

    from dofbot_rl.rl.trainer import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        run_cfg = OmegaConf.merge(cfg, {"max_iterations": epochs + 1, "train_dir": tmp, "experiment": "bench"})
        result = Trainer(run_cfg, task=task, quiet=True).train()
    rates = [p.env_steps_per_s for p in result.history[1:]]
    return sum(rates) / len(rates) if rates else float("nan")


def format_table(rows: List[BenchRow]) -> str:
    """A Markdown table of the rows (env-steps/s rounded to thousands)."""
    head = ("| num_envs | device | (a) physics | (b) task | (c) PPO train | (a)/(b) | (b)/(c) | first step s | GPU KB/env |\n"
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    lines = [head]
    for r in rows:
        lines.append(f"| {r.num_envs} | {r.device} | {r.physics_steps_per_s:,.0f} | {r.task_steps_per_s:,.0f} | "
                     f"{r.train_steps_per_s:,.0f} | {r.overhead_ratio:.2f} | {r.train_ratio:.2f} | {r.first_step_s:.2f} | "
                     f"{r.gpu_mem_per_env_kb:.1f} |")
    return "\n".join(lines)


def run_bench(cfg, sizes: List[int], seconds: float, train_epochs: int, json_path: Optional[str] = None,
              on_row=None) -> List[BenchRow]:
    """Benchmark every size; optionally write JSON (rows + versions + date)."""
    from dofbot_rl.rl.trainer import share_cpu_with_physics

    share_cpu_with_physics(cfg)
    rows = []
    for n in sizes:
        row = bench_one(cfg, n, seconds=seconds, train_epochs=train_epochs)
        rows.append(row)
        if on_row is not None:
            on_row(row)
    if json_path:
        import platform

        import mujoco

        meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "torch": torch.__version__, "mujoco": mujoco.__version__,
                "python": platform.python_version(), "machine": platform.processor() or platform.machine(),
                "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
        with open(json_path, "w") as f:
            json.dump({"meta": meta, "rows": [dict(asdict(r), overhead_ratio=r.overhead_ratio, train_ratio=r.train_ratio)
                                              for r in rows]}, f, indent=2)
    return rows
