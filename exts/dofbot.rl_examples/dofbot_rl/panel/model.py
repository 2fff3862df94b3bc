"""The RL Examples panel as plain Python: state, what each button does and when it is enabled.

The omni.ui window (``dofbot_rl.app.window``) only draws what this model says and
forwards clicks to it; the Kit sim loop calls :meth:`PanelModel.tick` once per app
update. Everything here runs without Kit and is tested with the MuJoCo backend.

States and buttons (``x``: enabled; ``*``: enabled when a valid checkpoint is selected;
``i``: enabled when the inputs are valid)::

    state      Load  Train  Resume  Test  Stop         inputs (task, robots, epochs)
    empty       i     -      -       -     -            editable
    loading     -     -      -       -     -            locked
    loaded      i     x      *       *     -            editable (Load rebuilds)
    training    -     -      -       -     x            locked
    stopping    -     -      -       -     x (force)    locked
    testing     -     -      -       -     x            locked

The render mode, the checkpoint list and the Sim2Real toggle stay usable in every
state. Errors never raise out of a button: they land in :attr:`PanelModel.status`
(and the error listeners, which the Kit layer points at ``carb.log_error``).

Every Train and Resume is its own run: experiment ``<task>_<YYYYmmdd-HHMMSS>`` under the
train folder (:attr:`PanelModel.run_name`), so runs never share checkpoints, progress or
TensorBoard files. Removing the scene (undo of Load, stage close, shutdown) never blocks:
:meth:`PanelModel.unload_guard` says when it would end a training run (ask, or refuse with
``unload(refuse_if_training=True)``); the worker thread is stopped at once and
:meth:`PanelModel.poll_worker` tells, once per app update, when it has ended.
"""

import enum
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from dofbot_rl.panel.catalogue import CheckpointCatalogue
from dofbot_rl.panel.figures import LearningCurve, LiveFigures
from dofbot_rl.panel.render import RENDER_MODES, render_mode
from dofbot_rl.panel.session import Session, SessionError
from dofbot_rl.panel.settings import MAX_UI_NUM_ENVS, PanelSettings, SettingsStore
from dofbot_rl.sim2real.link import Sim2RealLink
from dofbot_rl.teleop.model import cap_num_envs

log = logging.getLogger(__name__)


class PanelState(str, enum.Enum):
    """Lifecycle of the panel's scene and run."""

    EMPTY = "empty"  #: no scene
    LOADING = "loading"  #: the scene is being built (async in Kit)
    LOADED = "loaded"  #: a scene, no run
    TRAINING = "training"  #: PPO runs on the worker thread
    STOPPING = "stopping"  #: a stop was asked; the worker is finishing (checkpoint)
    TESTING = "testing"  #: a checkpoint's policy plays


#: Button names, in panel order.
BUTTONS = ("load", "train", "resume", "test", "stop")
_LABELS = {"load": "Load", "train": "Train", "resume": "Resume", "test": "Test", "stop": "Stop"}
_RUNNING = (PanelState.TRAINING, PanelState.STOPPING, PanelState.TESTING)


@dataclass(frozen=True)
class ButtonState:
    """How one button looks now."""

    enabled: bool
    label: str
    tooltip: str = ""  #: what it will do, or why it is disabled


@dataclass
class StatusLine:
    """The panel's one-line status and the last error."""

    text: str = "Choose a task and the number of robots, then press Load."
    level: str = "info"  #: ``info``, ``busy``, ``ok`` or ``error``
    last_error: str = ""  #: the last error message (kept until the next error)


def parse_num_envs(value) -> int:
    """The number of robots typed in the panel, checked against the UI cap.

    Args:
        value: an int or its text.

    Returns:
        An int in ``1..8192`` (the reference panel's cap).

    Raises:
        ValueError: naming the bad value and the range.
    """
    try:
        n = int(str(value).strip())
    except ValueError:
        raise ValueError(f"number of robots must be a whole number, got {value!r}") from None
    if not 1 <= n <= MAX_UI_NUM_ENVS:
        raise ValueError(f"number of robots must be 1..{MAX_UI_NUM_ENVS}, got {n}")
    return n


