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
from typing import Any, Callable, List, Optional

from dofbot_rl.panel.figures import ProgressInbox, TestStats
from dofbot_rl.rl.threaded import DEFAULT_TIMEOUT_S, WorkerRun, start_playing, start_training
from dofbot_rl.teleop import TeleopModel, drive_task

log = logging.getLogger(__name__)


class SessionError(RuntimeError):
    """An action that does not fit the session's state (e.g. Train without a loaded scene)."""


class Session:
    """One scene (task on a physics backend) and at most one run on it.

    Args:
        timeout_s: bridge timeout for the runs (s).

    Attributes:
        cfg: the config the scene was built with (``None`` before :meth:`attach`).
        task: the task (``None`` before :meth:`attach`).
        run: the current or last run, or ``None``.
        run_kind: ``"train"`` or ``"test"`` for :attr:`run`.
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
        """Drop the scene (closes its physics backend). Stops a run at once first."""
        if self.run is not None and not self.run.finished:
            self.run.shutdown()
        if self.physics is not None:
            try:
                self.physics.close()
            finally:
                self.cfg = self.task = self.physics = None

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
        self.run_kind = "train"
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
        self.run_kind = "test"
        self._install_hooks(self.run)
        self.run.env.after_step.insert(0, self.test_stats.on_step)
        return self.run

    def _check_can_start(self) -> None:
        if not self.loaded:
            raise SessionError("no scene: press Load first")
        if self.running:
            raise SessionError("a run is active: stop it first")

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

    def stop(self, graceful: bool = True) -> None:
        """Ask the active run to end (see :meth:`dofbot_rl.rl.threaded.WorkerRun.request_stop`)."""
        if self.running:
            self.run.request_stop(graceful=graceful)

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop any run at once, wait for its thread and drop the scene (app shutdown)."""
        if self.run is not None and not self.run.finished:
            if not self.run.shutdown(timeout_s):
                log.warning("the rl_games worker thread did not end within %.0f s", timeout_s)
        self.detach()

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
