"""TeleopBindings / TeleopConfig: defaults, config overrides, errors; cap_num_envs."""

import pytest

from dofbot_rl.teleop import ACTION_NAMES, KEY_NAMES, TeleopBindings, TeleopConfig, cap_num_envs, normalize_key
from dofbot_rl.teleop.model import DEFAULT_GRIPPER_SPEED_RAD_S, DEFAULT_JOINT_KEYS, DEFAULT_SPEED_RAD_S


def test_defaults():
    b = TeleopBindings()
    assert b.joint_keys == (("Q", "A"), ("W", "S"), ("E", "D"), ("R", "F"), ("T", "G"), ("Y", "H"))
    assert (b.release_key, b.reset_key, b.camera_key) == ("ESCAPE", "Z", "C")
    assert b.speed_rad_s == (1.0,) * 5 + (2.0,)
    assert b.jog_of("q") == (0, -1) and b.jog_of("H") == (5, +1) and b.jog_of("Z") is None
    assert b.jog_of("bogus") is None
    assert len(b.keys) == 15
    assert TeleopBindings.from_config(None) == b == TeleopBindings.from_config({})
    assert TeleopBindings.from_config(TeleopConfig()) == b


def test_normalize_key():
    assert normalize_key("q") == "Q"
    assert normalize_key("Esc") == "ESCAPE"
    assert normalize_key(1) == "KEY_1" and normalize_key("7") == "KEY_7"
    assert normalize_key("up") == "UP" and normalize_key("f5") == "F5"
    assert {"ESCAPE", "KEY_0", "NUMPAD_ADD", "RIGHT_SUPER"} <= KEY_NAMES
    for bad in ("QQ", "", "UNKNOWN", None, 3.5, True, "KEY_10"):
        with pytest.raises(ValueError, match="key"):
            normalize_key(bad)


def test_from_config_overrides_merge_on_defaults():
    cfg = {
        "bindings": {"joint1": ["left", "right"], "gripper": ["u", "j"], "release": "backspace", "reset": "0"},
        "speed_rad_s": 0.5,
        "gripper_speed_rad_s": 3.0,
        "max_robots": 128,
    }
    b = TeleopBindings.from_config(cfg)
    assert b.joint_keys[0] == ("LEFT", "RIGHT") and b.joint_keys[5] == ("U", "J")
    assert b.joint_keys[1:5] == DEFAULT_JOINT_KEYS[1:5]
    assert (b.release_key, b.reset_key, b.camera_key) == ("BACKSPACE", "KEY_0", "C")
    assert b.speed_rad_s == (0.5,) * 5 + (3.0,)


def test_per_joint_arm_speeds():
    b = TeleopBindings.from_config({"speed_rad_s": [0.1, 0.2, 0.3, 0.4, 0.5]})
    assert b.speed_rad_s == (0.1, 0.2, 0.3, 0.4, 0.5, DEFAULT_GRIPPER_SPEED_RAD_S)


def test_config_dataclass_defaults_and_omegaconf_like_mapping():
    cfg = TeleopConfig()
    assert cfg.bindings == {} and cfg.speed_rad_s == DEFAULT_SPEED_RAD_S
    assert cfg.gripper_speed_rad_s == DEFAULT_GRIPPER_SPEED_RAD_S and cfg.max_robots == 0
    from dofbot_rl.config import load_config

    assert load_config(["task.teleop.max_robots=128"]).task.teleop.max_robots == 128
    omegaconf = pytest.importorskip("omegaconf")
    node = omegaconf.OmegaConf.create({"bindings": {"joint2": ["i", "k"]}, "speed_rad_s": [1, 1, 1, 1, 2]})
    b = TeleopBindings.from_config(node)
    assert b.joint_keys[1] == ("I", "K") and b.speed_rad_s[4] == 2.0