def parse_max_iterations(value) -> int:
    """PPO epochs typed in the panel: an int >= 0 (0: the config's device default).

    Raises:
        ValueError: naming the bad value.
    """
    try:
        n = int(str(value).strip())
    except ValueError:
        raise ValueError(f"epochs must be a whole number, got {value!r}") from None
    if n < 0:
        raise ValueError(f"epochs must be >= 0 (0: the config default), got {n}")
    return n


@dataclass(frozen=True)
class CheckpointChoices:
    """What the checkpoint combo shows: rebuild it whenever this value changes (labels or selection)."""

    labels: Tuple[str, ...]  #: the items: ``(none)``, then one per catalogue entry
    index: int  #: the selected item (0: none); its checkpoint is the one Test and Resume use


def new_run_name(task: str, train_dir, now: Optional[datetime] = None) -> str:
    """``<task>_<YYYYmmdd-HHMMSS>`` (``_2``, ``_3``... when that folder exists already)."""
    base = f"{task}_{(now or datetime.now()):%Y%m%d-%H%M%S}"
    name, n = base, 1
    while (Path(train_dir) / name).exists():
        n += 1
        name = f"{base}_{n}"
    return name


def default_train_dir() -> Path:
    """``<repo>/runs`` (the CLI's default, made absolute: Kit's working folder is the app's)."""
    from dofbot_rl.paths import repo_root

    try:
        return repo_root() / "runs"
    except FileNotFoundError:
        return Path.home() / "dofbot-rl" / "runs"


def _quote(value: str) -> str:
    """A Hydra override value: quoted so paths with spaces or '=' survive."""
    text = str(value)
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


