"""Run rl_games PPO on a task: start, progress events, clean stop, learning curve.

The same :class:`Trainer` serves the CLI (blocking, a progress bar) and the Kit panel
(on a worker thread; ``stop()`` from the UI thread). Stopping uses rl_games' own exit
path: an observer sets ``algo.max_epochs`` to the current epoch, so rl_games writes its
``last_...`` checkpoint and returns within one epoch.
"""

import contextlib
import io
import json
import logging
import math
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

import torch

from dofbot_rl.config import to_container
from dofbot_rl.rl.checkpoints import latest_checkpoint, validate_for_task
from dofbot_rl.rl.vecenv import RlGamesVecEnv, register_agent, register_rl_games

log = logging.getLogger(__name__)


@dataclass
class Progress:
    """One training epoch's figures, sent to ``on_progress`` and kept in ``Trainer.history``."""

    epoch: int
    max_epochs: int
    frame: int  #: env-steps so far
    elapsed_s: float  #: wall time since training started
    env_steps_per_s: float  #: over the last epoch, PPO update included
    mean_reward: float = float("nan")  #: rl_games' mean episode reward (scaled by reward_shaper)
    goals_per_episode: float = float("nan")  #: goals reached per finished episode (this epoch's episodes)
    success_rate: float = float("nan")  #: goals reached / goals counted (see the task's _episode_stats)


@dataclass
class TrainResult:
    """What a finished (or stopped) run left behind."""

    experiment_dir: Path
    checkpoint: Optional[Path]  #: the newest checkpoint written
    history: List[Progress] = field(default_factory=list)
    stopped: bool = False  #: ended by ``stop()`` rather than max_epochs
    curve: Optional[Path] = None  #: learning-curve PNG


class _Observer:
    """rl_games AlgoObserver: episode statistics, TensorBoard scalars, progress, stop."""

    def __init__(self, trainer: "Trainer"):
        self.trainer = trainer
        self.algo = None
        self._reset_sums()
        self._last_frame, self._last_time = 0, None

    def _reset_sums(self):
        self.sums = {}
        self.episodes = 0

    # rl_games hooks -------------------------------------------------------------------
    def before_init(self, base_name, config, experiment_name):
        pass

    def after_init(self, algo):
        self.algo = algo
        self._last_time = time.perf_counter()
        if self.trainer._resume_state is not None:
            # resume from the safely loaded state (rl_games' own restore unpickles with weights_only=False)
            algo.set_full_state_weights(self.trainer._resume_state, set_epoch=True)

    def process_infos(self, infos, done_indices):
        episode = infos.get("episode") if isinstance(infos, dict) else None
        if not episode:
            return
        for key, value in episode.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value.sum())
        self.episodes += int(next(iter(episode.values())).numel())

    def after_steps(self):
        pass

    def after_clear_stats(self):
        pass

    def after_print_stats(self, frame, epoch_num, total_time):
        now = time.perf_counter()
        rate = (frame - self._last_frame) / max(now - self._last_time, 1e-9)
        self._last_frame, self._last_time = frame, now
        algo, writer = self.algo, self.algo.writer
        progress = Progress(epoch=int(epoch_num), max_epochs=int(algo.max_epochs), frame=int(frame),
                            elapsed_s=now - self.trainer._start_time, env_steps_per_s=rate)
        if algo.game_rewards.current_size > 0:
            progress.mean_reward = float(algo.game_rewards.get_mean()[0])
        if self.episodes:
            progress.goals_per_episode = self.sums["goals_reached"] / self.episodes
            counted = self.sums.get("goals_counted", 0.0)
            progress.success_rate = self.sums["goals_reached"] / counted if counted else float("nan")
            writer.add_scalar("episode/goals_per_episode", progress.goals_per_episode, epoch_num)
            writer.add_scalar("episode/success_rate", progress.success_rate, epoch_num)
            for key, value in self.sums.items():
                if key.startswith("rew_"):
                    writer.add_scalar(f"reward_terms/{key[4:]}", value / self.episodes, epoch_num)
        writer.add_scalar("performance/env_steps_per_s", rate, epoch_num)
        self._reset_sums()
        self.trainer._record(progress)
        if self.trainer._stop.is_set():
            algo.max_epochs = int(epoch_num)  # rl_games saves last_... and returns


