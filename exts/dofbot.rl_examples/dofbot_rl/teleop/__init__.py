"""Keyboard teleoperation of one selected robot: bindings, jog model, picking, terminal driver.

Plain Python, no Kit import: the Kit layer and ``dofbot-rl play teleop=True`` both feed
:class:`TeleopModel` with key names and apply its targets through :func:`drive_task`.
:mod:`dofbot_rl.teleop.terminal` (POSIX ``termios``) is not imported here; import it where
a terminal is driven.
"""

from dofbot_rl.teleop.model import (
    ACTION_NAMES,
    KEY_NAMES,
    TeleopBindings,
    TeleopConfig,
    TeleopModel,
    cap_num_envs,
    drive_task,
    normalize_key,
)
from dofbot_rl.teleop.picking import env_id_from_prim_path, first_robot

__all__ = [
    "ACTION_NAMES",
    "KEY_NAMES",
    "TeleopBindings",
    "TeleopConfig",
    "TeleopModel",
    "cap_num_envs",
    "drive_task",
    "env_id_from_prim_path",
    "first_robot",
    "normalize_key",
]