class PanelModel:
    """Everything the RL Examples panel shows and does.

    Args:
        store: where :class:`~dofbot_rl.panel.settings.PanelSettings` persist.
        session: the runtime (default: a new :class:`~dofbot_rl.panel.session.Session`).
        loader: ``loader(cfg)`` builds the scene for a validated config and then calls
            :meth:`finish_load` (with the physics backend) or :meth:`fail_load`; it may
            return before that (Kit builds asynchronously). Default: the embedded
            backend, synchronously (:func:`dofbot_rl.physics.make_physics`).
        base_overrides: Hydra overrides put before the panel's own (the Kit layer
            passes e.g. ``sim_device=cuda:0``).
        task_names: the dropdown's tasks (default: ``dofbot_rl.tasks.TASKS``).
        clock: monotonic clock (s), for the stop timeout.
        stop_timeout_s: a graceful stop that takes longer than this is forced (s).
    """

    def __init__(self, store: SettingsStore, session: Optional[Session] = None,
                 loader: Optional[Callable[[object], None]] = None, base_overrides: Sequence[str] = (),
                 task_names: Optional[Sequence[str]] = None, clock: Callable[[], float] = time.monotonic,
                 stop_timeout_s: float = 120.0):
        from dofbot_rl.tasks import TASKS

        self._tasks = TASKS
        self.task_names: List[str] = list(task_names if task_names is not None else TASKS)
        self.store = store
        self.session = session if session is not None else Session()
        self.loader = loader if loader is not None else self._load_embedded
        self.base_overrides = list(base_overrides)
        self._clock = clock
        self.stop_timeout_s = float(stop_timeout_s)

        self.settings = PanelSettings.load(store)
        self.state = PanelState.EMPTY
        self.status = StatusLine()
        self.figures = LiveFigures()
        self.curve = LearningCurve()
        self.input_errors: Dict[str, str] = {}  #: field -> message for invalid inputs
        self.blocked = ""  #: a problem that disables the panel (unsupported app, missing package)
        self.sim2real = Sim2RealLink()
        self.session.step_hooks.append(self.sim2real.step_hook(lambda: self.session.teleop.selected_env))
        self._pending_cfg = None
        self._sim_failed = False
        self.run_name = ""  #: experiment name of the current or last panel run (``<task>_<timestamp>``)
        self._worker_was_alive = False
        self._listeners: List[Callable[[], None]] = []
        self._error_listeners: List[Callable[[str], None]] = []
        self._default_envs: Dict[str, int] = {}

        if self.settings.task not in self.task_names:
            self.settings.problems.append(f"setting task={self.settings.task!r} ignored: not a registered task")
            self.settings.task = self.task_names[0] if self.task_names else ""
        task_cls = self._tasks.get(self.settings.task)
        self.catalogue = CheckpointCatalogue(self.train_dir, getattr(task_cls, "num_observations", 0),
                                             getattr(task_cls, "num_actions", 0))
        self.catalogue.refresh()
        if self.settings.checkpoint and Path(self.settings.checkpoint).is_file():
            self.catalogue.select_path(self.settings.checkpoint)
        if self.settings.problems:
            self.status = StatusLine("; ".join(self.settings.problems), "info")

    # ------------------------------------------------------------------------------
    # Listeners
    # ------------------------------------------------------------------------------
    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` after every change; returns the function that unsubscribes."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def subscribe_errors(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call ``callback(message)`` for every error shown; returns the unsubscribe function."""
        self._error_listeners.append(callback)
        return lambda: self._error_listeners.remove(callback) if callback in self._error_listeners else None

    def _changed(self) -> None:
        for callback in list(self._listeners):
            callback()

    def _error(self, context: str, exc: BaseException) -> None:
        from dofbot_rl.errors import USER_ERRORS

        if isinstance(exc, USER_ERRORS + (KeyError, IndexError)):
            message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        else:
            message = f"{type(exc).__name__}: {exc}"
            log.error("%s failed", context, exc_info=(type(exc), exc, exc.__traceback__))
        self.status = StatusLine(f"{context} failed: {message}", "error", message)
        for callback in list(self._error_listeners):
            callback(self.status.text)

    def _info(self, text: str, level: str = "info") -> None:
        self.status = StatusLine(text, level, self.status.last_error)

    # ------------------------------------------------------------------------------
    # Inputs
    # ------------------------------------------------------------------------------
    @property
    def train_dir(self) -> Path:
        """Where runs are written and the checkpoint list is read."""
        return Path(self.settings.train_dir).expanduser() if self.settings.train_dir else default_train_dir()

    @property
    def inputs_enabled(self) -> bool:
        """Whether task, robots and epochs can be edited (not while loading or running)."""
        return not self.blocked and self.state in (PanelState.EMPTY, PanelState.LOADED)

    def default_num_envs(self) -> int:
        """The config's number of robots for the task on this device (shown when the field is 0)."""
        key = self.settings.task
        if key not in self._default_envs:
            self._default_envs[key] = int(self._config(num_envs=None).num_envs)
        return self._default_envs[key]

    @property
    def num_envs(self) -> int:
        """The number of robots Load will build."""
        return self.settings.num_envs or self.default_num_envs()

    def set_task(self, name: str) -> bool:
        """Choose the task; returns False (and marks the field invalid) for an unknown name."""
        if name not in self.task_names:
            self.input_errors["task"] = f"unknown task {name!r}: expected one of {', '.join(self.task_names)}"
            self._changed()
            return False
        self.input_errors.pop("task", None)
        self.settings.task = name
        task_cls = self._tasks[name]
        self.catalogue.set_task_sizes(task_cls.num_observations, task_cls.num_actions)
        self._saved()
        return True

    def set_num_envs(self, value) -> str:
        """Set the number of robots from the field; returns the validation message ('' when valid).

        An invalid value is not stored; Load stays disabled until it is fixed.
        """
        return self._set_validated("num_envs", parse_num_envs, value)

    def set_max_iterations(self, value) -> str:
        """Set the PPO epochs of the next run (0: config default); returns the validation message."""
        return self._set_validated("max_iterations", parse_max_iterations, value)

    def _set_validated(self, name: str, parse, value) -> str:
        """Store ``parse(value)`` as setting ``name``; an invalid value is kept out and reported."""
        try:
            setattr(self.settings, name, parse(value))
        except ValueError as exc:
            self.input_errors[name] = str(exc)
            self._changed()
            return str(exc)
        self.input_errors.pop(name, None)
        self._saved()
        return ""

    def set_render_mode(self, name: str) -> None:
        """Choose ``full`` / ``ui_only`` / ``none``; takes effect at the next app update.

        Raises:
            ValueError: for an unknown mode.
        """
        render_mode(name)
        self.settings.render_mode = name
        self._saved()

    @property
    def render_mode_names(self) -> List[str]:
        """Render modes in dropdown order."""
        return list(RENDER_MODES)

    def set_train_dir(self, path) -> None:
        """Change where runs are written and listed; refreshes the checkpoint list."""
        self.settings.train_dir = str(path)
        self.catalogue.train_dir = self.train_dir
        self.refresh_checkpoints()

    def refresh_checkpoints(self) -> None:
        """Re-read the checkpoint list."""
        self.catalogue.refresh()
        self._changed()

    @property
    def selected_checkpoint(self) -> Optional[Path]:
        """The selected checkpoint file: the one Test plays and Resume continues (None: none)."""
        return self.catalogue.selected.path if self.catalogue.selected is not None else None

    def checkpoint_choices(self) -> CheckpointChoices:
        """The combo's items and selected item; the Kit window rebuilds the combo when it changes."""
        return CheckpointChoices(("(none)",) + tuple(self.catalogue.labels()), self.catalogue.selected_index + 1)

    def select_checkpoint(self, index: int) -> bool:
        """Select the list's entry ``index`` (-1 clears); returns whether it fits the task."""
        valid = self.catalogue.select(index)
        self._after_checkpoint_choice()
        return valid

    def pick_checkpoint_file(self, path) -> bool:
        """Select a file chosen in the file picker; returns whether it fits the task."""
        valid = self.catalogue.select_path(path)
        self._after_checkpoint_choice()
        return valid

    def _after_checkpoint_choice(self) -> None:
        selected = self.catalogue.selected
        self.settings.checkpoint = str(selected.path) if selected is not None else ""
        if selected is not None and not self.catalogue.valid:
            self.status = StatusLine(f"Checkpoint rejected: {self.catalogue.message}", "error", self.catalogue.message)
        self._saved()

    def _saved(self) -> None:
        self.settings.save(self.store)
        self._changed()

    def block(self, reason: str) -> None:
        """Disable every action and show ``reason`` (unsupported Isaac Sim, missing package)."""
        self.blocked = reason
        self.status = StatusLine(reason, "error", reason)
        self._changed()

    # ------------------------------------------------------------------------------
    # Buttons
    # ------------------------------------------------------------------------------
    def button(self, name: str) -> ButtonState:
        """Enabled flag, label and tooltip of button ``name`` (one of :data:`BUTTONS`).

        Raises:
            KeyError: for an unknown button.
        """
        if name not in _LABELS:
            raise KeyError(f"unknown button {name!r}: expected one of {', '.join(BUTTONS)}")
        label = _LABELS[name]
        if self.blocked:
            return ButtonState(False, label, self.blocked)
        s = self.state
        if name == "load":
            if s in _RUNNING or s == PanelState.LOADING:
                return ButtonState(False, label, "stop the run first" if s in _RUNNING else "loading...")
            if self.input_errors:
                return ButtonState(False, label, next(iter(self.input_errors.values())))
            verb = "Rebuild the scene with" if s == PanelState.LOADED else "Build"
            return ButtonState(True, label, f"{verb} {self.settings.num_envs or 'the default number of'} robots of {self.settings.task}")
        if name == "stop":
            if s == PanelState.STOPPING:
                return ButtonState(True, "Force stop", "end now; the last checkpoint written is kept")
            tip = "finish the epoch, save a checkpoint, stop" if s == PanelState.TRAINING else "stop the policy"
            return ButtonState(s in (PanelState.TRAINING, PanelState.TESTING), label, tip if s in _RUNNING else "nothing runs")
        if s != PanelState.LOADED:
            why = {PanelState.EMPTY: "press Load first", PanelState.LOADING: "loading..."}.get(s, "a run is active")
            return ButtonState(False, label, why)
        if self.session.worker_alive:
            return ButtonState(False, label, "the previous run is still ending")
        if name == "train":
            return ButtonState(True, label, f"train PPO from scratch on the {self.session.task.num_envs} loaded robots")
        if self.catalogue.selected is None:
            return ButtonState(False, label, "choose a checkpoint first")
        if not self.catalogue.valid:
            return ButtonState(False, label, self.catalogue.message)
        what = "continue training from" if name == "resume" else "play the policy of"
        return ButtonState(True, label, f"{what} {self.catalogue.selected.path.name}")

    def buttons(self) -> Dict[str, ButtonState]:
        """Every button's state, in panel order."""
        return {name: self.button(name) for name in BUTTONS}

    def press(self, name: str) -> bool:
        """Click button ``name``; returns False (status explains) when it is disabled.

        Raises:
            KeyError: for an unknown button.
        """
        state = self.button(name)
        if not state.enabled:
            self._info(f"{state.label} is not available: {state.tooltip}")
            self._changed()
            return False
        action = {"load": self.load, "train": self.train, "resume": lambda: self.train(resume=True),
                  "test": self.test, "stop": self.stop}[name]
        return bool(action())

    # ------------------------------------------------------------------------------
    # Load
    # ------------------------------------------------------------------------------
    def _config(self, num_envs: Optional[int], test: bool = False, checkpoint: str = "", experiment: str = ""):
        from dofbot_rl.config import load_config

        overrides = list(self.base_overrides) + [f"task={self.settings.task}", f"train_dir={_quote(self.train_dir)}",
                                                 "headless=False"]
        if num_envs:
            overrides.append(f"num_envs={int(num_envs)}")
        if self.settings.max_iterations:
            overrides.append(f"max_iterations={self.settings.max_iterations}")
        if test:
            overrides.append("test=True")
        if checkpoint:
            overrides.append(f"checkpoint={_quote(checkpoint)}")
        if experiment:
            overrides.append(f"experiment={experiment}")
        return load_config(overrides)

    def load(self) -> bool:
        """Load: validate, then hand the config to :attr:`loader` (state ``loading``)."""
        cfg = self.begin_load()
        if cfg is None:
            return False
        try:
            self.loader(cfg)
        except Exception as exc:  # the loader failed before it could report
            self.fail_load(exc)
            return False
        return True

    def begin_load(self):
        """Validate the inputs and enter ``loading``; returns the config, or None (status says why)."""
        if not self.button("load").enabled:
            self._info(f"Load is not available: {self.button('load').tooltip}")
            self._changed()
            return None
        try:
            cfg = self._config(num_envs=self.settings.num_envs or None)
            capped = cap_num_envs(cfg.num_envs, cfg.task.teleop.max_robots)
            if capped != cfg.num_envs:  # task.teleop.max_robots: a teleop demo scene, only when asked for
                cfg = self._config(num_envs=capped)
        except Exception as exc:
            self._error("Load", exc)
            self._changed()
            return None
        self._pending_cfg = cfg
        self.state = PanelState.LOADING
        note = " (capped by task.teleop.max_robots)" if self.settings.num_envs and cfg.num_envs < self.settings.num_envs else ""
        self._info(f"Loading {cfg.num_envs} robots of {cfg.task.name}{note}...", "busy")
        self._changed()
        return cfg

    def finish_load(self, physics) -> bool:
        """The loader built ``physics`` for the pending config: build the task (state ``loaded``)."""
        cfg, self._pending_cfg = self._pending_cfg, None
        if cfg is None:
            raise SessionError("finish_load() without begin_load()")
        try:
            self.session.attach(cfg, physics)
        except Exception as exc:
            self.state = PanelState.EMPTY
            self._error("Load", exc)
            self._changed()
            return False
        self.state = PanelState.LOADED
        self.catalogue.set_task_sizes(self.session.task.num_observations, self.session.task.num_actions)
        self.catalogue.refresh()
        self._info(f"Loaded {cfg.num_envs} robots of {cfg.task.name} on {physics.device}.", "ok")
        self._saved()
        return True

    def fail_load(self, exc: BaseException) -> None:
        """The loader failed: back to ``empty`` (the old scene is gone) with the error shown."""
        self._pending_cfg = None
        self.session.detach()
        self.state = PanelState.EMPTY
        self._error("Load", exc)
        self._changed()

    def _load_embedded(self, cfg) -> None:
        from dofbot_rl.physics import make_physics

        self.finish_load(make_physics(cfg))

    def unload_guard(self) -> str:
        """Why removing the scene now would lose work ('' when it would not): a training run
        (or its final save after Stop) is active. The Kit layer asks before undoing Load."""
        if self.state == PanelState.TRAINING or (self.state == PanelState.STOPPING and self.session.run_kind == "train"):
            return (f"training {self.run_name} is running (epoch {self.figures.epoch} / {self.figures.max_epochs}): "
                    "press Stop first (it saves a checkpoint)")
        return ""

    def unload(self, refuse_if_training: bool = False) -> bool:
        """Drop the scene (the stage was closed, Load undone): state ``empty``; never blocks.

        Args:
            refuse_if_training: keep the scene and return False (the status says why) while
                :meth:`unload_guard` reports a training run (undo of Load; or ask the user
                with the guard's text first). Without it the scene goes whatever runs (the
                stage is closing): an active run is stopped at once, without its final
                checkpoint (the rolling ones stay).

        Returns:
            True when the scene was dropped. An active run's thread ends by itself:
            :meth:`poll_worker` tells when.
        """
        guard = self.unload_guard()
        if guard and refuse_if_training:
            self._info(f"The scene was kept: {guard}.")
            self._changed()
            return False
        self.session.detach()
        self.state = PanelState.EMPTY
        self._info("The scene is gone: press Load to build it again." + (f" Training {self.run_name} was ended." if guard else ""))
        self.poll_worker()
        self._changed()
        return True

    def poll_worker(self) -> bool:
        """Non-blocking: True when no rl_games worker thread is left (call once per app update;
        listeners hear when the last one ended)."""
        alive = self.session.worker_alive
        if self._worker_was_alive and not alive:
            self._changed()
        self._worker_was_alive = alive
        return not alive

    # ------------------------------------------------------------------------------
    # Train / Test / Stop
    # ------------------------------------------------------------------------------
    def train(self, resume: bool = False) -> bool:
        """Train (or resume from the selected checkpoint) on the loaded scene: state ``training``."""
        name = "resume" if resume else "train"
        if not self.button(name).enabled:
            return self.press(name)
        checkpoint = str(self.selected_checkpoint) if resume else ""
        try:
            run_name = new_run_name(self.settings.task, self.train_dir)
            cfg = self._config(num_envs=self.session.task.num_envs, checkpoint=checkpoint, experiment=run_name)
            self.session.start_training(cfg)
        except Exception as exc:
            self._error("Train", exc)
            self._changed()
            return False
        self._sim_failed = False
        self.run_name = run_name
        self.figures = LiveFigures(mode="train", run=run_name, max_epochs=int(cfg.max_iterations))
        self.curve.clear()
        self.state = PanelState.TRAINING
        what = f"Resuming from {Path(checkpoint).name}" if resume else "Training"
        more = " more" if resume else ""
        self._info(f"{what}: {cfg.max_iterations}{more} epochs on {cfg.num_envs} robots, run {run_name} in {cfg.train_dir}",
                   "busy")
        self._changed()
        return True

    def test(self) -> bool:
        """Play the selected checkpoint on the loaded scene: state ``testing``."""
        if not self.button("test").enabled:
            return self.press("test")
        checkpoint = str(self.selected_checkpoint)
        try:
            cfg = self._config(num_envs=self.session.task.num_envs, test=True, checkpoint=checkpoint)
            self.session.start_testing(cfg, checkpoint)
        except Exception as exc:
            self._error("Test", exc)
            self._changed()
            return False
        self._sim_failed = False
        self.figures = LiveFigures(mode="test", run=Path(checkpoint).name)
        self.state = PanelState.TESTING
        self._info(f"Testing {Path(checkpoint).name} on {cfg.num_envs} robots", "busy")
        self._changed()
        return True

    def stop(self) -> bool:
        """Stop: training finishes its epoch and saves; testing ends at once; a second
        Stop while ``stopping`` forces the end."""
        if self.state == PanelState.TRAINING:
            self.session.stop(graceful=True)
            self._info("Stopping: finishing the epoch and saving a checkpoint...", "busy")
        elif self.state == PanelState.TESTING:
            self.session.stop(graceful=False)
            self._info("Stopping the test...", "busy")
        elif self.state == PanelState.STOPPING:
            self.session.stop(graceful=False)
            self._info("Forcing the stop; the last checkpoint written is kept.", "busy")
        else:
            return self.press("stop")
        self.state = PanelState.STOPPING
        self._changed()
        return True

    # ------------------------------------------------------------------------------
    # The sim loop's entry
    # ------------------------------------------------------------------------------
    def tick(self) -> int:
        """One app update: run control steps per the render mode, update figures, finish runs.
        With a scene loaded and no run, one idle step while a robot is selected, so jogging
        moves it (:meth:`Session.step_idle`).

        Returns:
            Control steps run.
        """
        if self.state == PanelState.LOADED:
            return int(self.session.step_idle())  # teleop moves the selected robot with no run
        if self.state not in _RUNNING or self.session.run is None:
            self.poll_worker()
            return 0
        mode = render_mode(self.settings.render_mode)
        steps = 0
        try:
            steps = self.session.pump(mode.max_steps, mode.budget_s)
        except Exception as exc:  # the simulation failed on this thread; the worker is stopping
            self._error("Simulation", exc)
            self._sim_failed = True
            self.state = PanelState.STOPPING
        run = self.session.run
        if self.session.run_kind == "train":
            for progress in self.session.inbox.drain():
                self.figures.update_from_progress(progress)
                self.curve.add(progress.frame, progress.mean_reward)
        elif steps:
            self.figures = self.session.test_stats.figures()
            self.figures.run = Path(self.session.run_checkpoint).name
        if (self.state == PanelState.STOPPING and run.stop_requested_at is not None
                and self._clock() - run.stop_requested_at > self.stop_timeout_s):
            self.session.stop(graceful=False)
        if run.finished:
            self._finish_run(run)
        if steps or run.finished:
            self._changed()
        return steps

    def _finish_run(self, run) -> None:
        kind = self.session.run_kind
        self.state = PanelState.LOADED
        if run.error is not None:
            self._error("Training" if kind == "train" else "Test", run.error)
        elif self._sim_failed:
            pass  # the main-side error is already shown
        elif kind == "train":
            self.catalogue.refresh()
            result = run.result
            if result is not None and result.checkpoint is not None:
                self.catalogue.select_path(result.checkpoint)
                self.settings.checkpoint = str(result.checkpoint)
                self.settings.save(self.store)
                how = "stopped" if result.stopped else "finished"
                last = result.history[-1].epoch if result.history else 0
                self._info(f"Training {how} at epoch {last}; run {self.run_name}, checkpoint {result.checkpoint.name}", "ok")
            else:
                self._info("Training stopped (forced); the checkpoints written so far are kept.", "ok")
        else:
            figures = self.session.test_stats.figures()
            figures.run = Path(self.session.run_checkpoint).name
            self.figures = figures
            rate = "-" if figures.success_rate != figures.success_rate else f"{100 * figures.success_rate:.1f} %"
            self._info(f"Test stopped after {self.session.test_stats.episodes} episodes; success rate {rate}", "ok")
        self.session.release_run()  # the finished run's trainer, bridge and rl_games state go now

    # ------------------------------------------------------------------------------
    # Teleop (the Kit layer forwards selection and keys)
    # ------------------------------------------------------------------------------
    def select_robot_paths(self, paths: Sequence[str]) -> Optional[int]:
        """The stage selection changed: drive the first robot in ``paths`` (see
        :func:`dofbot_rl.teleop.first_robot`); returns its env id or None."""
        from dofbot_rl.teleop import first_robot

        env_id, message = first_robot(paths)
        if not self.session.loaded or (env_id is not None and env_id >= self.session.task.num_envs):
            env_id = None
        previous = self.session.teleop.selected_env
        self.session.select_robot(env_id)
        if message and (env_id is not None or previous is not None or paths):
            self._info(message)
        self._changed()
        return env_id

    def key_down(self, key: str) -> bool:
        """A key went down while the viewport has focus; True when teleop used it."""
        used = self.session.teleop.key_down(key)
        if used and self.session.teleop.selected_env is None:
            self._info("Robot released to the policy.")
            self._changed()
        return used

    def key_up(self, key: str) -> bool:
        """A key went up; True when it was a held jog key."""
        return self.session.teleop.key_up(key)

    def teleop_line(self) -> str:
        """``env 12: 0.10 -0.20 ... rad`` for the selected robot, or a hint."""
        q = self.session.selected_joint_positions()
        if q is None:
            return "Click a robot in the viewport to drive it (Q/A W/S E/D R/F T/G Y/H, Esc releases)."
        return f"env {self.session.teleop.selected_env}: " + " ".join(f"{v:+.2f}" for v in q) + " rad"

    # ------------------------------------------------------------------------------
    # Sim2Real
    # ------------------------------------------------------------------------------
    def set_sim2real(self, on: bool, host: Optional[str] = None, port=None, token_file: Optional[str] = None,
                     mode: Optional[str] = None) -> bool:
        """Switch the sim-to-real link on (to ``host:port`` with ``token_file`` and ``mode``, all
        remembered) or off; returns its state."""
        if on:
            host = host if host is not None else self.settings.sim2real_host
            token_file = token_file if token_file is not None else self.settings.sim2real_token_file
            mode = mode if mode is not None else self.settings.sim2real_mode
            try:
                port = int(port if port is not None else self.settings.sim2real_port)
            except (TypeError, ValueError):
                self.input_errors["sim2real_port"] = f"port must be a number, got {port!r}"
                # the link line and the status line say it too, not an older failure's reason
                self.sim2real.error = f"Sim2Real: {self.input_errors['sim2real_port']}"
                self.status = StatusLine(self.sim2real.error, "error", self.sim2real.error)
                self._changed()
                return False
            self.input_errors.pop("sim2real_port", None)
            if not self.sim2real.switch_on(host, port, token_file=token_file, mode=mode):
                self.status = StatusLine(self.sim2real.error, "error", self.sim2real.error)
            else:
                self.settings.sim2real_host, self.settings.sim2real_port = host, port
                self.settings.sim2real_token_file, self.settings.sim2real_mode = token_file, mode
                self.settings.save(self.store)
        else:
            self.sim2real.switch_off()
        self._changed()
        return self.sim2real.enabled

    # ------------------------------------------------------------------------------
    def shutdown(self, wait_s: float = 10.0) -> None:
        """Stop any run at once, close the link and drop the scene (extension shutdown).

        Args:
            wait_s: how long to wait for the rl_games worker thread (s); 0 on Kit's main thread
                (the worker is a daemon thread; checkpoints are written atomically).
        """
        self.sim2real.switch_off()
        self.session.close(timeout_s=wait_s)
        self.state = PanelState.EMPTY
        self._listeners.clear()
        self._error_listeners.clear()
