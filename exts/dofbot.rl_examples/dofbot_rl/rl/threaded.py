"""In-app training: rl_games on a worker thread, the simulator stepped on the main thread.

Kit owns the main thread (USD, physics, UI), so rl_games cannot call the simulator
directly. :class:`QueuedVecEnv` is the task as the worker thread sees it: its ``reset()``
and ``step(actions)`` put a request into a size-1 queue and wait (with a timeout) for the
result, which the main thread produces in :meth:`QueuedVecEnv.pump`: one control step,
``task.step(actions)``, per request. In Kit the pump runs in a coroutine on the app's
event loop, a few steps per app update, so the viewport and the UI stay live; in the
tests and in any plain-Python host a loop calls it.

rl_games sees ``RlGamesVecEnv(QueuedVecEnv(task))``: the usual adapter (device moves,
``time_outs``) runs on the worker, the task and the physics only on the main thread.

Ending a run:

* graceful (Stop while training): :meth:`WorkerRun.request_stop` calls
  :meth:`dofbot_rl.rl.trainer.Trainer.stop`; rl_games finishes the epoch, writes its
  ``last_...`` checkpoint (atomically) and returns, while the main thread keeps pumping;
* at once (Stop while testing, shutdown, a main-side failure): :meth:`QueuedVecEnv.stop`
  sends the stop sentinel; the worker's pending ``reset``/``step`` raises
  :class:`RunStopped`, rl_games unwinds, the thread ends. Checkpoints already written
  stay valid (they are written to a temporary name and renamed);
* a crash on the worker (bad config, bad checkpoint, a timeout waiting for the main
  thread) is kept in :attr:`WorkerRun.error` and re-raised on the main side by
  :meth:`WorkerRun.check`; a crash on the main side (``task.step`` raised) stops the
  worker and is raised from :meth:`WorkerRun.pump`.
"""

import logging
import queue
import threading
import time
from typing import Any, Callable, List, Optional

import torch

log = logging.getLogger(__name__)

#: Default time (s) one side waits for the other before giving up: long enough for a
#: PPO update of 8192 envs, short enough that a dead main loop ends the worker.
DEFAULT_TIMEOUT_S = 300.0
#: Granularity (s) of the worker's waits, so a stop is noticed promptly.
_WAIT_SLICE_S = 0.05


class RunStopped(Exception):
    """Raised on the worker thread inside ``reset``/``step`` when the main side ended the run."""


class BridgeTimeout(RuntimeError):
    """One side of the bridge waited longer than its timeout for the other."""


class _Stop:
    """The stop sentinel put into the result queue."""

    def __init__(self, reason: str):
        self.reason = reason


