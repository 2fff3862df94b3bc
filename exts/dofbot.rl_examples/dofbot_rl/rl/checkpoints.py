"""rl_games checkpoints: safe loading, validation against a task, and the run catalogue.

A checkpoint is ``runs/<experiment>/nn/<name>.pth`` as rl_games 1.6.x writes it: a dict
with ``model`` (the model's state dict, normalisers included), ``epoch``, ``frame``,
``optimizer``, ``last_mean_rewards``... (docs/training.md; the reference checkpoint layout). Files
are opened with ``torch.load(weights_only=True)`` (no arbitrary unpickling) before
rl_games ever sees them.
"""

import contextlib
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
from dofbot_rl.errors import DofbotRlError

log = logging.getLogger(__name__)


class CheckpointError(DofbotRlError, ValueError):
    """A checkpoint is missing, unreadable, foreign or does not fit the task."""


class RunFolderError(CheckpointError):
    """An experiment folder cannot take a new run: another training uses it, or it holds the
    checkpoints of an earlier run that this one does not continue."""


_NUMPY_SAFE = [np.dtype, np.float32, np.float64, np.int64]
try:  # numpy >= 1.25 keeps scalar reconstruction here
    from numpy._core.multiarray import scalar as _np_scalar
except ImportError:  # pragma: no cover - older numpy
    from numpy.core.multiarray import scalar as _np_scalar
_NUMPY_SAFE.append(_np_scalar)
_NUMPY_SAFE += [type(np.dtype(t)) for t in ("float32", "float64", "int64")]


def load_checkpoint(path) -> Dict[str, object]:
    """Load a checkpoint without executing pickled code.

    Args:
        path: a ``.pth`` file.

    Returns:
        The checkpoint dict.

    Raises:
        CheckpointError: if the file is missing, not a torch file, needs unsafe
            unpickling, or is not an rl_games checkpoint (no ``model`` state dict).
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a directory: pass a .pth file (runs/<experiment>/nn/*.pth) "
                              f"or checkpoint=last")
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path} (train first, or pick a file from runs/*/nn/)")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a regular file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror}") from None
    if not head.startswith(b"PK") and not head.startswith(b"\x80"):  # torch's zip format, or a legacy pickle
        raise CheckpointError(f"{path} is not a loadable rl_games checkpoint: it is not a torch checkpoint file "
                              f"({path.stat().st_size} bytes, neither torch's zip format nor a pickle)")
    # torch >= 2.5 can allow numpy scalars (rl_games stores some) for one call; older torch
    # (Isaac Sim 2023.1 - 4.2 bundles one) loads tensors-only checkpoints the same way.
    allow = getattr(torch.serialization, "safe_globals", None)
    try:
        with allow(_NUMPY_SAFE) if allow else contextlib.nullcontext():
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for foreign / corrupt files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if head.startswith(b"PK") and ("central directory" in first or "Errno" in first or "zip" in first.lower()):
            raise CheckpointError(f"{path} is not a loadable rl_games checkpoint: it is truncated or damaged "
                                  f"({path.stat().st_size} bytes; torch cannot read its zip archive)") from None
        raise CheckpointError(f"{path} is not a loadable rl_games checkpoint: {first}") from None
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise CheckpointError(f"{path} is not an rl_games checkpoint: no 'model' state dict inside")
    return state


@dataclass(frozen=True)
class PolicyShape:
    """Sizes read from a checkpoint's weights."""

    num_observations: int
    num_actions: int
    hidden_units: tuple


def policy_shape(state: Dict[str, object]) -> PolicyShape:
    """Observation/action sizes and MLP widths of an rl_games ``continuous_a2c_logstd`` checkpoint.

    Raises:
        CheckpointError: if the weights are not an rl_games actor-critic MLP.
    """
    model = state["model"]
    try:
        num_obs = int(model["running_mean_std.running_mean"].shape[0])
        num_actions = int(model["a2c_network.mu.weight"].shape[0])
    except KeyError as exc:
        raise CheckpointError(
            f"checkpoint weights lack {exc.args[0]}: not an rl_games continuous actor-critic with normalize_input"
        ) from None
    layers = sorted(
        (int(m.group(1)), model[k].shape[0])
        for k in model
        if (m := re.fullmatch(r"a2c_network\.actor_mlp\.(\d+)\.weight", k))
    )
    return PolicyShape(num_obs, num_actions, tuple(width for _, width in layers))


def validate_for_task(path, num_observations: int, num_actions: int) -> Dict[str, object]:
    """Load ``path`` and check that its policy fits a task of the given sizes.

    Returns:
        The checkpoint dict.

    Raises:
        CheckpointError: naming the mismatch (e.g. "29 observations expected, checkpoint has 27").
    """
    state = load_checkpoint(path)
    shape = policy_shape(state)
    if shape.num_observations != num_observations or shape.num_actions != num_actions:
        raise CheckpointError(
            f"{path} was trained for {shape.num_observations} observations / {shape.num_actions} actions, "
            f"the task has {num_observations} / {num_actions}: pick a checkpoint of this task"
        )
    return state


