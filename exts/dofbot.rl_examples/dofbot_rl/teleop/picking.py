"""Which robot a selected USD prim belongs to. Plain string logic, no ``pxr`` / Kit import.

The Kit layer passes the stage selection (``get_selected_prim_paths()``) here on each
selection-changed event. Only the robot prim and its descendants select a robot:
``/World/envs/env_12/Dofbot/link3/visuals`` -> 12, while the markers
(``/World/envs/markers/...``), the ground plane or any other prim -> ``None`` (the reference
demo selected env N for anything under ``env_N``, goal cubes included).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from dofbot_rl import scene

__all__ = ["DEFAULT_ENV_ROOT", "DEFAULT_ROBOT_NAME", "env_id_from_prim_path", "first_robot"]

#: Parent prim of the cloned envs ``env_0``, ``env_1``, ...
DEFAULT_ENV_ROOT = scene.ENV_ROOT
#: Name of the robot prim under each env prim.
DEFAULT_ROBOT_NAME = scene.ROBOT_NAME

_ENV_RE = re.compile(r"env_(\d+)")


def env_id_from_prim_path(path: Any, env_root: str = DEFAULT_ENV_ROOT, robot_name: str = DEFAULT_ROBOT_NAME) -> "int | None":
    """Env index of the robot that the prim at ``path`` is part of.

    Args:
        path: absolute prim path (``str`` or anything whose ``str()`` is one, e.g. ``Sdf.Path``).
        env_root: absolute path of the prim holding ``env_<N>`` prims.
        robot_name: name of the robot prim directly under each ``env_<N>``.

    Returns:
        ``N`` if ``path`` is ``<env_root>/env_<N>/<robot_name>`` or below it, else ``None``.
    """
    root = str(env_root).rstrip("/") + "/"
    path = str(path).rstrip("/")
    if not path.startswith(root):
        return None
    parts = path[len(root):].split("/")
    if len(parts) < 2 or parts[1] != robot_name:
        return None
    match = _ENV_RE.fullmatch(parts[0])
    return int(match.group(1)) if match else None


def first_robot(
    paths: Iterable, env_root: str = DEFAULT_ENV_ROOT, robot_name: str = DEFAULT_ROBOT_NAME
) -> "tuple[int | None, str]":
    """Pick the robot to teleoperate from a (multi-)selection.

    Args:
        paths: selected prim paths, in selection order.
        env_root, robot_name: as in :func:`env_id_from_prim_path`.

    Returns:
        ``(env_id, message)``: the env of the first path that is part of a robot (or ``None``),
        and a one-line message for the UI: empty when nothing is selected, otherwise which
        env is driven, that several robots were selected and only the first is driven, or
        that the selection is not a robot.
    """
    paths = [str(p) for p in paths]
    if not paths:
        return None, ""
    env_ids = [env_id_from_prim_path(p, env_root, robot_name) for p in paths]
    robots = list(dict.fromkeys(e for e in env_ids if e is not None))  # distinct, in order
    if not robots:
        if len(paths) == 1:
            return None, "%s is not a %s; click a robot to drive it" % (paths[0], robot_name)
        return None, "none of the %d selected prims is a %s; click a robot to drive it" % (len(paths), robot_name)
    env_id = robots[0]
    if len(robots) > 1:
        return env_id, "%d robots selected; driving the first, env %d" % (len(robots), env_id)
    return env_id, "env %d selected" % env_id
