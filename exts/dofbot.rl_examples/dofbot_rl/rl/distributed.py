"""Training on several processes: rl_games' multi-GPU PPO under ``torchrun``, on GPUs or CPUs.

OmniIsaacGymEnvs' way, with its names::

    torchrun --nproc_per_node=2 -m dofbot_rl.cli train multi_gpu=True num_envs=8192

Every process (rank) builds its own physics with its own ``num_envs`` on ``cuda:LOCAL_RANK``
(``cpu`` on the CPU) and seeds it with ``seed + RANK``; rl_games all-reduces the gradients,
so the policy stays the same on every rank. Only rank 0 writes (checkpoints, TensorBoard,
progress, learning curve, the final line); the episode statistics are summed over all ranks
each epoch (:meth:`RankContext.all_reduce_sums`), so the figures describe the whole run.

rl_games 1.6 hard-codes the NCCL backend and ``cuda:LOCAL_RANK`` in ``A2CBase.__init__``
and calls ``torch.cuda.set_device`` in ``train()``. :class:`DistributedA2CAgent`, a narrow
subclass registered through rl_games' own algorithm factory, lets this module open the
process group instead (NCCL on CUDA, gloo on the CPU, with a timeout so that the other
ranks end when one dies) and leaves rl_games' all-reduce, broadcast and rank-0-only saving
as they are.
"""

import contextlib
import datetime
import logging
import os
from dataclasses import dataclass
from typing import Dict, Optional

import torch
from dofbot_rl.errors import DofbotRlError

log = logging.getLogger(__name__)


class DistributedError(DofbotRlError, RuntimeError):
    """A multi-process run that cannot start (not under torchrun, more ranks than GPUs, ...)."""