def validate_for_config(path, cfg, num_observations: int, num_actions: int) -> Dict[str, object]:
    """Load ``path`` and check that it fits the task sizes and the config's network, before anything runs.

    The one content check of a checkpoint for train (resume), play and export: the file is
    safely loaded (:func:`load_checkpoint`), its observation / action sizes must be the
    task's and its MLP widths ``cfg.train.params.network.mlp.units`` (rl_games would fail
    with a size-mismatch traceback after the run folder was made).

    Returns:
        The checkpoint dict.

    Raises:
        CheckpointError: naming what does not fit and the override that would.
    """
    state = validate_for_task(path, num_observations, num_actions)
    try:
        units = tuple(int(u) for u in cfg.train.params.network.mlp.units)
    except (AttributeError, KeyError, TypeError, ValueError):  # no MLP in this train config: rl_games checks
        return state
    hidden = tuple(int(u) for u in policy_shape(state).hidden_units)
    if hidden != units:
        raise CheckpointError(
            f"{path} has an MLP of {list(hidden)} units, the config asks for {list(units)}: add "
            f"'train.params.network.mlp.units=[{','.join(map(str, hidden))}]' or pick a checkpoint of this network")
    return state


# ----------------------------------------------------------------------------------
# Catalogue of runs/*/nn/*.pth
# ----------------------------------------------------------------------------------
_NAME = re.compile(r"^(?:last_)?(?P<exp>.+?)(?:_ep_(?P<ep>\d+)(?:_rew_+(?P<rew>-?[0-9.eE+-]+|-?inf)_*)?)?(?:_frame_\d+.*)?$")


@dataclass(frozen=True)
class CheckpointEntry:
    """One checkpoint file in the catalogue (parsed from its rl_games file name)."""

    path: Path
    experiment: str
    epoch: Optional[int]
    reward: Optional[float]
    is_best: bool  #: the "best reward" file ``<name>.pth``

    @property
    def label(self) -> str:
        """Short text for lists: ``experiment  ep 200  rew 12.3``."""
        parts = [self.experiment]
        parts.append(f"ep {self.epoch}" if self.epoch is not None else "best")
        if self.reward is not None:
            parts.append(f"rew {self.reward:.2f}")
        return "  ".join(parts)


def parse_checkpoint_name(path) -> CheckpointEntry:
    """Parse rl_games' names: ``<exp>.pth``, ``last_<exp>_ep_<E>_rew_<R>.pth``, ``last_<exp>_ep_<E>_rew__<R>_.pth``."""
    path = Path(path)
    experiment = path.parent.parent.name if path.parent.name == "nn" else path.stem
    m = _NAME.match(path.stem)
    epoch = int(m.group("ep")) if m and m.group("ep") else None
    reward = None
    if m and m.group("rew"):
        try:
            reward = float(m.group("rew"))
        except ValueError:
            reward = None
    return CheckpointEntry(path=path, experiment=experiment, epoch=epoch, reward=reward,
                           is_best=epoch is None and not path.stem.startswith("last_"))


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # removed meanwhile
        return float("-inf")


def list_checkpoints(train_dir="runs") -> List[CheckpointEntry]:
    """All ``<train_dir>/*/nn/*.pth``, grouped by run (experiment folder): the run with the
    newest file first, within a run the newest file first (modification time; ties: the
    higher epoch)."""
    files = [(p, _mtime(p)) for p in Path(train_dir).glob("*/nn/*.pth")]
    newest_of_run: Dict[Path, float] = {}
    for path, mtime in files:
        run = path.parent.parent
        newest_of_run[run] = max(mtime, newest_of_run.get(run, float("-inf")))
    entries = [(parse_checkpoint_name(p), t) for p, t in files]
    return [e for e, _ in sorted(entries, key=lambda et: (-newest_of_run[et[0].path.parent.parent], et[0].experiment,
                                                           -et[1], -(et[0].epoch or 0)))]


def latest_checkpoint(experiment_dir) -> Optional[Path]:
    """The newest ``.pth`` of one run (``<experiment_dir>/nn/``) by modification time, or None.

    Modification time, not the epoch in the name: the file the run wrote last is its current
    state (a higher-epoch file of an earlier run under the same name is not).
    """
    files = [(p, _mtime(p)) for p in Path(experiment_dir, "nn").glob("*.pth")]
    if not files:
        return None
    return max(files, key=lambda pt: (pt[1], parse_checkpoint_name(pt[0]).epoch or 0))[0]