class QueuedVecEnv:
    """The task as seen from the rl_games worker thread: calls cross two size-1 queues.

    Exposes the task interface that :class:`dofbot_rl.rl.vecenv.RlGamesVecEnv` and
    :class:`dofbot_rl.rl.trainer.Trainer` use: ``num_envs``, ``num_observations``,
    ``num_actions``, ``cfg``, ``device``, ``reset()``, ``step(actions)``.

    Args:
        task: the real task (e.g. :class:`dofbot_rl.tasks.DofbotReacher`); touched only by
            the thread that calls :meth:`pump`.
        timeout_s: how long the worker waits for the main thread to serve one request (s).

    Attributes:
        before_step: callables ``hook(task)`` run on the main thread before each
            ``task.step`` (teleop targets).
        after_step: callables ``hook(task, actions, result)`` run on the main thread after
            each ``task.step`` (markers, sim-to-real mirroring, test statistics);
            ``result`` is the ``(obs, rew, reset, extras)`` tuple handed to the worker.
        steps: control steps served so far.
    """

    def __init__(self, task, timeout_s: float = DEFAULT_TIMEOUT_S):
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0 s, got {timeout_s}")
        self.task = task
        self.timeout_s = float(timeout_s)
        self.num_envs = task.num_envs
        self.num_observations = task.num_observations
        self.num_actions = task.num_actions
        self.cfg = task.cfg
        self.device = task.device
        self.before_step: List[Callable[[Any], None]] = []
        self.after_step: List[Callable[[Any, torch.Tensor, tuple], None]] = []
        self.steps = 0
        self._requests: "queue.Queue" = queue.Queue(maxsize=1)
        self._results: "queue.Queue" = queue.Queue(maxsize=1)
        self._stopped = threading.Event()
        self._stop_reason = ""

    # ------------------------------------------------------------------------------
    # Worker side
    # ------------------------------------------------------------------------------
    def reset(self) -> torch.Tensor:
        """Reset every env (served by the main thread); returns obs ``(num_envs, num_observations)``.

        Raises:
            RunStopped: the main side ended the run.
            BridgeTimeout: the main thread did not serve the request within ``timeout_s``.
        """
        return self._call("reset", None)

    def step(self, actions: torch.Tensor):
        """One control step (served by the main thread).

        Args:
            actions: ``(num_envs, num_actions)`` on the task's device.

        Returns:
            ``(obs (num_envs, num_observations), rew (num_envs,), reset (num_envs,), extras)``,
            copies owned by the caller.

        Raises:
            RunStopped, BridgeTimeout: as :meth:`reset`.
        """
        return self._call("step", actions)

    def _call(self, kind: str, payload):
        deadline = time.monotonic() + self.timeout_s
        while True:  # hand the request over
            self._raise_if_stopped()
            try:
                self._requests.put((kind, payload), timeout=_WAIT_SLICE_S)
                break
            except queue.Full:
                self._check_deadline(deadline, kind)
        while True:  # wait for the main thread's answer
            try:
                result = self._results.get(timeout=_WAIT_SLICE_S)
            except queue.Empty:
                self._raise_if_stopped()
                self._check_deadline(deadline, kind)
                continue
            if isinstance(result, _Stop):
                raise RunStopped(result.reason)
            return result

    def _raise_if_stopped(self) -> None:
        if self._stopped.is_set():
            raise RunStopped(self._stop_reason or "stopped")

    def _check_deadline(self, deadline: float, kind: str) -> None:
        if time.monotonic() > deadline:
            self.stop(f"timed out waiting for the simulation ({kind})")
            raise BridgeTimeout(
                f"the simulation loop did not serve a {kind} within {self.timeout_s:.0f} s: "
                "is the app's update loop (or the sim loop coroutine) running?"
            )

    # ------------------------------------------------------------------------------
    # Main side
    # ------------------------------------------------------------------------------
    @property
    def stopped(self) -> bool:
        """True once :meth:`stop` was called (by either side)."""
        return self._stopped.is_set()

    def pump(self, max_steps: int = 1, budget_s: float = 0.0) -> int:
        """Serve the worker's requests on the calling (main) thread.

        Runs at most ``max_steps`` requests (one ``task.reset``/``task.step`` each) and waits
        at most ``budget_s`` seconds in total for requests to arrive; returns at once when
        the budget is 0 and nothing is pending. Never blocks longer than ``budget_s``.

        Returns:
            The number of requests served.

        Raises:
            Whatever ``task.step`` or a hook raised; the worker is stopped first.
        """
        deadline = time.monotonic() + max(0.0, budget_s)
        served = 0
        while served < max_steps and not self._stopped.is_set():
            remaining = deadline - time.monotonic()
            try:
                if remaining > 0:
                    kind, payload = self._requests.get(timeout=remaining)
                else:
                    kind, payload = self._requests.get_nowait()
            except queue.Empty:
                break
            try:
                result = self._serve(kind, payload)
            except BaseException as exc:
                self.stop(f"the simulation failed: {type(exc).__name__}: {exc}")
                raise
            try:
                self._results.put_nowait(result)
            except queue.Full:
                pass  # the worker gave up meanwhile (its stop sentinel fills the queue)
            served += 1
        return served

    def _serve(self, kind: str, payload):
        if kind == "reset":
            return self.task.reset().clone()
        for hook in self.before_step:
            hook(self.task)
        obs, rew, reset, extras = self.task.step(payload)
        result = (obs.clone(), rew.clone(), reset.clone(), dict(extras))
        self.steps += 1
        for hook in self.after_step:
            hook(self.task, payload, result)
        return result

    def stop(self, reason: str = "stopped") -> None:
        """End the run at once: the worker's pending or next ``reset``/``step`` raises
        :class:`RunStopped`. Idempotent, thread-safe."""
        if not self._stopped.is_set():
            self._stop_reason = reason
            self._stopped.set()
        try:
            self._results.put_nowait(_Stop(self._stop_reason))
        except queue.Full:
            pass  # the worker still has a result to take; it sees the event on its next call


