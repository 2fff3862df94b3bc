"""Keyboard teleoperation of one robot: key bindings -> incremental joint jogging.

Plain Python (plus torch in :func:`drive_task`); no Kit import. The Kit layer (carb.input
``KeyboardInput`` names) and the terminal driver (:mod:`dofbot_rl.teleop.terminal`) both
feed :class:`TeleopModel` with key names as plain strings (``"Q"``, ``"ESCAPE"``, ...).

Semantics (issue 4):

* ``select(env_id, dof_pos)`` takes a robot; its current joint positions become the targets.
* While a joint key is held, that joint's target moves at ``speed_rad_s`` (rad/s), clamped to
  :data:`dofbot_rl.robot.TELEOP_LIMITS_LOWER` / ``TELEOP_LIMITS_UPPER``; on key release the
  target holds where it is (incremental jogging, not the reference's absolute one-hot action).
* The release key (ESC) hands the robot back to the policy; the reset key drives the
  selected robot's targets back to :data:`dofbot_rl.robot.DEFAULT_DOF_POS`; the camera key
  flips :attr:`TeleopModel.follow_camera` for the Kit layer.

The model only produces targets. The task applies them through
``task.set_manual_targets(env_id, targets | None)``; :func:`drive_task` is the adapter.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, Dict

import torch

from dofbot_rl import robot

__all__ = [
    "ACTION_NAMES",
    "DEFAULT_CAMERA_KEY",
    "DEFAULT_GRIPPER_SPEED_RAD_S",
    "DEFAULT_JOINT_KEYS",
    "DEFAULT_RELEASE_KEY",
    "DEFAULT_RESET_KEY",
    "DEFAULT_SPEED_RAD_S",
    "KEY_NAMES",
    "TeleopBindings",
    "TeleopConfig",
    "TeleopModel",
    "cap_num_envs",
    "drive_task",
    "normalize_key",
]

# ----------------------------------------------------------------------------------
# Key names and defaults
# ----------------------------------------------------------------------------------

#: Valid key names: the members of Kit's ``carb.input.KeyboardInput`` (without UNKNOWN/COUNT).
KEY_NAMES = frozenset(
    ["SPACE", "APOSTROPHE", "COMMA", "MINUS", "PERIOD", "SLASH", "SEMICOLON", "EQUAL"]
    + ["KEY_%d" % i for i in range(10)]
    + [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    + ["LEFT_BRACKET", "BACKSLASH", "RIGHT_BRACKET", "GRAVE_ACCENT", "ESCAPE", "TAB", "ENTER"]
    + ["BACKSPACE", "INSERT", "DEL", "RIGHT", "LEFT", "DOWN", "UP", "PAGE_UP", "PAGE_DOWN"]
    + ["HOME", "END", "CAPS_LOCK", "SCROLL_LOCK", "NUM_LOCK", "PRINT_SCREEN", "PAUSE"]
    + ["F%d" % i for i in range(1, 13)]
    + ["NUMPAD_%d" % i for i in range(10)]
    + ["NUMPAD_DEL", "NUMPAD_DIVIDE", "NUMPAD_MULTIPLY", "NUMPAD_SUBTRACT", "NUMPAD_ADD"]
    + ["NUMPAD_ENTER", "NUMPAD_EQUAL", "MENU"]
    + ["LEFT_SHIFT", "LEFT_CONTROL", "LEFT_ALT", "LEFT_SUPER"]
    + ["RIGHT_SHIFT", "RIGHT_CONTROL", "RIGHT_ALT", "RIGHT_SUPER"]
)
_KEY_ALIASES = {"ESC": "ESCAPE", "RETURN": "ENTER", "DELETE": "DEL", " ": "SPACE"}

#: Default (minus key, plus key) per joint, in ``robot.JOINT_NAMES`` order. For the gripper
#: minus opens (towards ``TELEOP_LIMITS_LOWER[5]``) and plus closes.
DEFAULT_JOINT_KEYS = (("Q", "A"), ("W", "S"), ("E", "D"), ("R", "F"), ("T", "G"), ("Y", "H"))
#: Default key that releases the selected robot back to the policy.
DEFAULT_RELEASE_KEY = "ESCAPE"
#: Default key that drives the selected robot's targets back to ``robot.DEFAULT_DOF_POS``.
DEFAULT_RESET_KEY = "Z"
#: Default key that toggles :attr:`TeleopModel.follow_camera`.
DEFAULT_CAMERA_KEY = "C"
#: Default jog speed of the arm joints (rad/s).
DEFAULT_SPEED_RAD_S = 1.0
#: Default jog speed of the gripper (rad/s): its 90 deg stroke in about 0.8 s.
DEFAULT_GRIPPER_SPEED_RAD_S = 2.0

#: Names accepted in the ``bindings`` config mapping: the joint names, then the actions.
ACTION_NAMES = tuple(robot.JOINT_NAMES) + ("release", "reset", "camera")


def normalize_key(key: Any) -> str:
    """Return the canonical key name (a ``carb.input.KeyboardInput`` member name).

    Case-insensitive; ``"ESC"`` -> ``"ESCAPE"``, ``"RETURN"`` -> ``"ENTER"``,
    ``"DELETE"`` -> ``"DEL"``, a single digit (str or int, as YAML may parse it) -> ``"KEY_n"``.

    Raises:
        ValueError: if ``key`` is not a known key name.
    """
    if isinstance(key, bool) or not isinstance(key, (str, int)):
        raise ValueError("expected a key name such as 'Q' or 'ESCAPE', got %r" % (key,))
    name = str(key)
    name = name if name == " " else name.strip().upper()
    name = _KEY_ALIASES.get(name, name)
    if len(name) == 1 and name.isdigit():
        name = "KEY_" + name
    if name not in KEY_NAMES:
        raise ValueError(
            "unknown key %r; expected a carb.input.KeyboardInput name such as 'Q', 'KEY_1', "
            "'ESCAPE', 'UP' or 'F1'" % (key,)
        )
    return name


def _positive_speed(value: Any, what: str) -> float:
    try:
        speed = float(value)
    except (TypeError, ValueError):
        raise ValueError("%s must be a number in rad/s, got %r" % (what, value)) from None
    if not math.isfinite(speed) or speed <= 0.0:
        raise ValueError("%s must be a finite speed > 0 rad/s, got %r" % (what, value))
    return speed


# ----------------------------------------------------------------------------------
# Config
# ----------------------------------------------------------------------------------


@dataclasses.dataclass
class TeleopConfig:
    """The ``teleop:`` section of ``config/task/DofbotReacher.yaml`` (typed by :mod:`dofbot_rl.config`,
    so OmegaConf rejects unknown keys and wrong types; :meth:`TeleopBindings.from_config` checks the rest)."""

    #: overrides of the default keys by name (joint1..gripper: [minus, plus]; release, reset, camera: one key)
    bindings: Dict[str, Any] = dataclasses.field(default_factory=dict)
    speed_rad_s: Any = DEFAULT_SPEED_RAD_S  #: jog speed of the arm joints (rad/s): one number, or 5 (joint1..joint5)
    gripper_speed_rad_s: float = DEFAULT_GRIPPER_SPEED_RAD_S  #: jog speed of the gripper (rad/s)
    max_robots: int = 0  #: with teleop=True, cap num_envs at this (0: no cap; the reference used 128)


def cap_num_envs(num_envs: int, max_robots: int) -> int:
    """Number of robots to build when teleop caps the scene.

    Args:
        num_envs: requested number of envs.
        max_robots: ``teleop.max_robots``; 0 means no cap (the reference capped at 128).

    Returns:
        ``min(num_envs, max_robots)`` if ``max_robots > 0``, else ``num_envs``.

    Raises:
        ValueError: if ``num_envs < 1`` or ``max_robots < 0``.
    """
    if num_envs < 1:
        raise ValueError("num_envs must be >= 1, got %r" % (num_envs,))
    if max_robots < 0:
        raise ValueError("max_robots must be >= 0 (0 = no cap), got %r" % (max_robots,))
    return min(num_envs, max_robots) if max_robots > 0 else num_envs


# ----------------------------------------------------------------------------------
# Bindings
# ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TeleopBindings:
    """Which key does what, and how fast each joint jogs. Immutable; validated on construction.

    Key names are normalized with :func:`normalize_key` (so ``"q"`` and ``"Esc"`` are accepted).

    Raises (on construction):
        ValueError: on an unknown key name, a key bound twice (names both uses), not exactly 6
            joint key pairs or 6 speeds, or a speed that is not finite and > 0 rad/s.
    """

    #: (minus key, plus key) for each of the 6 joints in ``robot.JOINT_NAMES`` order.
    joint_keys: tuple = DEFAULT_JOINT_KEYS
    #: Releases the selected robot back to the policy.
    release_key: str = DEFAULT_RELEASE_KEY
    #: Drives the selected robot's targets to ``robot.DEFAULT_DOF_POS``.
    reset_key: str = DEFAULT_RESET_KEY
    #: Toggles :attr:`TeleopModel.follow_camera`.
    camera_key: str = DEFAULT_CAMERA_KEY
    #: Jog speed per joint (rad/s), 6 values in ``robot.JOINT_NAMES`` order.
    speed_rad_s: tuple = (DEFAULT_SPEED_RAD_S,) * robot.NUM_ARM_JOINTS + (DEFAULT_GRIPPER_SPEED_RAD_S,)
    # key name -> (joint index, direction -1 / +1); built in __post_init__.
    _jog: dict = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pairs = tuple(self.joint_keys)
        if len(pairs) != robot.NUM_DOF:
            raise ValueError("expected %d (minus, plus) key pairs, got %d" % (robot.NUM_DOF, len(pairs)))
        uses = {}  # key -> what it does, for the duplicate check
        jog = {}
        norm_pairs = []

        def claim(key: Any, use: str) -> str:
            name = normalize_key(key)
            if name in uses:
                raise ValueError("key %r is bound twice: to %s and to %s" % (name, uses[name], use))
            uses[name] = use
            return name

        for i, pair in enumerate(pairs):
            joint = robot.JOINT_NAMES[i]
            if isinstance(pair, str) or not isinstance(pair, Sequence) or len(pair) != 2:
                raise ValueError("%s: expected [minus_key, plus_key], got %r" % (joint, pair))
            minus = claim(pair[0], joint + " -")
            plus = claim(pair[1], joint + " +")
            jog[minus], jog[plus] = (i, -1), (i, +1)
            norm_pairs.append((minus, plus))
        object.__setattr__(self, "joint_keys", tuple(norm_pairs))
        for field in ("release_key", "reset_key", "camera_key"):
            object.__setattr__(self, field, claim(getattr(self, field), field[: -len("_key")]))
        speeds = self.speed_rad_s
        if isinstance(speeds, (str, bytes)) or not isinstance(speeds, Sequence) or len(speeds) != robot.NUM_DOF:
            raise ValueError("expected %d joint speeds (rad/s), got %r" % (robot.NUM_DOF, speeds))
        speeds = tuple(_positive_speed(v, "speed of %s" % j) for v, j in zip(speeds, robot.JOINT_NAMES))
        object.__setattr__(self, "speed_rad_s", speeds)
        object.__setattr__(self, "_jog", jog)

    @classmethod
    def from_config(cls, cfg: "TeleopConfig | Mapping | None" = None) -> "TeleopBindings":
        """Build bindings from the ``teleop:`` config (a :class:`TeleopConfig`, its OmegaConf node, or a dict).

        ``bindings`` entries override the defaults by name (see :data:`ACTION_NAMES`);
        ``speed_rad_s`` (one number or 5, rad/s) sets joint1..joint5; ``gripper_speed_rad_s``
        (rad/s) the gripper. ``max_robots`` is accepted and ignored here (it sizes the scene).

        Raises:
            ValueError: on an unknown config key or binding name, an unknown or duplicate key,
                a malformed pair, or a bad speed (names the offending value).
        """
        if cfg is None:
            cfg = TeleopConfig()
        elif isinstance(cfg, Mapping):  # a dict or an OmegaConf node: missing keys take the defaults
            names = [f.name for f in dataclasses.fields(TeleopConfig)]
            unknown = sorted(str(k) for k in cfg if k not in names)
            if unknown:
                raise ValueError("unknown teleop config key(s) %s; expected some of %s" % (unknown, names))
            cfg = TeleopConfig(**{str(k): cfg[k] for k in cfg})
        elif not hasattr(cfg, "bindings"):
            raise ValueError("teleop config must be a mapping, got %r" % (cfg,))
        bindings = cfg.bindings if cfg.bindings is not None else {}
        if not isinstance(bindings, Mapping):
            raise ValueError("teleop.bindings must be a mapping of %s to keys, got %r" % (list(ACTION_NAMES), bindings))
        unknown = sorted(str(k) for k in bindings if k not in ACTION_NAMES)
        if unknown:
            raise ValueError("unknown teleop binding name(s) %s; expected some of %s" % (unknown, list(ACTION_NAMES)))
        joint_keys = tuple(bindings.get(joint, DEFAULT_JOINT_KEYS[i]) for i, joint in enumerate(robot.JOINT_NAMES))
        speed = cfg.speed_rad_s
        if isinstance(speed, Sequence) and not isinstance(speed, (str, bytes)):
            if len(speed) != robot.NUM_ARM_JOINTS:
                raise ValueError(
                    "teleop.speed_rad_s takes one number or %d (joint1..joint5) in rad/s, got %r; "
                    "set the gripper with teleop.gripper_speed_rad_s" % (robot.NUM_ARM_JOINTS, list(speed))
                )
            arm = tuple(_positive_speed(v, "teleop.speed_rad_s") for v in speed)
        else:
            arm = (_positive_speed(speed, "teleop.speed_rad_s"),) * robot.NUM_ARM_JOINTS
        gripper = _positive_speed(cfg.gripper_speed_rad_s, "teleop.gripper_speed_rad_s")
        return cls(  # keys and pairs are checked once, in __post_init__
            joint_keys=joint_keys,
            release_key=bindings.get("release", DEFAULT_RELEASE_KEY),
            reset_key=bindings.get("reset", DEFAULT_RESET_KEY),
            camera_key=bindings.get("camera", DEFAULT_CAMERA_KEY),
            speed_rad_s=arm + (gripper,),
        )

    def jog_of(self, key: str) -> "tuple[int, int] | None":
        """``(joint index, direction -1 | +1)`` jogged by ``key``, or ``None`` if it jogs nothing.

        ``key`` is matched case-insensitively; unknown key names give ``None`` (no error).
        """
        try:
            return self._jog.get(normalize_key(key))
        except ValueError:
            return None

    @property
    def keys(self) -> frozenset:
        """All bound key names."""
        return frozenset(self._jog) | {self.release_key, self.reset_key, self.camera_key}


# ----------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------


class TeleopModel:
    """Selection state and joint targets of the one robot driven from the keyboard.

    Key events only change which keys are held (and run the one-shot release / reset /
    camera actions); :meth:`update` integrates the held keys into the targets. Keys are
    ignored while no robot is selected. Single-threaded: call everything from the thread
    that runs the control loop (Kit's main thread, or the play loop).

    Args:
        bindings: the key bindings and speeds; ``None`` -> defaults (:class:`TeleopBindings`).
    """

    def __init__(self, bindings: "TeleopBindings | None" = None) -> None:
        self._bindings = bindings if bindings is not None else TeleopBindings()
        self._lower = tuple(float(v) for v in robot.TELEOP_LIMITS_LOWER)
        self._upper = tuple(float(v) for v in robot.TELEOP_LIMITS_UPPER)
        self._selected = None
        self._targets = self._clamp(robot.DEFAULT_DOF_POS)
        self._held = set()
        self._released = []
        self.follow_camera = False
        """Whether the Kit layer should follow the selected robot with a close-up camera."""

    # -- state ---------------------------------------------------------------------

    @property
    def bindings(self) -> TeleopBindings:
        """The key bindings and speeds in use."""
        return self._bindings

    @property
    def selected_env(self) -> "int | None":
        """Index of the selected env, or ``None`` when the policy drives every robot."""
        return self._selected

    @property
    def targets(self) -> tuple:
        """Joint position targets (6 floats, rad, ``robot.JOINT_NAMES`` order) of the selected
        robot; the last ones (or the default pose) when none is selected."""
        return tuple(self._targets)

    @property
    def held_keys(self) -> frozenset:
        """Jog keys currently held (canonical names)."""
        return frozenset(self._held)

    # -- selection -----------------------------------------------------------------

    def select(self, env_id: int, current_dof_pos: Any) -> None:
        """Take control of ``env_id``, starting from its current joint positions.

        Selecting another env while one is selected releases the previous one (it is
        reported by :meth:`take_released_envs`). Held keys are dropped.

        Args:
            env_id: env index, >= 0.
            current_dof_pos: the robot's 6 joint positions (rad): a sequence or a ``(6,)``
                tensor; clamped to the teleop limits to become the targets.

        Raises:
            ValueError: if ``env_id`` is not an int >= 0 or ``current_dof_pos`` is not 6 finite numbers.
        """
        if isinstance(env_id, bool) or not isinstance(env_id, int) or env_id < 0:
            raise ValueError("env_id must be an int >= 0, got %r" % (env_id,))
        targets = self._clamp(list(robot.as_floats(current_dof_pos, what="current_dof_pos (rad)")))
        if self._selected is not None and self._selected != env_id:
            self._released.append(self._selected)
        self._selected = env_id
        self._targets = targets
        self._held.clear()

    def release(self) -> "int | None":
        """Hand the selected robot back to the policy.

        Clears held keys and ``follow_camera``. Returns the env released (also queued for
        :meth:`take_released_envs`), or ``None`` if none was selected.
        """
        env_id = self._selected
        if env_id is not None:
            self._released.append(env_id)
        self._selected = None
        self._held.clear()
        self.follow_camera = False
        return env_id

    def take_released_envs(self) -> tuple:
        """Envs released since the last call (oldest first); empties the queue."""
        out, self._released = tuple(self._released), []
        return out

    def reset_pose(self) -> bool:
        """Set the selected robot's targets to ``robot.DEFAULT_DOF_POS`` (clamped).

        The robot's PD drives then move it there. Returns ``False`` (no-op) if none is selected.
        """
        if self._selected is None:
            return False
        self._targets = self._clamp(robot.DEFAULT_DOF_POS)
        return True

    # -- keys ----------------------------------------------------------------------

    def key_down(self, key: str) -> bool:
        """A key was pressed (or auto-repeated: idempotent).

        Jog keys start jogging their joint; the release, reset and camera keys act at once.

        Args:
            key: key name, e.g. ``"Q"`` or ``"ESCAPE"`` (case-insensitive, see :func:`normalize_key`).

        Returns:
            ``True`` if the key was consumed (bound, and a robot is selected), so a UI may
            swallow the event; ``False`` otherwise (nothing changes).
        """
        if self._selected is None:
            return False
        b = self._bindings
        if b.jog_of(key) is not None:
            self._held.add(normalize_key(key))
            return True
        try:
            name = normalize_key(key)
        except ValueError:
            return False
        if name == b.release_key:
            self.release()
        elif name == b.reset_key:
            self.reset_pose()
        elif name == b.camera_key:
            self.follow_camera = not self.follow_camera
        else:
            return False
        return True

    def key_up(self, key: str) -> bool:
        """A key was released: its joint stops and holds its target.

        Returns ``True`` if ``key`` was a held jog key, else ``False``.
        """
        try:
            name = normalize_key(key)
        except ValueError:
            return False
        if name in self._held:
            self._held.discard(name)
            return True
        return False

    def update(self, dt: float) -> "tuple | None":
        """Advance the jog by ``dt`` seconds.

        Each held jog key moves its joint's target by ``direction * speed_rad_s * dt``
        (opposite keys of one joint cancel), then targets are clamped to the teleop limits.

        Args:
            dt: control time step (s), finite and >= 0.

        Returns:
            The selected robot's targets (6 floats, rad), or ``None`` if none is selected.

        Raises:
            ValueError: if ``dt`` is negative or not finite.
        """
        dt = float(dt)
        if not math.isfinite(dt) or dt < 0.0:
            raise ValueError("dt must be a finite time step >= 0 s, got %r" % (dt,))
        if self._selected is None:
            return None
        rate = [0.0] * robot.NUM_DOF
        for key in self._held:
            joint, direction = self._bindings.jog_of(key)
            rate[joint] += direction * self._bindings.speed_rad_s[joint]
        self._targets = self._clamp([q + r * dt for q, r in zip(self._targets, rate)])
        return tuple(self._targets)

    def _clamp(self, q: Sequence) -> list:
        return [min(max(float(v), lo), hi) for v, lo, hi in zip(q, self._lower, self._upper)]


# ----------------------------------------------------------------------------------
# Task adapter
# ----------------------------------------------------------------------------------


def drive_task(model: TeleopModel, task: Any, dt: float) -> "tuple | None":
    """Advance ``model`` by ``dt`` and push its targets into ``task``; call once per control step.

    ``task`` is duck-typed: it needs ``set_manual_targets(env_id: int, targets)`` where
    ``targets`` is a CPU ``float32`` tensor ``(6,)`` rad (the task copies it to its device and
    overrides that env's row of ``joint_pos_targets``, keeping it from timing out) or
    ``None`` (release the env to the policy). Released envs are handed back first, then the
    selected env (if any) gets its targets.

    Args:
        model: the teleop model.
        task: object with ``set_manual_targets``.
        dt: control time step (s).

    Returns:
        The targets pushed (6 floats, rad), or ``None`` if no robot is selected.

    Raises:
        ValueError: from :meth:`TeleopModel.update` on a bad ``dt``.
    """
    for env_id in model.take_released_envs():
        if env_id != model.selected_env:
            task.set_manual_targets(env_id, None)
    targets = model.update(dt)
    if targets is not None:
        task.set_manual_targets(model.selected_env, torch.tensor(targets, dtype=torch.float32))
    return targets