@pytest.mark.parametrize(
    "cfg, match",
    [
        ({"speed": 1.0}, r"unknown teleop config key.*'speed'"),
        ({"bindings": {"joint7": ["U", "J"]}}, r"unknown teleop binding name.*joint7"),
        ({"bindings": {"joint1": ["Q", "NOPE"]}}, r"unknown key 'NOPE'"),
        ({"bindings": {"joint1": "QA"}}, r"joint1: expected \[minus_key, plus_key\]"),
        ({"bindings": {"joint1": ["Q"]}}, r"joint1: expected"),
        ({"bindings": {"gripper": ["Y", "Q"]}}, r"'Q' is bound twice: to joint1 - and to gripper \+"),
        ({"bindings": {"reset": "A"}}, r"'A' is bound twice: to joint1 \+ and to reset"),
        ({"bindings": {"camera": "esc"}}, r"'ESCAPE' is bound twice: to release and to camera"),
        ({"bindings": {"joint3": ["x", "X"]}}, r"'X' is bound twice"),
        ({"bindings": ["Q", "A"]}, r"teleop.bindings must be a mapping"),
        ({"speed_rad_s": 0.0}, r"teleop.speed_rad_s must be a finite speed > 0"),
        ({"speed_rad_s": "fast"}, r"teleop.speed_rad_s must be a number"),
        ({"speed_rad_s": [1.0] * 6}, r"one number or 5.*gripper_speed_rad_s"),
        ({"gripper_speed_rad_s": -1.0}, r"teleop.gripper_speed_rad_s must be a finite speed > 0"),
        ("oops", r"teleop config must be a mapping"),
    ],
)
def test_config_errors_name_the_bad_value(cfg, match):
    with pytest.raises(ValueError, match=match):
        TeleopBindings.from_config(cfg)


@pytest.mark.parametrize("override, match", [
    ("task.teleop.max_robots=-1", r"max_robots must be >= 0"),
    ("task.teleop.max_robots=1.5", r"task.teleop.max_robots"),
    ("task.teleop.speed=1", r"unknown key 'task.teleop.speed' \(did you mean task.teleop.speed_rad_s\?\)"),
    ("task.teleop.gripper_speed_rad_s=-1", r"task.teleop: teleop.gripper_speed_rad_s must be a finite speed > 0"),
    ("+task.teleop.bindings.joint1=[Q,NOPE]", r"unknown key 'NOPE'"),
    ("task.teleop.bindings={joint1:[Q,A]}", r"\+task.teleop.bindings.NAME=VALUE"),
])
def test_teleop_section_checked_at_load(override, match):
    from dofbot_rl.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=match):
        load_config([override])


def test_teleop_cap_applied_by_load_config():
    from dofbot_rl.config import load_config

    assert load_config(["teleop=True", "num_envs=512", "task.teleop.max_robots=128"]).num_envs == 128
    assert load_config(["teleop=False", "num_envs=512", "task.teleop.max_robots=128"]).num_envs == 512
    assert load_config(["teleop=True", "num_envs=64", "task.teleop.max_robots=128"]).task.env.num_envs == 64


def test_direct_construction_errors():
    with pytest.raises(ValueError, match="expected 6 .* key pairs"):
        TeleopBindings(joint_keys=DEFAULT_JOINT_KEYS[:5])
    with pytest.raises(ValueError, match="expected 6 joint speeds"):
        TeleopBindings(speed_rad_s=(1.0,) * 5)
    with pytest.raises(ValueError, match="speed of gripper"):
        TeleopBindings(speed_rad_s=(1.0,) * 5 + (float("inf"),))


def test_action_names():
    assert ACTION_NAMES == ("joint1", "joint2", "joint3", "joint4", "joint5", "gripper", "release", "reset", "camera")


def test_cap_num_envs():
    assert cap_num_envs(512, 0) == 512
    assert cap_num_envs(512, 128) == 128
    assert cap_num_envs(64, 128) == 64
    with pytest.raises(ValueError, match="num_envs"):
        cap_num_envs(0, 0)
    with pytest.raises(ValueError, match="max_robots"):
        cap_num_envs(4, -1)
