"""Play a checkpoint: rl_games' own player picks the actions, this loop counts goals.

The actions come from ``rl_games``' ``PpoPlayerContinuous`` restored from the checkpoint
(observation normaliser, MLP, deterministic ``mu``, clamp to ``[-1, 1]``), the same path
``test=True`` takes in IsaacGymEnvs, so figures measured here are the policy's.
"""

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch

from dofbot_rl.rl.checkpoints import CheckpointError, latest_checkpoint, validate_for_config
from dofbot_rl.rl.trainer import rl_games_output_to_log, seed_everything, share_cpu_with_physics
from dofbot_rl.rl.vecenv import RlGamesVecEnv, register_rl_games

log = logging.getLogger(__name__)


@dataclass
class EvalResult:
    """Figures of an evaluation over whole episodes."""

    episodes: int  #: episodes finished
    goals_reached: float  #: total goals reached
    goals_counted: float  #: goals reached + goals missed (up >= success_window_s at the end)
    steps: int  #: control steps run (per env)

    @property
    def success_rate(self) -> float:
        """Goals reached / goals counted, in ``[0, 1]`` (NaN without any counted goal)."""
        return self.goals_reached / self.goals_counted if self.goals_counted else float("nan")

    @property
    def goals_per_episode(self) -> float:
        """Mean goals reached per finished episode."""
        return self.goals_reached / self.episodes if self.episodes else float("nan")

    def summary_line(self) -> str:
        """The machine-readable last line of ``dofbot-rl play``."""
        return (f"success_rate={self.success_rate:.4f} goals_per_episode={self.goals_per_episode:.3f} "
                f"episodes={self.episodes}")


def load_player(cfg, env: RlGamesVecEnv, checkpoint, quiet: bool = False) -> object:
    """An rl_games player for ``env``'s task with the weights of ``checkpoint`` restored.

    The checkpoint is validated first (safe load, sizes against the task and the config's
    network) and its weights
    are loaded onto the player's device, whatever device it was trained on.

    Raises:
        dofbot_rl.rl.checkpoints.CheckpointError: missing, foreign or mismatched checkpoint.
    """
    from dofbot_rl.rl.rlg_compat import runner_class
    from dofbot_rl.rl.trainer import Trainer

    state = validate_for_config(checkpoint, cfg, env.task.num_observations, env.task.num_actions)
    register_rl_games(lambda: env)
    params = Trainer(cfg, task=env.task).rl_games_params()
    params["config"]["env_info"] = env.get_env_info()
    with rl_games_output_to_log(quiet):
        runner = runner_class()()
        runner.load({"params": params})
        player = runner.create_player()
    # What rl_games' player.restore does, from the safely loaded (weights_only, CPU-mapped) state,
    # so GPU-trained checkpoints play on a CPU and nothing is unpickled beyond tensors.
    player.model.load_state_dict(state["model"])
    if player.normalize_input and "running_mean_std" in state:
        player.model.running_mean_std.load_state_dict(state["running_mean_std"])
    player.has_batch_dimension = True
    return player


def policy_actions(player, obs: torch.Tensor) -> torch.Tensor:
    """Deterministic actions ``(num_envs, 6)`` in ``[-1, 1]`` for observations ``(num_envs, 29)``."""
    with torch.no_grad():
        return player.get_action(obs, is_deterministic=True)


