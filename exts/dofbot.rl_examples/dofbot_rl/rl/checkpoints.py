"""rl_games checkpoints: safe loading, validation against a task, and the run catalogue.

A checkpoint is ``runs/<experiment>/nn/<name>.pth`` as rl_games 1.6.x writes it: a dict
with ``model`` (the model's state dict, normalisers included), ``epoch``, ``frame``,
``optimizer``, ``last_mean_rewards``... (docs/training.md; the reference checkpoint layout). Files
are opened with ``torch.load(weights_only=True)`` (no arbitrary unpickling) before
rl_games ever sees them.
"""

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, foreign or does not fit the task."""


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


def list_checkpoints(train_dir="runs") -> List[CheckpointEntry]:
    """All ``<train_dir>/*/nn/*.pth``: experiments alphabetically, within each the best file
    ``<exp>.pth`` first, then the highest epoch (ties: the highest reward)."""
    entries = [parse_checkpoint_name(p) for p in Path(train_dir).glob("*/nn/*.pth")]
    return sorted(entries, key=lambda e: (e.experiment, -(e.epoch if e.epoch is not None else 10**9),
                                          -(e.reward if e.reward is not None else float("-inf"))))


def latest_checkpoint(experiment_dir) -> Optional[Path]:
    """The newest ``last_*`` checkpoint (highest epoch) of one run, else its best file, else None."""
    entries = [parse_checkpoint_name(p) for p in Path(experiment_dir, "nn").glob("*.pth")]
    last = [e for e in entries if e.epoch is not None]
    if last:
        return max(last, key=lambda e: e.epoch).path
    best = [e for e in entries if e.is_best]
    return best[0].path if best else None