@dataclass(frozen=True)
class RankContext:
    """Where this process sits in a ``torchrun`` job.

    Attributes:
        rank: global rank (``RANK``), 0 writes the files.
        local_rank: rank on this machine (``LOCAL_RANK``): the GPU index on CUDA.
        world_size: number of processes in the job (``WORLD_SIZE``).
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """True on the rank that writes files and prints (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True once a process group of several ranks is open."""
        return self.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized()

    def all_reduce_sums(self, values: Dict[str, float]) -> Dict[str, float]:
        """Sum per-rank figures over all ranks (returned unchanged with one rank).

        Args:
            values: name -> this rank's number (e.g. goals reached and episodes ended this
                epoch). Every rank calls it in the same epoch with the same keys.

        Returns:
            name -> the sum over every rank.
        """
        if not self.distributed:
            return dict(values)
        keys = sorted(values)
        device = "cuda" if torch.distributed.get_backend() == "nccl" else "cpu"
        summed = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
        torch.distributed.all_reduce(summed)
        return dict(zip(keys, summed.cpu().tolist()))


def rank_context_from_env(environ=None) -> RankContext:
    """Read ``RANK`` / ``LOCAL_RANK`` / ``WORLD_SIZE`` as ``torchrun`` sets them.

    Raises:
        DistributedError: when they are missing (``multi_gpu=True`` outside ``torchrun``) or
            not whole numbers in range.
    """
    env = os.environ if environ is None else environ
    missing = [k for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE") if k not in env]
    if missing:
        raise DistributedError(
            f"multi_gpu=True needs torchrun ({', '.join(missing)} not set): run "
            "`torchrun --nproc_per_node=N -m dofbot_rl.cli train multi_gpu=True ...` (docs/training.md)")
    try:
        ctx = RankContext(rank=int(env["RANK"]), local_rank=int(env["LOCAL_RANK"]), world_size=int(env["WORLD_SIZE"]))
    except ValueError:
        raise DistributedError("RANK, LOCAL_RANK and WORLD_SIZE must be whole numbers (set by torchrun)") from None
    if not (0 <= ctx.rank < ctx.world_size and 0 <= ctx.local_rank):
        raise DistributedError(f"RANK={ctx.rank} is outside WORLD_SIZE={ctx.world_size}")
    return ctx


def setup(cfg):
    """Open this process's part of a ``multi_gpu=True`` run; returns ``(cfg, rank)``.

    With ``multi_gpu=False``: ``(cfg, RankContext())``, nothing done. Otherwise reads the
    rank from ``torchrun``'s variables, puts this rank on ``cuda:LOCAL_RANK`` (a CUDA run) or
    the CPU, seeds it with ``seed + RANK`` and opens the process group (NCCL or gloo, with
    ``dist_timeout_s``). Call :func:`destroy_process_group` at the end.

    Raises:
        DistributedError: not under torchrun, or more ranks than GPUs on this machine.
    """
    if not cfg.multi_gpu:
        return cfg, RankContext()
    from omegaconf import OmegaConf

    ctx = rank_context_from_env()
    device = rank_device(ctx, cfg.sim_device)
    cfg = OmegaConf.merge(cfg, {"sim_device": device, "rl_device": device, "seed": int(cfg.seed) + ctx.rank})
    OmegaConf.set_readonly(cfg, True)
    init_process_group(ctx, device, float(cfg.dist_timeout_s))
    return cfg, ctx


def rank_device(ctx: RankContext, sim_device: str) -> str:
    """The device of this rank: ``cuda:LOCAL_RANK`` for a CUDA run, ``cpu`` for a CPU run.

    Raises:
        DistributedError: when this machine has fewer GPUs than ranks on it.
    """
    if not str(sim_device).startswith("cuda"):
        return "cpu"
    count = torch.cuda.device_count()
    if ctx.local_rank >= count:
        raise DistributedError(f"LOCAL_RANK={ctx.local_rank} but this machine has {count} GPU(s): "
                               f"start at most {count} processes per node (--nproc_per_node)")
    return f"cuda:{ctx.local_rank}"


def init_process_group(ctx: RankContext, device: str, timeout_s: float) -> None:
    """Open the default process group: NCCL for CUDA ranks, gloo for CPU ranks.

    Args:
        ctx: this rank (from :func:`rank_context_from_env`).
        device: this rank's device (:func:`rank_device`).
        timeout_s: how long a collective waits for a missing rank before failing (s); bounds
            how long the others live on when one rank dies.
    """
    if torch.distributed.is_initialized():
        return
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(device.split(":")[1]))
        os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")  # a dead peer ends the wait
    torch.distributed.init_process_group(backend, rank=ctx.rank, world_size=ctx.world_size,
                                         timeout=datetime.timedelta(seconds=timeout_s))
    log.debug("rank %d/%d: process group %s on %s", ctx.rank, ctx.world_size, backend, device)


def destroy_process_group() -> None:
    """Close the default process group if one is open (end of a run)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def weights_agree(model: torch.nn.Module) -> float:
    """Max absolute difference of ``model``'s parameters between this rank and rank 0.

    A check that the gradient all-reduce kept every rank's policy identical; every rank
    must call it. Returns ``0.0`` with one rank.
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return 0.0
    flat = torch.cat([p.detach().reshape(-1).double() for p in model.parameters()])
    reference = flat.clone()
    torch.distributed.broadcast(reference, 0)
    diff = (flat - reference).abs().max().reshape(1)
    torch.distributed.all_reduce(diff, op=torch.distributed.ReduceOp.MAX)
    return float(diff.item())


def register_agent(runner) -> None:
    """Make ``runner`` (an ``rl_games.torch_runner.Runner``) build this project's PPO agent for
    ``a2c_continuous`` (rl_games' own extension point, ``algo_factory.register_builder``): the
    host-sync-free rollout (:func:`dofbot_rl.rl.vecenv.host_sync_free_agent_class`), switched
    to rl_games' multi-GPU mode when a process group of several ranks is open."""
    runner.algo_factory.register_builder("a2c_continuous", lambda **kwargs: _agent_class()(**kwargs))


_AGENT_CLASS = None


def _agent_class():
    """:class:`DistributedA2CAgent`, built on first use (rl_games is imported lazily)."""
    global _AGENT_CLASS
    if _AGENT_CLASS is None:
        from dofbot_rl.rl.vecenv import host_sync_free_agent_class

        class DistributedA2CAgent(host_sync_free_agent_class()):
            """rl_games' continuous PPO agent on a process group this module opened.

            rl_games' ``A2CBase.__init__`` would open an NCCL group and force
            ``cuda:LOCAL_RANK``; here the group is already open (any backend) and the
            params say ``multi_gpu: False``, so rl_games builds a one-process agent (and
            its Runner leaves the seed alone: this rank's seed is already ``seed + RANK``).
            Then the agent is switched to rl_games' multi-GPU mode, whose gradient
            all-reduce, learning-rate and stop broadcasts and rank-0-only saving run
            unchanged.
            """

            def __init__(self, base_name, params):
                super().__init__(base_name=base_name, params=params)
                if not (torch.distributed.is_available() and torch.distributed.is_initialized()
                        and torch.distributed.get_world_size() > 1):
                    return
                self.multi_gpu = True
                self.global_rank = torch.distributed.get_rank()
                self.world_size = torch.distributed.get_world_size()
                self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
                self.config["multi_gpu"] = True

            def train(self):
                if not self.multi_gpu:
                    return super().train()
                # rl_games calls torch.cuda.set_device(local_rank) in multi-GPU mode; a CPU rank has none.
                with _no_cuda_set_device(self.ppo_device):
                    return super().train()

        _AGENT_CLASS = DistributedA2CAgent
    return _AGENT_CLASS


@contextlib.contextmanager
def _no_cuda_set_device(device):
    """Within the block, ``torch.cuda.set_device`` does nothing when ``device`` is the CPU."""
    if str(device).startswith("cuda"):
        yield
        return
    original = torch.cuda.set_device
    torch.cuda.set_device = lambda *_args, **_kwargs: None
    try:
        yield
    finally:
        torch.cuda.set_device = original


def wandb_init(cfg, ctx: RankContext, run_dir) -> Optional[object]:
    """Start a Weights & Biases run on rank 0 when ``wandb_activate=True`` (OIGE's keys).

    TensorBoard scalars are mirrored (``sync_tensorboard=True``, so call this before rl_games
    opens its SummaryWriter); the resolved config is logged. ``WANDB_MODE=offline`` works
    with no network.

    Returns:
        the ``wandb`` run, or ``None`` when off or on another rank.

    Raises:
        DistributedError: ``wandb_activate=True`` without the package (says how to install).
    """
    if not cfg.wandb_activate or not ctx.is_main:
        return None
    try:
        import wandb
    except ImportError:
        raise DistributedError("wandb_activate=True needs Weights & Biases: pip install -e '.[wandb]'") from None
    from dofbot_rl.config import to_container

    return wandb.init(project=cfg.wandb_project, entity=cfg.wandb_entity or None, group=cfg.wandb_group or None,
                      name=cfg.wandb_name or cfg.experiment, config=to_container(cfg), dir=str(run_dir),
                      sync_tensorboard=True, resume="allow", reinit=True)