def evaluate(cfg, checkpoint, task=None, episodes: Optional[int] = None,
             on_step: Optional[Callable[[object, torch.Tensor], None]] = None, progress=None,
             quiet: bool = False, until_interrupted: bool = False) -> EvalResult:
    """Run the policy of ``checkpoint`` until ``episodes`` episodes have finished.

    All envs run whole episodes in lockstep, so at least ``episodes`` (rounded up to a
    multiple of the counted envs) are counted. Envs under manual targets (teleop, the
    real arm's read-back in real2sim) never time out and are not counted: the others run
    as many rounds as needed.

    Args:
        cfg: loaded config (``cfg.episodes`` when ``episodes`` is None).
        checkpoint: the ``.pth`` to play.
        task: the task; built from ``cfg`` when omitted.
        on_step: called after each control step with ``(task, actions)`` (teleop,
            sim-to-real mirroring, rendering).
        progress: optional callable ``(steps_done, steps_total)`` for a progress bar; called
            with ``(0, total)`` before the first step.
        quiet: route rl_games' prints to the log (see :func:`rl_games_output_to_log`).
        until_interrupted: run until Ctrl+C (``KeyboardInterrupt``) instead, whatever
            ``episodes`` says (keyboard teleop); the figures so far are returned.

    Raises:
        dofbot_rl.rl.checkpoints.CheckpointError: for a bad checkpoint.
        ValueError: every env is under manual targets, so no episode can ever finish.
    """
    from dofbot_rl.tasks import make_task

    seed_everything(cfg.seed)
    share_cpu_with_physics(cfg)
    task = task if task is not None else make_task(cfg)
    env = RlGamesVecEnv(task, cfg.rl_device)
    player = load_player(cfg, env, checkpoint, quiet=quiet)
    episodes = int(episodes if episodes is not None else cfg.episodes)
    steps_per_round = task.episode_length - 1
    result = EvalResult(episodes=0, goals_reached=0.0, goals_counted=0.0, steps=0)

    def total_steps() -> int:
        counted = task.num_envs - len(task.manual_env_ids)
        if counted < 1:
            raise ValueError("every env is driven by hand or by the arm, so no episode can finish: "
                             "use num_envs >= 2")
        return max(1, math.ceil(episodes / counted)) * steps_per_round

    if progress is not None:
        progress(0, total_steps())
    obs = env.reset()["obs"]
    try:
        while until_interrupted or result.episodes < episodes:
            actions = policy_actions(player, obs)
            obs_dict, _, _, infos = env.step(actions)
            obs = obs_dict["obs"]
            if on_step is not None:
                on_step(task, actions)
            if "episode" in infos:
                stats = infos["episode"]
                result.episodes += int(stats["goals_reached"].numel())
                result.goals_reached += float(stats["goals_reached"].sum())
                result.goals_counted += float(stats["goals_counted"].sum())
            result.steps += 1
            if not until_interrupted:
                total = total_steps()
                if progress is not None:
                    progress(min(result.steps, total), total)
    except KeyboardInterrupt:
        if not until_interrupted:
            raise
    return result


def resolve_checkpoint(cfg, required: bool = True) -> Optional[Path]:
    """The checkpoint ``cfg.checkpoint`` names, with ``last`` resolved.

    ``checkpoint=PATH``: that file. ``checkpoint=last``: the newest checkpoint of
    ``<train_dir>/<experiment>``. Empty: the same, else the shipped policy when ``required``
    (play, export), else None (train starts fresh).

    Raises:
        dofbot_rl.rl.checkpoints.CheckpointError: ``last`` (or a required checkpoint) and none found.
    """
    if cfg.checkpoint and cfg.checkpoint != "last":
        return Path(cfg.checkpoint).expanduser()
    if not cfg.checkpoint and not required:
        return None
    run_dir = Path(cfg.train_dir) / cfg.experiment
    found = latest_checkpoint(run_dir)
    if found is not None:
        return found
    if cfg.checkpoint == "last":
        raise CheckpointError(f"checkpoint=last: no checkpoint in {run_dir / 'nn'} yet: train first, "
                              f"or pass experiment=NAME or checkpoint=PATH")
    shipped = default_checkpoint()
    if shipped is None:
        raise CheckpointError("no checkpoint given and none found in runs/ or data/checkpoints/: pass checkpoint=PATH")
    return shipped


def default_checkpoint() -> Optional[Path]:
    """The shipped policy ``data/checkpoints/DofbotReacher.pth`` if present."""
    from dofbot_rl.paths import data_dir

    path = data_dir() / "checkpoints" / "DofbotReacher.pth"
    return path if path.is_file() else None
