"""Run rl_games PPO on a task: start, progress events, clean stop, learning curve.

The same :class:`Trainer` serves the CLI (blocking, a progress bar) and the Kit panel
(on a worker thread; ``stop()`` from the UI thread). Stopping uses rl_games' own exit
path: an observer sets ``algo.max_epochs`` to the current epoch, so rl_games writes its
``last_...`` checkpoint and returns within one epoch.

A run owns its experiment folder (``<train_dir>/<experiment>``) while it trains: it holds
its :class:`~dofbot_rl.rl.checkpoints.RunLock`, refuses a folder with another run's
checkpoints, writes every checkpoint through a unique temporary file, appends
``progress.jsonl`` every epoch and saves a rolling ``last_...`` checkpoint every
:data:`LAST_CHECKPOINT_EVERY_S` seconds, so a killed run leaves a usable checkpoint.
"""

import contextlib
import tempfile
import io
import json
import logging
import math
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch
from rl_games.common.algo_observer import AlgoObserver

from dofbot_rl.config import to_container
from dofbot_rl.rl.checkpoints import RunLock, atomic_save, check_run_folder, remove_temp_files, validate_for_config
from dofbot_rl.rl.distributed import RankContext, register_agent, wandb_init, weights_agree
from dofbot_rl.rl.vecenv import RlGamesVecEnv, register_rl_games, release_rl_games

log = logging.getLogger(__name__)

#: Wall time (s) between the rolling ``last_...`` checkpoints a run saves besides rl_games'
#: own (best after ``save_best_after``, every ``save_frequency`` epochs, at the end): the
#: default 150-epoch CPU run (~60 s) saves several, a killed run loses at most this much.
LAST_CHECKPOINT_EVERY_S = 10.0


@dataclass
class Progress:
    """One training epoch's figures, sent to ``on_progress`` and kept in ``Trainer.history``."""

    epoch: int
    max_epochs: int
    frame: int  #: env-steps so far, this epoch's included (all ranks)
    elapsed_s: float  #: wall time since training started
    env_steps_per_s: float  #: over the last epoch, PPO update included
    mean_reward: float = float("nan")  #: rl_games' mean episode reward (scaled by reward_shaper)
    goals_per_episode: float = float("nan")  #: goals reached per finished episode (this epoch's episodes)
    success_rate: float = float("nan")  #: goals reached / goals counted (see the task's _episode_stats)
    episodes: int = 0  #: episodes that ended this epoch, summed over every rank of a multi_gpu run


@dataclass
class TrainResult:
    """What a finished (or stopped) run left behind."""

    experiment_dir: Path
    checkpoint: Optional[Path]  #: the last checkpoint this run wrote (None: none)
    history: List[Progress] = field(default_factory=list)
    stopped: bool = False  #: ended by ``stop()`` rather than max_epochs
    curve: Optional[Path] = None  #: learning-curve PNG