# ----------------------------------------------------------------------------------
# Writing: atomic saves, one training per experiment folder
# ----------------------------------------------------------------------------------
#: Temporary files of :func:`atomic_save` (``.<name>.<random>.tmp``) and of older versions (``<name>.pth.tmp``).
_TMP_GLOBS = (".*.tmp", "*.pth.tmp")


def atomic_write(path, write) -> Path:
    """Call ``write(tmp)`` on a unique temporary file in ``path``'s folder, then rename it onto ``path``.

    Readers never see half a file, and concurrent writers of the same name never share a
    temporary file (each gets its own from :func:`tempfile.mkstemp`, given the usual
    ``0666 & ~umask`` mode); the temporary file is removed if ``write`` fails.

    Args:
        path: the file to write.
        write: ``write(tmp_path: str)`` writes the whole content to ``tmp_path``.

    Returns:
        ``path`` as a Path.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes it 0600
            os.fchmod(fd, 0o666 & ~_umask())
        os.close(fd)
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    return path


def atomic_save(state, path) -> Path:
    """``torch.save(state)`` to ``path`` through :func:`atomic_write`; returns ``path`` as a Path."""
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def _umask() -> int:
    """The process umask, read without changing it (Linux: /proc; elsewhere the common 022)."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:  # not Linux
        lines = []
    for line in lines:
        if line.startswith("Umask:"):
            return int(line.split()[1], 8)
    return 0o022


def remove_temp_files(folder) -> List[Path]:
    """Delete the temporary files a killed writer left in ``folder``; returns them.

    Only call it while holding the folder's :class:`RunLock` (no writer is active then).
    """
    removed = []
    for pattern in _TMP_GLOBS:
        for tmp in Path(folder).glob(pattern):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
    if removed:
        log.info("removed %d temporary file(s) a stopped writer left in %s", len(removed), folder)
    return removed


def check_run_folder(experiment_dir, resume_from=None) -> None:
    """Refuse to start a run in a folder holding another run's checkpoints.

    A new run may use ``experiment_dir`` when ``nn/`` holds no checkpoint, or when it
    resumes from a checkpoint in that ``nn/`` (it continues that run). Reads only.

    Raises:
        RunFolderError: naming the folder and what to do instead.
    """
    nn_dir = Path(experiment_dir, "nn")
    existing = list(nn_dir.glob("*.pth")) if nn_dir.is_dir() else []
    if not existing:
        return
    if resume_from and Path(resume_from).expanduser().resolve().parent == nn_dir.resolve():
        return
    raise RunFolderError(
        f"{experiment_dir} already holds {len(existing)} checkpoint(s) of an earlier run: choose a new "
        f"experiment=NAME, or continue that run with checkpoint={latest_checkpoint(experiment_dir)}")


class RunLock:
    """An exclusive lock on an experiment folder while one training writes into it.

    ``<experiment_dir>/.lock`` is locked with ``flock`` (``msvcrt.locking`` on Windows);
    the operating system releases it when the process ends, even on SIGKILL, so a stale
    lock never blocks the next run. The file holds the owner's process id for the message.

    Use as a context manager; entering creates ``experiment_dir``.

    Raises:
        RunFolderError: on enter, when another training (in this or another process) holds it.
    """

    def __init__(self, experiment_dir):
        self.experiment_dir = Path(experiment_dir)
        self.path = self.experiment_dir / ".lock"
        self._fh = None

    def __enter__(self) -> "RunLock":
        self.experiment_dir.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            _lock_file(fh)
        except OSError:
            fh.close()
            raise self._in_use() from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh
        return self

    def check_free(self) -> None:
        """Refuse now, writing nothing, when another training holds the folder (a caller that
        reports before it builds anything; :meth:`__enter__` is what actually takes it).

        Raises:
            RunFolderError: as :meth:`__enter__` does.
        """
        if not self.path.is_file():
            return
        with open(self.path) as fh:
            try:
                _lock_file(fh)
            except OSError:
                raise self._in_use() from None
            _unlock_file(fh)

    def _in_use(self) -> RunFolderError:
        try:
            owner = self.path.read_text().strip() or "?"
        except OSError:
            owner = "?"
        return RunFolderError(f"{self.experiment_dir} is in use by another training (process {owner}): wait for it "
                              "to end, or choose another experiment=NAME")

    def __exit__(self, *exc) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                _unlock_file(self._fh)
            self._fh.close()
            self._fh = None


try:
    import fcntl

    def _lock_file(fh) -> None:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock_file(fh) -> None:
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
except ImportError:  # pragma: no cover - Windows (Isaac Sim's other platform)
    import msvcrt

    def _lock_file(fh) -> None:
        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)

    def _unlock_file(fh) -> None:
        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