class Trainer:
    """Train (or resume) PPO with rl_games on the configured task.

    Args:
        cfg: a loaded config (:func:`dofbot_rl.config.load_config`).
        task: the task to train on; built from ``cfg`` when omitted (the Kit panel passes
            the task of the scene it built).
        on_progress: called with a :class:`Progress` after every epoch, on the training thread.
        quiet: route rl_games' prints to this module's DEBUG log (the CLI, whose progress bar
            they would break). It redirects the whole process's stdout while training, so the
            Kit panel leaves it off.
    """

    def __init__(self, cfg, task=None, on_progress: Optional[Callable[[Progress], None]] = None, quiet: bool = False):
        self.cfg = cfg
        self.quiet = quiet
        self._task = task
        self.on_progress = on_progress
        self.history: List[Progress] = []
        self._stop = threading.Event()
        self._start_time = time.perf_counter()
        self._resume_state = None
        self.experiment_dir = Path(cfg.train_dir) / cfg.experiment

    # -- control ---------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the run to end after the current epoch (thread-safe); a checkpoint is written."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stop.is_set()

    # -- running ---------------------------------------------------------------------------
    def rl_games_params(self) -> dict:
        """The rl_games ``params`` dict built from ``cfg.train`` (minibatch size derived here).

        ``minibatch_size = num_envs * horizon_length / num_minibatches`` (the reference's
        32768 = 2048 x 64 / 4).

        Raises:
            ValueError: if the batch does not split into ``num_minibatches``.
        """
        params = to_container(self.cfg.train)["params"]
        config = params["config"]
        num_minibatches = int(config.pop("num_minibatches"))
        batch = int(self.cfg.task.env.num_envs) * int(config["horizon_length"])
        if num_minibatches < 1 or batch % num_minibatches:
            raise ValueError(f"num_envs x horizon_length = {batch} does not split into {num_minibatches} minibatches")
        config["minibatch_size"] = batch // num_minibatches
        config["train_dir"] = str(self.cfg.train_dir)
        config["max_epochs"] = int(self.cfg.max_iterations)
        return params

    def _make_task(self):
        if self._task is None:
            from dofbot_rl.tasks import make_task

            self._task = make_task(self.cfg)
        return self._task

    def train(self) -> TrainResult:
        """Run PPO to ``max_iterations`` epochs or until :meth:`stop`; blocks.

        Resumes from ``cfg.checkpoint`` when it is set (weights, optimiser, epoch), loaded
        with ``weights_only=True`` onto any device (a GPU-trained checkpoint resumes on the CPU).

        Raises:
            dofbot_rl.rl.checkpoints.CheckpointError: for a missing or mismatched checkpoint.
            dofbot_rl.tasks.NonFiniteActionError / dofbot_rl.physics.PhysicsError: if training diverges.
        """
        from rl_games.torch_runner import Runner

        seed_everything(self.cfg.seed, self.cfg.torch_deterministic)
        share_cpu_with_physics(self.cfg)
        task = self._make_task()
        if self.cfg.checkpoint:
            self._resume_state = validate_for_task(self.cfg.checkpoint, task.num_observations, task.num_actions)
        env = RlGamesVecEnv(task, self.cfg.rl_device)
        register_rl_games(lambda: env)
        params = self.rl_games_params()
        self.experiment_dir.mkdir(parents=True, exist_ok=True)
        (self.experiment_dir / "config.yaml").write_text(_dump_yaml(self.cfg))

        observer = _Observer(self)
        runner = Runner(algo_observer=observer)
        register_agent(runner)  # rollout without a host sync per step (vecenv.host_sync_free_agent_class)
        self._start_time = time.perf_counter()
        with rl_games_output_to_log(self.quiet):
            runner.load({"params": params})
            runner.reset()
            try:
                runner.run({"train": True, "play": False, "checkpoint": None, "sigma": None})
            finally:
                if observer.algo is not None:  # flush TensorBoard now, not at interpreter exit
                    observer.algo.writer.close()
        result = TrainResult(experiment_dir=self.experiment_dir, checkpoint=latest_checkpoint(self.experiment_dir),
                             history=list(self.history), stopped=self._stop.is_set())
        self._write_history(result)
        return result

    def _record(self, progress: Progress) -> None:
        self.history.append(progress)
        if self.on_progress is not None:
            self.on_progress(progress)

    def _write_history(self, result: TrainResult) -> None:
        path = self.experiment_dir / "progress.jsonl"
        with path.open("a") as f:
            for p in result.history:
                f.write(json.dumps({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(p).items()}) + "\n")
        if result.history:
            from dofbot_rl.plotting import plot_learning_curve

            result.curve = plot_learning_curve(path, self.experiment_dir / "learning_curve.png", title=self.cfg.experiment)


def share_cpu_with_physics(cfg) -> None:
    """On the CPU backend, give torch one intra-op thread.

    MuJoCo's batch thread pool already uses every core; torch's own threads would compete
    with it (measured on 2 busy cores: 24k env-steps/s with 2 torch threads, 61-69k with 1),
    and the 64-64 MLP gains nothing from them.
    """
    if cfg.sim_device == "cpu":
        torch.set_num_threads(1)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, numpy and torch (all devices); optionally ask torch for deterministic kernels."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True)


@contextlib.contextmanager
def rl_games_output_to_log(enabled: bool = True):
    """rl_games prints to stdout; route it to this module's DEBUG log so progress bars stay clean.

    ``enabled=False`` does nothing (``redirect_stdout`` is process-wide: not inside Kit).
    """
    if not enabled:
        yield
        return

    class _LogStream(io.TextIOBase):
        def write(self, text):
            for line in text.rstrip().splitlines():
                if line.strip():
                    log.debug("rl_games: %s", line)
            return len(text)

    with contextlib.redirect_stdout(_LogStream()):
        yield


def _dump_yaml(cfg) -> str:
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(cfg, resolve=True)