class WorkerRun:
    """A worker thread running ``target()`` (rl_games) against a :class:`QueuedVecEnv`.

    Args:
        name: thread name (``dofbot-train`` / ``dofbot-test``).
        env: the bridge the target talks through.
        target: the blocking work, called on the worker thread; its return value becomes
            :attr:`result`.
        graceful_stop: called by :meth:`request_stop` (e.g. ``Trainer.stop``); ``None``
            makes every stop immediate.
    """

    def __init__(self, name: str, env: QueuedVecEnv, target: Callable[[], Any],
                 graceful_stop: Optional[Callable[[], None]] = None):
        self.name = name
        self.env = env
        self._target = target
        self._graceful_stop = graceful_stop
        self.result: Any = None
        self.error: Optional[BaseException] = None
        self.stopped = False  #: ended by a stop (graceful or not) rather than by finishing
        self.stop_requested_at: Optional[float] = None  #: monotonic time of the first stop request
        self.trainer = None  #: the :class:`~dofbot_rl.rl.trainer.Trainer` of a training run (its ``history``)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> "WorkerRun":
        """Start the worker thread; returns ``self``."""
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.result = self._target()
        except RunStopped as exc:
            self.stopped = True
            log.info("%s: stopped (%s)", self.name, exc)
        except BaseException as exc:  # surfaced on the main side by check()
            self.error = exc
            log.debug("%s: failed", self.name, exc_info=True)
            self.env.stop(f"the worker failed: {type(exc).__name__}")
        else:
            self.stopped = self.stopped or self.stop_requested_at is not None

    # -- main side -----------------------------------------------------------------
    @property
    def alive(self) -> bool:
        """True while the worker thread runs."""
        return self._thread.is_alive()

    @property
    def finished(self) -> bool:
        """True once the worker thread has ended (result, stop or error)."""
        return self._thread.ident is not None and not self._thread.is_alive()

    def pump(self, max_steps: int = 1, budget_s: float = 0.0) -> int:
        """Serve the worker (see :meth:`QueuedVecEnv.pump`); 0 once it has finished."""
        if self.finished or self.env.stopped:
            return 0
        return self.env.pump(max_steps=max_steps, budget_s=budget_s)

    def check(self) -> None:
        """Re-raise the worker's exception on the calling thread, if it failed."""
        if self.error is not None:
            raise self.error

    def request_stop(self, graceful: bool = True) -> None:
        """Ask the run to end. Graceful (and a graceful stop exists): the worker finishes
        its epoch and writes a checkpoint while the main thread keeps pumping; else at once."""
        if self.stop_requested_at is None:
            self.stop_requested_at = time.monotonic()
        if graceful and self._graceful_stop is not None:
            self._graceful_stop()
        else:
            self.env.stop("stop requested")

    def join(self, timeout_s: Optional[float] = None) -> bool:
        """Wait for the thread (without pumping); True when it has ended."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def shutdown(self, timeout_s: float = 10.0) -> bool:
        """Stop at once and wait up to ``timeout_s`` for the thread; True when it ended."""
        self.env.stop("shut down")
        return self.join(timeout_s)


# ----------------------------------------------------------------------------------
# The two runs the panel starts
# ----------------------------------------------------------------------------------
def start_training(cfg, task, on_progress=None, timeout_s: float = DEFAULT_TIMEOUT_S) -> WorkerRun:
    """Train (or resume, when ``cfg.checkpoint`` is set) PPO on ``task`` from a worker thread.

    Args:
        cfg: loaded config (:func:`dofbot_rl.config.load_config`).
        task: the task the main thread steps (already built on its physics).
        on_progress: ``Trainer`` progress callback; called on the worker thread.
        timeout_s: bridge timeout (s).

    Returns:
        The started run; its :attr:`WorkerRun.result` is the
        :class:`dofbot_rl.rl.trainer.TrainResult` once it has finished.
    """
    from dofbot_rl.rl.trainer import Trainer

    env = QueuedVecEnv(task, timeout_s=timeout_s)
    trainer = Trainer(cfg, task=env, on_progress=on_progress)
    run = WorkerRun("dofbot-train", env, trainer.train, graceful_stop=trainer.stop)
    run.trainer = trainer
    return run.start()


def start_playing(cfg, task, checkpoint, timeout_s: float = DEFAULT_TIMEOUT_S,
                  max_steps: Optional[int] = None) -> WorkerRun:
    """Play ``checkpoint``'s deterministic policy on ``task`` from a worker thread until stopped.

    The checkpoint is validated against the task on the worker before the first step
    (a bad file ends the run with :class:`dofbot_rl.rl.checkpoints.CheckpointError`).

    Args:
        cfg: loaded config.
        task: the task the main thread steps.
        checkpoint: the ``.pth`` to play.
        timeout_s: bridge timeout (s).
        max_steps: end after this many control steps (``None``: until stopped).

    Returns:
        The started run; :attr:`WorkerRun.result` is the number of control steps played.
    """
    env = QueuedVecEnv(task, timeout_s=timeout_s)

    def play() -> int:
        from dofbot_rl.rl.play import load_player, policy_actions
        from dofbot_rl.rl.vecenv import RlGamesVecEnv, release_rl_games

        vec = RlGamesVecEnv(env, cfg.rl_device)
        player = load_player(cfg, vec, checkpoint)
        release_rl_games()  # the player has what it needs; rl_games' registry must not keep the task alive
        obs = vec.reset()["obs"]
        steps = 0
        while max_steps is None or steps < max_steps:
            obs = vec.step(policy_actions(player, obs))[0]["obs"]
            steps += 1
        return steps

    return WorkerRun("dofbot-test", env, play).start()
