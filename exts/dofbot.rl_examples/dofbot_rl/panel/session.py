"""The panel's runtime: the loaded task, the run on it, and what happens every control step.

Kit-free. The physics comes from outside (the Isaac Sim backend in Kit, MuJoCo in the
tests and in any plain-Python host), so the same session runs the panel's Load / Train /
Stop / Test in both. Everything here runs on the main thread except rl_games, which
:mod:`dofbot_rl.rl.threaded` keeps on its worker.

Per control step (main thread, in the bridge's hooks): teleop targets are pushed into
the task before ``task.step``; after it, the test statistics, then the extra hooks the
host added (goal / tip markers in Kit, sim-to-real mirroring) run.
"""

import logging
import time
from typing import Any, Callable, List, Optional

from dofbot_rl.panel.figures import ProgressInbox, TestStats
from dofbot_rl.rl.threaded import DEFAULT_TIMEOUT_S, WorkerRun, start_playing, start_training
from dofbot_rl.teleop import TeleopModel, drive_task
from dofbot_rl.errors import DofbotRlError

log = logging.getLogger(__name__)


class SessionError(DofbotRlError, RuntimeError):
    """An action that does not fit the session's state (e.g. Train without a loaded scene)."""


class Session:
    """One scene (task on a physics backend) and at most one run on it.

    Args:
        timeout_s: bridge timeout for the runs (s).

    Attributes:
        cfg: the config the scene was built with (``None`` before :meth:`attach`).
        task: the task (``None`` before :meth:`attach`).
        run: the active run (or a finished one not yet released with :meth:`release_run`), or ``None``.
        run_kind: ``"train"`` or ``"test"`` for :attr:`run`.
        run_checkpoint: the checkpoint the last run started from (Test plays it, Resume
            continues it; empty for a new training).
        teleop: the keyboard-teleop model; its selected robot follows its targets.
        inbox: training progress handed over from the worker.
        test_stats: statistics of the current test run.
        step_hooks: extra ``hook(task, actions, result)`` run after every control step.
    """

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.timeout_s = timeout_s
        self.cfg = None
        self.task = None
        self.physics = None
        self.run: Optional[WorkerRun] = None
        self.run_kind = ""
        self.run_checkpoint = ""
        self._ending: List[WorkerRun] = []  # runs stopped at once whose threads are still unwinding
        self.teleop = TeleopModel()
        self.inbox = ProgressInbox()
        self.test_stats = TestStats()
        self.step_hooks: List[Callable[[Any, Any, tuple], None]] = []

    # -- scene -------------------------------------------------------------------------
    def attach(self, cfg, physics) -> None:
        """Build the task of ``cfg`` on ``physics`` (replacing any previous scene).

        Raises:
            SessionError: while a run is active.
            KeyError / ValueError: from :func:`dofbot_rl.tasks.make_task`.
        """
        from dofbot_rl.tasks import make_task

        if self.running:
            raise SessionError("stop the current run before loading a new scene")
        self.detach()
        task = make_task(cfg, physics)
        task.reset()
        self.cfg, self.task, self.physics = cfg, task, physics
        self.teleop.release()
        self.teleop.take_released_envs()

    def detach(self) -> None:
        """Drop the scene and close its physics backend, without waiting for the worker thread.

        An active run is stopped at once first (:meth:`release_run`). Closing the backend
        right away is safe: the worker never touches the task or the physics (only the
        pumping thread does), it only unwinds rl_games. Poll :attr:`worker_alive` across app
        updates to know when its thread has ended, or call :meth:`close` to wait for it.
        """
        self.release_run()
        if self.physics is not None:
            try:
                self.physics.close()
            finally:
                self.cfg = self.task = self.physics = None

    def release_run(self) -> None:
        """Let go of the current run: its bridge, task reference, trainer and rl_games state.

        A run still active is stopped at once (no final checkpoint: the rolling and earlier
        ones stay) and its thread is watched by :attr:`worker_alive` until it ends.
        """
        run, self.run = self.run, None
        if run is not None and not run.finished:
            run.request_stop(graceful=False)
            self._ending.append(run)

    @property
    def worker_alive(self) -> bool:
        """True while any worker thread of this session runs (the active run's, or a stopped
        one still unwinding). Cheap and non-blocking: meant to be polled once per app update."""
        self._ending = [run for run in self._ending if not run.finished]
        return bool(self._ending) or self.running

    @property
    def loaded(self) -> bool:
        """True while a scene is attached."""
        return self.task is not None

    # -- runs --------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True while a run's worker thread is alive."""
        return self.run is not None and not self.run.finished

    def start_training(self, cfg) -> WorkerRun:
        """Train (resume when ``cfg.checkpoint`` is set) on the loaded scene.

        Raises:
            SessionError: no scene, or a run is active.
        """
        self._check_can_start()
        self.inbox = ProgressInbox()
        self.run = start_training(cfg, self.task, on_progress=self.inbox.put, timeout_s=self.timeout_s)
        self.run_kind, self.run_checkpoint = "train", str(cfg.checkpoint or "")
        self._install_hooks(self.run)
        return self.run

    def start_testing(self, cfg, checkpoint) -> WorkerRun:
        """Play ``checkpoint`` on the loaded scene until stopped.

        Raises:
            SessionError: no scene, or a run is active.
        """
        self._check_can_start()
        self.test_stats = TestStats()
        self.run = start_playing(cfg, self.task, checkpoint, timeout_s=self.timeout_s)
        self.run_kind, self.run_checkpoint = "test", str(checkpoint)
        self._install_hooks(self.run)
        self.run.env.after_step.insert(0, self.test_stats.on_step)
        return self.run

    def _check_can_start(self) -> None:
        if not self.loaded:
            raise SessionError("no scene: press Load first")
        if self.running:
            raise SessionError("a run is active: stop it first")
        if self.worker_alive:
            raise SessionError("the previous run is still ending: try again in a moment")

    def _install_hooks(self, run: WorkerRun) -> None:
        dt = self.task.control_dt
        run.env.before_step.append(lambda task: drive_task(self.teleop, task, dt))
        run.env.after_step.append(self._after_step)

    def _after_step(self, task, actions, result) -> None:
        for hook in list(self.step_hooks):
            hook(task, actions, result)

    def pump(self, max_steps: int, budget_s: float) -> int:
        """Run up to ``max_steps`` control steps for the active run within ``budget_s`` (s).

        Returns:
            Steps run (0 without an active run).

        Raises:
            Whatever the simulation raised on this thread (the worker is stopped).
        """
        if not self.running:
            return 0
        return self.run.pump(max_steps=max_steps, budget_s=budget_s)

    def step_idle(self) -> bool:
        """One control step of a loaded scene while no run is active, so teleop moves the
        selected robot (main thread). Every robot keeps its last commanded targets; the
        selected one follows the keyboard; the step hooks (sim-to-real) run as in a run.

        Returns:
            True when a step ran (a scene is loaded, no run is active, a robot is selected).
        """
        if self.task is None or self.running or self.teleop.selected_env is None:
            return False
        from dofbot_rl.tasks.reacher_math import joint_targets_to_actions

        task = self.task
        drive_task(self.teleop, task, task.control_dt)
        actions = joint_targets_to_actions(task.commanded_targets, task.dof_lower, task.dof_upper)
        result = task.step(actions)
        self._after_step(task, actions, result)
        return True

    def checkpoint_now(self):
        """A training run: write its current weights now (:meth:`dofbot_rl.rl.trainer.Trainer.save_now`;
        the worker waits on a step). Returns the checkpoint's path, or None (no training run,
        or its agent is not built yet)."""
        trainer = getattr(self.run, "trainer", None) if self.running else None
        return trainer.save_now() if trainer is not None else None

    def stop(self, graceful: bool = True) -> None:
        """Ask the active run to end (see :meth:`dofbot_rl.rl.threaded.WorkerRun.request_stop`)."""
        if self.running:
            self.run.request_stop(graceful=graceful)

    def close(self, timeout_s: float = 10.0) -> bool:
        """Stop any run at once, drop the scene and wait up to ``timeout_s`` for the worker
        threads (blocking: app shutdown; across app updates use :meth:`detach` and poll
        :attr:`worker_alive`). Returns True when no worker thread is left."""
        self.detach()
        deadline = time.monotonic() + timeout_s
        for run in list(self._ending):
            run.join(max(0.0, deadline - time.monotonic()))
        if self.worker_alive:
            log.warning("the rl_games worker thread did not end within %.0f s", timeout_s)
            return False
        return True

    # -- teleop ------------------------------------------------------------------------
    def select_robot(self, env_id: Optional[int]) -> None:
        """Give ``env_id`` to the keyboard (``None`` releases the selected robot).

        Raises:
            IndexError: for an env id outside the scene.
        """
        if env_id is None:
            self.teleop.release()
            if self.task is not None and not self.running:
                for released in self.teleop.take_released_envs():
                    self.task.set_manual_targets(released, None)
            return
        if self.task is None:
            raise SessionError("no scene: press Load first")
        if not 0 <= env_id < self.task.num_envs:
            raise IndexError(f"env {env_id} is not in the scene (0..{self.task.num_envs - 1})")
        self.teleop.select(int(env_id), self.task.dof_pos[env_id].tolist())

    def selected_joint_positions(self) -> Optional[list]:
        """Joint positions (rad) of the selected robot, or ``None``."""
        env_id = self.teleop.selected_env
        if env_id is None or self.task is None:
            return None
        return self.task.dof_pos[env_id].tolist()