class _Observer(AlgoObserver):
    """rl_games AlgoObserver: episode statistics, TensorBoard scalars, progress, stop."""

    def __init__(self, trainer: "Trainer"):
        super().__init__()
        self.trainer = trainer
        self.algo = None
        self._reset_sums()
        self._last_frame, self._last_time = 0, None

    def _reset_sums(self):
        self.sums = {}
        self.episodes = 0
        self.totals = {"goals_reached": 0.0, "goals_counted": 0.0, "episodes": 0.0}  #: over all ranks

    # rl_games hooks -------------------------------------------------------------------
    def before_init(self, base_name, config, experiment_name):
        pass

    def after_init(self, algo):
        self.algo = self.trainer._algo = algo
        self.trainer._mark("agent")
        self._last_time = time.perf_counter()
        algo.save = self.trainer._save  # every rl_games save: atomic, unique temp file, recorded as this run's
        if self.trainer._resume_state is not None:
            # resume from the safely loaded state (rl_games' own restore unpickles with weights_only=False)
            algo.set_full_state_weights(self.trainer._resume_state, set_epoch=True)
            self._last_frame = int(getattr(algo, "frame", 0))  # env-steps/s counts this run's steps only

    def process_infos(self, infos, done_indices):
        episode = infos.get("episode") if isinstance(infos, dict) else None
        if not episode:
            return
        for key, value in episode.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value.sum())
        self.episodes += int(next(iter(episode.values())).numel())

    def after_steps(self):
        # Every rank calls this once per epoch, after its rollout: sum the success figures over ranks.
        local = {"goals_reached": self.sums.get("goals_reached", 0.0),
                 "goals_counted": self.sums.get("goals_counted", 0.0), "episodes": float(self.episodes)}
        totals = self.trainer.rank.all_reduce_sums(local)
        if self.trainer.rank.is_main:
            self.totals = totals
        else:  # only rank 0 reports (after_print_stats): start the next epoch's sums here
            self._reset_sums()

    def after_clear_stats(self):
        pass

    def after_print_stats(self, frame, epoch_num, total_time):
        # rl_games passes the env-step count from before this epoch (epoch 1: 0) and has added
        # this epoch's steps to algo.frame by now: count them, so that epoch k reports k epochs.
        frame = int(self.algo.frame // self.algo.num_agents)
        now = time.perf_counter()
        rate = (frame - self._last_frame) / max(now - self._last_time, 1e-9)
        self._last_frame, self._last_time = frame, now
        algo, writer = self.algo, self.algo.writer
        progress = Progress(epoch=int(epoch_num), max_epochs=int(algo.max_epochs), frame=int(frame),
                            elapsed_s=now - self.trainer._start_time + self.trainer._elapsed_before,
                            env_steps_per_s=rate)
        if algo.game_rewards.current_size > 0:
            progress.mean_reward = float(algo.game_rewards.get_mean()[0])
        totals = self.totals
        progress.episodes = int(totals["episodes"])
        if totals["episodes"]:
            progress.goals_per_episode = totals["goals_reached"] / totals["episodes"]
            counted = totals["goals_counted"]
            progress.success_rate = totals["goals_reached"] / counted if counted else float("nan")
            writer.add_scalar("episode/goals_per_episode", progress.goals_per_episode, epoch_num)
            writer.add_scalar("episode/success_rate", progress.success_rate, epoch_num)
        if self.episodes:  # reward terms: this rank's episodes (rank 0 of a multi_gpu run)
            for key, value in self.sums.items():
                if key.startswith("rew_"):
                    writer.add_scalar(f"reward_terms/{key[4:]}", value / self.episodes, epoch_num)
        writer.add_scalar("performance/env_steps_per_s", rate, epoch_num)
        self._reset_sums()
        self.trainer._record(progress)
        if self.trainer._stop.is_set():
            algo.max_epochs = int(epoch_num)  # rl_games saves last_... and returns
        self.trainer._maybe_save_rolling(int(epoch_num), progress.mean_reward)


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
        checkpoint_every_s: save a rolling ``last_...`` checkpoint this often (s).
        rank: this process's place in a ``multi_gpu`` run (:mod:`dofbot_rl.rl.distributed`,
            process group already open); only rank 0 writes files and calls ``on_progress``.
    """

    def __init__(self, cfg, task=None, on_progress: Optional[Callable[[Progress], None]] = None, quiet: bool = False,
                 checkpoint_every_s: float = LAST_CHECKPOINT_EVERY_S, rank: RankContext = RankContext()):
        self.cfg = cfg
        self.rank = rank
        self.quiet = quiet
        self._task = task
        self.on_progress = on_progress
        self.checkpoint_every_s = float(checkpoint_every_s)
        self.history: List[Progress] = []
        self.saved: List[Path] = []  #: checkpoints this run wrote, oldest first
        self._stop = threading.Event()
        self._start_time = time.perf_counter()
        self._resume_state = None
        self._elapsed_before = 0.0  #: training time (s) of the run a resume continues
        self._algo = None
        self._rolling: Optional[Path] = None
        self._last_save = time.perf_counter()
        self._progress_file = None
        self.experiment_dir = Path(cfg.train_dir) / cfg.experiment
        #: Start-up of the last :meth:`train`, seconds from its call to the end of each stage:
        #: ``rl_games`` (its runner imported), ``task`` (built), ``agent`` (rl_games' agent built),
        #: ``first_epoch`` (ended); ``process`` is the process's age (s) at the call, where the
        #: system tells it (Linux). Complete when ``on_progress`` sees the first epoch
        #: (:func:`startup_line` words it; the CLI logs it).
        self.startup: Dict[str, float] = {}
        self._t_call = time.perf_counter()

    # -- control ---------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the run to end after the current epoch (thread-safe); a checkpoint is written."""
        self._stop.set()

    # -- running ---------------------------------------------------------------------------
    def rl_games_params(self, start_epoch: int = 0) -> dict:
        """The rl_games ``params`` dict built from ``cfg.train`` (minibatch size derived here).

        ``minibatch_size = num_envs * horizon_length / num_minibatches`` (the reference's
        32768 = 2048 x 64 / 4); ``max_epochs = start_epoch + max_iterations`` (a resumed
        run trains ``max_iterations`` more epochs).

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
        config["max_epochs"] = int(start_epoch) + int(self.cfg.max_iterations)
        return params

    def _make_task(self):
        if self._task is None:
            from dofbot_rl.tasks import make_task

            self._task = make_task(self.cfg)
        return self._task

    def preflight(self) -> None:
        """Refuse what :meth:`train` would refuse, before anything is built or written: the
        experiment folder in use by another training or holding another run's checkpoints
        (rank 0, which writes), a checkpoint to resume that does not fit the config. The
        checkpoint is loaded once: :meth:`train` resumes from what this validated.

        Raises:
            dofbot_rl.rl.checkpoints.RunFolderError / CheckpointError: as :meth:`train`.
        """
        if self.rank.is_main:
            RunLock(self.experiment_dir).check_free()
            check_run_folder(self.experiment_dir, self.cfg.checkpoint)
        if self.cfg.checkpoint and self._resume_state is None:
            from dofbot_rl.tasks import TASKS

            sizes = self._task if self._task is not None else TASKS[self.cfg.task.name]
            self._resume_state = validate_for_config(self.cfg.checkpoint, self.cfg, sizes.num_observations,
                                                     sizes.num_actions)

    def train(self) -> TrainResult:
        """Run PPO for ``max_iterations`` epochs or until :meth:`stop`; blocks.

        Resumes from ``cfg.checkpoint`` when it is set (weights, optimiser, epoch) and then
        trains ``max_iterations`` more epochs; the checkpoint is loaded with
        ``weights_only=True`` onto any device (a GPU-trained checkpoint resumes on the CPU).

        Raises:
            dofbot_rl.rl.checkpoints.CheckpointError: for a missing or mismatched checkpoint.
            dofbot_rl.rl.checkpoints.RunFolderError: the experiment folder is in use by another
                training, or holds an earlier run's checkpoints and this run does not resume
                from one of them (nothing is written then).
            dofbot_rl.tasks.NonFiniteActionError / dofbot_rl.physics.PhysicsError: if training diverges.
        """
        self._t_call, age = time.perf_counter(), process_age_s()
        self.startup = {} if age is None else {"process": age}
        from dofbot_rl.rl.rlg_compat import runner_class

        Runner = runner_class()
        self._mark("rl_games")
        main = self.rank.is_main  # a multi_gpu run: rank 0 alone writes (rl_games saves on rank 0 alone too)
        self.preflight()  # before anything is built or written
        seed_everything(self.cfg.seed, self.cfg.torch_deterministic)
        share_cpu_with_physics(self.cfg)
        task = self._make_task()
        self._mark("task")
        start_epoch = 0
        if self.cfg.checkpoint:
            self._elapsed_before = resumed_elapsed_s(self.cfg.checkpoint, self._resume_state.get("epoch"))
            start_epoch = int(self._resume_state.get("epoch", 0) or 0)
        params = self.rl_games_params(start_epoch)
        # rl_games' own multi-GPU set-up is NCCL-only; dofbot_rl.rl.distributed runs it (any backend).
        params["config"]["multi_gpu"] = False
        params["torch_threads"] = 0  # rl_games >= 1.6.5 would reset torch's threads: share_cpu_with_physics decides
        scratch = None
        if not main:  # rl_games opens a TensorBoard writer on every rank here: point the others elsewhere
            scratch = tempfile.TemporaryDirectory(prefix=f"dofbot_rl_rank{self.rank.rank}_")
            params["config"]["train_dir"] = scratch.name
        env = RlGamesVecEnv(task, self.cfg.rl_device)
        creator = lambda: env  # noqa: E731 - identity matters for release_rl_games
        with (RunLock(self.experiment_dir) if main else contextlib.nullcontext()):
            if main:
                check_run_folder(self.experiment_dir, self.cfg.checkpoint)  # again, now that no one else can write
                (self.experiment_dir / "nn").mkdir(exist_ok=True)
                remove_temp_files(self.experiment_dir / "nn")
                (self.experiment_dir / "config.yaml").write_text(_dump_yaml(self.cfg))
                # a resume continues the run's progress; a new run starts it (no checkpoint to lose here)
                self._progress_file = (self.experiment_dir / "progress.jsonl").open("a" if self.cfg.checkpoint else "w")
            wandb_run = wandb_init(self.cfg, self.rank, self.experiment_dir)  # before rl_games' SummaryWriter
            register_rl_games(creator)
            observer = _Observer(self)
            runner = Runner(algo_observer=observer)
            register_agent(runner)  # host-sync-free rollout; rl_games' multi-GPU mode on several ranks
            self._start_time = self._last_save = time.perf_counter()
            try:
                with rl_games_output_to_log(self.quiet):
                    runner.load({"params": params})
                    runner.reset()
                    runner.run({"train": True, "play": False, "checkpoint": None, "sigma": None})
                if self.rank.distributed:
                    diff = weights_agree(observer.algo.model)
                    log.info("%d ranks: policy weights %s across ranks (max abs diff %.3g)", self.rank.world_size,
                             "identical" if diff == 0.0 else "DIFFER", diff)
            finally:
                if observer.algo is not None and observer.algo.writer is not None:  # flush TensorBoard now
                    observer.algo.writer.close()
                observer.algo = self._algo = None  # the algo's buffers go with the run
                release_rl_games(creator)
                if self._progress_file is not None:
                    self._progress_file.close()
                    self._progress_file = None
                if scratch is not None:
                    scratch.cleanup()
            if self._rolling is not None and self.saved and self.saved[-1] != self._rolling:
                self._rolling.unlink(missing_ok=True)  # superseded by rl_games' final checkpoint
                self._rolling = None
        result = TrainResult(experiment_dir=self.experiment_dir, checkpoint=self.saved[-1] if self.saved else None,
                             history=list(self.history), stopped=self._stop.is_set())
        if main:
            self._plot(result)
        if wandb_run is not None:
            _wandb_finish(wandb_run, result)
        return result

    # -- checkpoints -----------------------------------------------------------------------
    def _save(self, filename: str) -> None:
        """rl_games' ``algo.save(filename)`` (``filename`` without ``.pth``), atomically.

        A file of that name that this run did not write (an earlier continuation of the run, when
        a resume starts from an older checkpoint) is replaced with a warning that names it.
        """
        target = Path(filename + ".pth")
        if target not in self.saved and target.exists():
            log.warning("replacing %s: written before this run (it resumes %s)", target, self.cfg.checkpoint or "nothing")
        path = atomic_save(self._algo.get_full_state_weights(), target)
        self._last_save = time.perf_counter()
        if path == self._rolling:
            self._rolling = None  # rl_games wrote this name itself: not ours to remove later
        self.saved.append(path)

    def save_now(self) -> Optional[Path]:
        """Write the current weights now as ``last_<name>_ep_<E>_stopped.pth`` (any thread).

        For a run that cannot finish its epoch: the Kit app's timeline was stopped, so no
        physics step will come. Call it while the worker waits on a step (its weights do not
        change then), before ending the run with a forced stop.

        Returns:
            The checkpoint written, or None before rl_games has built its agent.
        """
        algo = self._algo
        if algo is None:
            return None
        self._save(str(Path(algo.nn_dir) / f"last_{algo.config['name']}_ep_{int(algo.epoch_num)}_stopped"))
        return self.saved[-1]

    def _maybe_save_rolling(self, epoch: int, mean_reward: float) -> None:
        """Every ``checkpoint_every_s`` s: ``last_<name>_ep_<E>_rew_<R>.pth``, replacing the previous rolling one.

        Skipped when rl_games saves this epoch anyway (its ``save_frequency`` or the end).
        """
        algo = self._algo
        save_freq = int(algo.save_freq or 0)
        if (epoch >= algo.max_epochs or (save_freq > 0 and epoch % save_freq == 0)
                or time.perf_counter() - self._last_save < self.checkpoint_every_s):
            return
        reward = mean_reward if math.isfinite(mean_reward) else float("-inf")
        previous = self._rolling
        self._save(str(Path(algo.nn_dir) / f"last_{algo.config['name']}_ep_{epoch}_rew_{reward}"))
        self._rolling = self.saved[-1]
        if previous is not None and previous != self._rolling:
            previous.unlink(missing_ok=True)

    # -- progress --------------------------------------------------------------------------
    def _mark(self, stage: str) -> None:
        """Note the end of a start-up stage in :attr:`startup` (the first time only)."""
        self.startup.setdefault(stage, time.perf_counter() - self._t_call)

    def _record(self, progress: Progress) -> None:
        self._mark("first_epoch")
        self.history.append(progress)
        if self._progress_file is not None:  # one line per epoch, on disk at once (a killed run keeps its rows)
            row = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(progress).items()}
            self._progress_file.write(json.dumps(row) + "\n")
            self._progress_file.flush()
        if self.on_progress is not None:
            self.on_progress(progress)

    def _plot(self, result: TrainResult) -> None:
        if result.history:
            from dofbot_rl.plotting import plot_learning_curve

            result.curve = plot_learning_curve(self.experiment_dir / "progress.jsonl",
                                               self.experiment_dir / "learning_curve.png", title=self.cfg.experiment)


def process_age_s() -> Optional[float]:
    """Seconds since this process started (Linux: ``/proc``, 10 ms resolution), else None."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))  # field 22: starttime
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def startup_line(startup: Dict[str, float]) -> str:
    """The stages of :attr:`Trainer.startup` as one line of durations (s), e.g.
    ``"1.1 s before train(), rl_games import 1.4 s, task 0.0 s, agent 0.0 s, first epoch 0.3 s"``."""
    parts, last = [], 0.0
    if "process" in startup:
        parts.append(f"{startup['process']:.1f} s before train()")
    for stage, label in (("rl_games", "rl_games import"), ("task", "task"), ("agent", "agent"),
                         ("first_epoch", "first epoch")):
        if stage in startup:
            parts.append(f"{label} {startup[stage] - last:.1f} s")
            last = startup[stage]
    return ", ".join(parts)


def resumed_elapsed_s(checkpoint, epoch) -> float:
    """Training time (s) the run of ``checkpoint`` had spent by ``epoch``: the last row of its
    ``progress.jsonl`` (``runs/<experiment>/``) up to that epoch; 0 when there is none."""
    path = Path(checkpoint).parent.parent / "progress.jsonl"
    elapsed = 0.0
    try:
        lines = path.read_text().splitlines() if epoch is not None and path.is_file() else []
    except OSError:
        return 0.0
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("epoch"), int) and row["epoch"] <= int(epoch):
            elapsed = float(row.get("elapsed_s") or 0.0)
    return elapsed


def _wandb_finish(run, result: TrainResult) -> None:
    """Log the learning curve and the final figures to the Weights & Biases run, then close it."""
    import wandb

    if result.curve is not None:
        run.log({"learning_curve": wandb.Image(str(result.curve))})
    if result.history:
        last = result.history[-1]
        run.summary.update({"epoch": last.epoch, "goals_per_episode": last.goals_per_episode,
                            "success_rate": last.success_rate, "checkpoint": str(result.checkpoint)})
    run.finish()


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
