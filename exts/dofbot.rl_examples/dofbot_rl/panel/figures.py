"""Live figures of a run and a small learning curve, fed across threads.

Training progress arrives on the rl_games worker thread (``Trainer``'s ``on_progress``);
:class:`ProgressInbox` hands it to the main thread, which updates :class:`LiveFigures`
and :class:`LearningCurve` once per app update. Test statistics are collected on the
main thread from the task's ``extras["episode"]`` (:class:`TestStats`).
"""

import math
import queue
import time
from dataclasses import dataclass
from typing import List, Optional, Tuple

from dofbot_rl.plotting import format_value


class ProgressInbox:
    """Thread-safe hand-over of :class:`dofbot_rl.rl.trainer.Progress` records."""

    def __init__(self):
        self._queue: "queue.SimpleQueue" = queue.SimpleQueue()

    def put(self, progress) -> None:
        """Called on the worker thread (the ``Trainer``'s ``on_progress``)."""
        self._queue.put(progress)

    def drain(self) -> list:
        """All records received since the last call, oldest first (main thread)."""
        out = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out


@dataclass
class LiveFigures:
    """What the panel shows about the current run (NaN / 0 where not known yet)."""

    mode: str = ""  #: ``train`` or ``test`` (empty: no run yet)
    run: str = ""  #: the run's experiment name (``<task>_<timestamp>``) or the tested checkpoint's file name
    epoch: int = 0
    max_epochs: int = 0
    frame: int = 0  #: env-steps so far
    mean_reward: float = float("nan")  #: rl_games' mean episode reward (scaled by the reward shaper)
    goals_per_episode: float = float("nan")
    success_rate: float = float("nan")  #: goals reached / goals counted
    env_steps_per_s: float = float("nan")

    @property
    def progress_fraction(self) -> float:
        """``epoch / max_epochs`` in [0, 1] (0 when unknown): the progress bar."""
        return min(1.0, self.epoch / self.max_epochs) if self.max_epochs > 0 else 0.0

    def update_from_progress(self, progress) -> None:
        """Copy a ``Trainer`` :class:`~dofbot_rl.rl.trainer.Progress` record."""
        self.mode = "train"
        self.epoch, self.max_epochs, self.frame = progress.epoch, progress.max_epochs, progress.frame
        self.mean_reward = progress.mean_reward
        self.goals_per_episode = progress.goals_per_episode
        self.success_rate = progress.success_rate
        self.env_steps_per_s = progress.env_steps_per_s

    def lines(self) -> List[Tuple[str, str]]:
        """``(label, value)`` rows for the panel."""
        rows = [("Run", self.run)] if self.run else []
        if self.mode == "train":
            rows.append(("Epoch", f"{self.epoch} / {self.max_epochs}"))
            rows.append(("Mean reward", format_value(self.mean_reward, ".2f")))
        rows += [
            ("Goals / episode", format_value(self.goals_per_episode, ".2f")),
            ("Success rate", "-" if math.isnan(self.success_rate) else f"{100 * self.success_rate:.1f} %"),
            ("Env-steps / s", format_value(self.env_steps_per_s, ",.0f")),
            ("Env-steps", f"{self.frame:,}"),
        ]
        return rows


class LearningCurve:
    """Mean reward against env-steps, at most ``max_points`` points (older halves thinned).

    Args:
        max_points: the most points kept; when exceeded every other point is dropped.
    """

    def __init__(self, max_points: int = 200):
        if max_points < 4:
            raise ValueError(f"max_points must be >= 4, got {max_points}")
        self.max_points = max_points
        self.points: List[Tuple[int, float]] = []  #: ``(frame, mean_reward)``

    def add(self, frame: int, value: float) -> None:
        """Append one point; NaN values are skipped."""
        if value is None or math.isnan(value):
            return
        self.points.append((int(frame), float(value)))
        if len(self.points) > self.max_points:
            self.points = self.points[::2] if len(self.points) % 2 else self.points[1::2]

    def clear(self) -> None:
        """Drop every point (a new run starts)."""
        self.points = []

    @property
    def values(self) -> List[float]:
        """The y values, for ``omni.ui.Plot``."""
        return [v for _, v in self.points]

    @property
    def value_range(self) -> Tuple[float, float]:
        """``(min, max)`` of the values with a margin; ``(0, 1)`` when empty."""
        if not self.points:
            return 0.0, 1.0
        lo, hi = min(self.values), max(self.values)
        pad = max(1e-6, 0.05 * (hi - lo) if hi > lo else abs(hi) * 0.05 + 1.0)
        return lo - pad, hi + pad


class TestStats:
    """Goals counted while a policy is tested, from the task's per-episode statistics.

    Call :meth:`on_step` after every control step on the main thread (the bridge's
    ``after_step`` hook).
    """

    __test__ = False  # not a pytest class

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self.episodes = 0
        self.goals_reached = 0.0
        self.goals_counted = 0.0
        self.steps = 0
        self._start: Optional[float] = None
        self.num_envs = 0

    def on_step(self, task, actions, result) -> None:
        """Bridge hook: count this step and any finished episodes."""
        if self._start is None:
            self._start = self._clock()
        self.num_envs = int(task.num_envs)
        self.steps += 1
        extras = result[3]
        stats = extras.get("episode") if isinstance(extras, dict) else None
        if stats:
            self.episodes += int(stats["goals_reached"].numel())
            self.goals_reached += float(stats["goals_reached"].sum())
            self.goals_counted += float(stats["goals_counted"].sum())

    def figures(self) -> LiveFigures:
        """The statistics as panel figures."""
        elapsed = (self._clock() - self._start) if self._start is not None else 0.0
        return LiveFigures(
            mode="test",
            frame=self.steps * self.num_envs,
            goals_per_episode=self.goals_reached / self.episodes if self.episodes else float("nan"),
            success_rate=self.goals_reached / self.goals_counted if self.goals_counted else float("nan"),
            env_steps_per_s=self.steps * self.num_envs / elapsed if elapsed > 0 else float("nan"),
        )
