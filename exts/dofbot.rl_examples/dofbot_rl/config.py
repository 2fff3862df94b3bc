"""Typed configuration: Hydra composes ``config/``, dataclasses check it.

``load_config(overrides)`` composes ``config/config.yaml`` with Hydra (the reference's
layout: ``task/DofbotReacher.yaml``, ``train/DofbotReacherPPO.yaml``), merges it into
the dataclass schema below (unknown keys and wrong types fail), fills the per-device
defaults and checks the values. Every failure is a :class:`ConfigError` whose message
names the bad value and what was expected.

Every user-facing option is a typed field of :class:`MainConfig` (``task.teleop``,
``sim2real``, ``export``, ``bench`` included): OmegaConf checks the types, :func:`validate`
the ranges (every float finite), and :func:`field_docs` turns each field's ``#:`` comment
into the ``--help`` text of ``dofbot-rl``.
"""

import difflib
import inspect
import logging
import math
import re
from dataclasses import MISSING as _NO_DEFAULT
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from dofbot_rl.paths import config_dir, robot_model_path
from dofbot_rl.teleop.model import TeleopConfig
from dofbot_rl.errors import DofbotRlError

log = logging.getLogger(__name__)


class ConfigError(DofbotRlError, ValueError):
    """A configuration value or override is invalid; the message says how to fix it."""


# ----------------------------------------------------------------------------------
# Task schema (config/task/DofbotReacher.yaml)
# ----------------------------------------------------------------------------------
@dataclass
class GoalConfig:
    """Goal region relative to the robot base (m); reference ``get_reset_target_new_pos``."""

    xy_min: float = 0.15  #: smallest |x| and |y| of a goal (m)
    xy_max: float = 0.20  #: largest |x| and |y| of a goal (m)
    z_min: float = 0.15  #: lowest goal height (m)
    z_max: float = 0.35  #: highest goal height (m)


@dataclass
class RewardConfig:
    """Reward weights (reference task yaml)."""

    dist_scale: float = -10.0  #: per metre of fingertip-goal distance
    action_penalty_scale: float = -0.0002  #: per squared action norm
    reach_goal_bonus: float = 250.0  #: when the fingertip is within success_tolerance


@dataclass
class EnvConfig:
    """The reacher MDP; defaults are the reference's."""

    num_envs: int = MISSING  #: robots simulated in parallel (filled from the top-level num_envs)
    env_spacing: float = 1.0  #: grid spacing of the robots (m), display only
    episode_length: int = 600  #: control steps per episode (600 x 1/60 s = 10 s)
    control_frequency_inv: int = 2  #: physics steps per control step (60 Hz policy on a 120 Hz sim)
    clip_observations: float = 5.0  #: observations clamped to +-this
    clip_actions: float = 1.0  #: actions clamped to +-this
    dof_vel_scale: float = 0.2  #: joint velocities are multiplied by this in the observation
    reset_dof_pos_noise: float = 0.2  #: reset pose = default + this x U(lower, upper)
    success_tolerance: float = 0.05  #: a goal is reached when the fingertip is this close (m)
    success_window_s: float = 2.0  #: an unreached goal counts as missed if it was up this long (s)
    goal: GoalConfig = field(default_factory=GoalConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)


@dataclass
class SimConfig:
    """Physics settings shared by every backend."""

    dt: float = 1.0 / 120.0  #: physics time step (s), the reference's sim.dt
    model: str = ""  #: MJCF of the robot; empty: data/robots/dofbot/dofbot.xml


@dataclass
class RandomizationConfig:
    """Training for transfer (``task.randomization``): sim-to-real gaps modelled in simulation.

    Everything is off by default (the reference task had none). Guide: ``docs/transfer.md``.
    """

    #: std of Gaussian noise added each step to the joint position and velocity observations
    #: (observation units, after scaling); 0: off
    obs_noise_std: float = 0.0
    #: the joint targets from an action reach the arm this many control steps later; 0: off
    action_latency_steps: int = 0
    #: servo move time (s) over a joint's whole safe range: the applied target moves at most
    #: range / move_time x control_dt per control step; 0: off
    servo_move_time_s: float = 0.0
    #: [lo, hi] of the per-env, per-joint scale of PD stiffness and damping, drawn at each reset; [1, 1]: off
    pd_gain_scale_range: List[float] = field(default_factory=lambda: [1.0, 1.0])
    #: [lo, hi] of the per-env scale of every link's mass and inertia, drawn at each reset; [1, 1]: off
    link_mass_scale_range: List[float] = field(default_factory=lambda: [1.0, 1.0])


def randomization_problems(rnd) -> List[str]:
    """Everything wrong with a ``task.randomization`` section, one message each (empty: fine)."""
    problems = []
    if not rnd.obs_noise_std >= 0:
        problems.append(f"task.randomization.obs_noise_std must be >= 0, got {rnd.obs_noise_std}")
    if rnd.action_latency_steps < 0:
        problems.append(f"task.randomization.action_latency_steps must be >= 0 control steps, "
                        f"got {rnd.action_latency_steps}")
    if not rnd.servo_move_time_s >= 0:
        problems.append(f"task.randomization.servo_move_time_s must be >= 0 s (0: off), got {rnd.servo_move_time_s}")
    for key in ("pd_gain_scale_range", "link_mass_scale_range"):
        rng = list(getattr(rnd, key))
        if len(rng) != 2 or not 0 < rng[0] <= rng[1]:
            problems.append(f"task.randomization.{key} must be [lo, hi] with 0 < lo <= hi, got {rng}")
    return problems


@dataclass
class TaskConfig:
    """A task: name, MDP, physics, randomisation and the teleop section."""

    name: str = "DofbotReacher"  #: the task (config/task/<name>.yaml)
    env: EnvConfig = field(default_factory=EnvConfig)
    sim: SimConfig = field(default_factory=SimConfig)
    randomization: RandomizationConfig = field(default_factory=RandomizationConfig)
    teleop: TeleopConfig = field(default_factory=TeleopConfig)


@dataclass
class Sim2RealSection:
    """``play``: the sim-to-real link (docs/sim2real.md) to a Dofbot running ``dofbot-rl serve``."""

    enabled: bool = False  #: connect to the robot's server while playing (env 0 is the mirrored robot)
    host: str = "127.0.0.1"  #: the server: the Dofbot's Jetson
    port: int = 65432  #: TCP port of the server, 1..65535
    protocol: str = "v1"  #: v1 (acknowledged, read-back, token) or legacy (the reference's 24-byte frames)
    token_file: Optional[str] = None  #: file holding the shared token (v1 only); null: no token
    fail_quietly: bool = False  #: True: log link errors and keep simulating; False: stop at the first one
    rate_hz: float = 60.0  #: most frames sent per second (Hz), in (0, 1000]
    mode: str = "sim2real"  #: sim2real (mirror env 0's joints), real2sim (env 0 follows the arm), goal (the server's policy)
    heartbeat_ms: int = 200  #: the server holds the arm when the link is silent this long (ms), 10..65535
    takeover: bool = False  #: mode sim2real against a server running a policy: take direct control


@dataclass
class ExportConfig:
    """``export``: the files written for deployment (docs/deploy.md)."""

    format: List[str] = field(default_factory=lambda: ["all"])  #: onnx, torchscript, npz or all; a comma list (format=onnx,npz)
    output: str = ""  #: folder for the files; empty: runs/<experiment>/export/ (else <checkpoint stem>_export/)
    verify: bool = True  #: replay task observations through every file and compare with the rl_games player
    samples: int = 10000  #: observations recorded from the task for the verification


@dataclass
class BenchConfig:
    """``bench``: env-steps/s of the physics loop, the task loop and PPO."""

    sizes: List[int] = field(default_factory=list)  #: num_envs values (sizes=64,512); empty: 64,512,2048 on cpu, 1024..65536 on cuda
    seconds: float = 2.0  #: time per measurement (s)
    train_epochs: int = 0  #: PPO epochs timed per size; 0: no PPO column
    json: str = ""  #: also write the rows as JSON to this file


@dataclass
class DeviceDefaults:
    """Defaults that depend on the simulation device."""

    num_envs: int = 512
    max_iterations: int = 150


@dataclass
class MainConfig:
    """Top-level config (``config/config.yaml``); names follow IsaacGymEnvs / OIGE."""

    task: TaskConfig = field(default_factory=TaskConfig)
    train: Dict[str, Any] = field(default_factory=dict)  #: rl_games params (config/train/<task>PPO.yaml)
    experiment: str = ""  #: run name (letters, digits, . _ -); empty: the task name
    num_envs: Optional[int] = None  #: robots simulated in parallel; null: 512 on cpu, 8192 on cuda
    seed: int = 42  #: random seed, 0..2**32-1
    torch_deterministic: bool = False  #: ask torch for deterministic kernels (slower)
    max_iterations: Optional[int] = None  #: PPO epochs; null: 150 on cpu, 500 on cuda
    physics: str = "mujoco"  #: the physics backend (mujoco: MuJoCo C on cpu, MuJoCo Warp on cuda)
    sim_device: str = "auto"  #: cpu, cuda:N or auto (cuda:0 when MuJoCo Warp and a GPU are there)
    #: several processes under torchrun (one per GPU, or CPU processes over gloo): docs/training.md
    multi_gpu: bool = False
    #: multi_gpu: how long a rank waits in a collective for a missing rank before the run fails (s)
    dist_timeout_s: float = 300.0
    wandb_activate: bool = False  #: log to Weights & Biases (rank 0; `pip install -e '.[wandb]'`)
    wandb_project: str = "dofbot-rl"  #: W&B project
    wandb_entity: str = ""  #: W&B team or user; empty: your default
    wandb_group: str = ""  #: W&B group (e.g. one per sweep)
    wandb_name: str = ""  #: W&B run name; empty: the experiment name
    rl_device: str = ""  #: device of the policy; empty: same as sim_device
    headless: bool = True  #: accepted for IsaacGymEnvs compatibility; the headless CLI never opens a window
    test: bool = False  #: play instead of train
    checkpoint: str = ""  #: .pth to resume (train) or to play / export; last: the experiment's newest
    train_dir: str = "runs"  #: runs/<experiment>/nn/<experiment>.pth
    episodes: int = 20  #: play: finished episodes to count (envs driven by a human or the arm excluded)
    teleop: bool = False  #: play: drive env 0 from the keyboard until Ctrl+C (scene capped by task.teleop.max_robots)
    render: bool = False  #: play: save an animated GIF of env 0 as runs/<experiment>/rollout.gif
    sim2real: Sim2RealSection = field(default_factory=Sim2RealSection)
    export: ExportConfig = field(default_factory=ExportConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)
    device_defaults: Dict[str, DeviceDefaults] = field(default_factory=dict)


PHYSICS_BACKENDS = ("mujoco",)
#: ``dofbot-rl export`` formats, in the order they are written.
EXPORT_FORMATS = ("onnx", "torchscript", "npz")
#: ``dofbot-rl <command> key=value`` short names: a field of this section may be given without its prefix.
COMMAND_SECTIONS = {"export": "export", "bench": "bench"}
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


# ----------------------------------------------------------------------------------
# Field documentation (the text of ``--help``)
# ----------------------------------------------------------------------------------
def field_docs(cls) -> Dict[str, str]:
    """The ``#:`` comment of each field of the dataclass ``cls`` (on the field's line or the lines above).

    Returns:
        field name -> one line of text ("" where a field has none).
    """
    docs, pending = {}, []
    for line in inspect.getsource(cls).splitlines()[1:]:
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        m = re.match(r"(\w+)\s*:[^#]*?(?:#:\s*(.*))?$", stripped)
        if m and line.startswith("    ") and not line.startswith("     "):
            docs[m.group(1)] = " ".join(pending + ([m.group(2)] if m.group(2) else []))
        pending = []
    return {f.name: docs.get(f.name, "") for f in fields(cls)}


def options_table(cls, prefix: str = "", skip: Sequence[str] = ()) -> List[tuple]:
    """``(key, default, doc)`` of every leaf field of ``cls``, sections expanded with dotted keys."""
    rows, docs = [], field_docs(cls)
    for f in fields(cls):
        if f.name in skip:
            continue
        default = f.default_factory() if f.default_factory is not _NO_DEFAULT else f.default
        if is_dataclass(default):
            rows += options_table(type(default), f"{prefix}{f.name}.")
            continue
        if isinstance(default, list):
            default = ",".join(str(v) for v in default)
        rows.append((prefix + f.name, "" if default is MISSING else default, docs[f.name]))
    return rows


# ----------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------
def _task_names() -> List[str]:
    return sorted(p.stem for p in (config_dir() / "task").glob("*.yaml"))


def _leaf_keys(node, prefix: str = "") -> List[str]:
    keys = []
    for key in node.keys() if isinstance(node, DictConfig) else ():
        full = f"{prefix}{key}"
        child = node._get_node(key)
        if isinstance(child, DictConfig) and len(child):
            keys += _leaf_keys(child, full + ".")
        else:
            keys.append(full)
    return keys


def _unknown_key(key: str, known: Sequence[str]) -> str:
    """"unknown key 'x' (did you mean y?)" for a key that is not in the config."""
    leaf = key.rsplit(".", 1)[-1]
    guesses = [k for k in known if k.endswith("." + key)]  # a key given without its section
    guesses += difflib.get_close_matches(key, known, n=3, cutoff=0.75)
    guesses += [k for k in known if difflib.get_close_matches(leaf, [k.rsplit(".", 1)[-1]], cutoff=0.8)
                and k.rsplit(".", 1)[0] == key.rpartition(".")[0]]
    guesses = list(dict.fromkeys(guesses))[:3]
    hint = f" (did you mean {' or '.join(guesses)}?)" if guesses else " (the keys are in config/ and `dofbot-rl COMMAND --help`)"
    return f"unknown key {key!r}{hint}"


def _known_keys() -> List[str]:
    return _leaf_keys(OmegaConf.merge(OmegaConf.structured(MainConfig), _hydra_compose([], raw=True)))


def _hydra_compose(overrides: Sequence[str], raw: bool = False) -> DictConfig:
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from hydra.core.global_hydra import GlobalHydra

    # Another user of Hydra in the same process (OmniIsaacGymEnvs' extension in the same Kit
    # app) may leave GlobalHydra initialised: set it aside and put it back afterwards.
    theirs = GlobalHydra.instance().hydra
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        if raw:
            raise
        message = str(exc).strip().splitlines()[0]
        m = re.search(r"Could not override '([^']+)'", message)
        if m and "To append to your config" in str(exc):
            known = _known_keys()
            if m.group(1) not in known:
                raise ConfigError(_unknown_key(m.group(1), known)) from None
            inner = getattr(exc.__cause__, "full_key", "") or m.group(1)
            raise ConfigError(f"{inner} is not in the config: add an entry to the mapping {m.group(1)} with "
                              f"+{m.group(1)}.NAME=VALUE") from None
        m = re.search(r"Could not find '(task|train)/([^']*)'", message)
        if m:
            kind = m.group(1)
            names = _task_names() if kind == "task" else sorted(p.stem for p in (config_dir() / "train").glob("*.yaml"))
            raise ConfigError(f"unknown {kind} {m.group(2)!r}: expected one of {', '.join(names)}") from None
        raise ConfigError(f"bad override: {message} (the keys are in config/ and `dofbot-rl COMMAND --help`)") from None
    finally:
        GlobalHydra.instance().clear()
        if theirs is not None:
            GlobalHydra.instance().initialize(theirs)


def _expand_short_names(overrides: Sequence[str], command: Optional[str]) -> List[str]:
    """``format=onnx`` -> ``export.format=[onnx]`` for ``export`` (likewise ``bench``): a command's own
    options may be given without their section; list fields take a bare comma list."""
    section = COMMAND_SECTIONS.get(command or "")
    if section is None:
        return list(overrides)
    schema = {f.name: f for f in fields(type(getattr(MainConfig(), section)))}
    out = []
    for arg in overrides:
        key, sep, value = arg.partition("=")
        if sep and key in schema:
            is_list = isinstance(getattr(getattr(MainConfig(), section), key), list)
            if is_list and not value.startswith("["):
                value = f"[{value}]"
            arg = f"{section}.{key}={value}"
        out.append(arg)
    return out


def resolve_device(name: str) -> str:
    """Resolve ``auto`` to ``cuda:0`` (GPU and mujoco_warp present) or ``cpu``; check the rest.

    Raises:
        ConfigError: for an unknown device string or a CUDA device that is not there.
    """
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            try:
                import mujoco_warp  # noqa: F401

                return "cuda:0"
            except ImportError:
                pass
        return "cpu"
    if name == "cpu":
        return name
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"sim_device={name} but this machine has no CUDA GPU: use sim_device=cpu")
        return name if ":" in name else "cuda:0"
    raise ConfigError(f"unknown device {name!r}: expected cpu, cuda:N or auto")


def load_config(overrides: Sequence[str] = (), command: Optional[str] = None) -> DictConfig:
    """Compose, type-check and complete the configuration.

    Args:
        overrides: Hydra overrides, e.g. ``["task=DofbotReacher", "num_envs=64", "test=True"]``.
        command: the ``dofbot-rl`` command (``export``, ``bench``...): its section's fields may be
            given without the section prefix (:data:`COMMAND_SECTIONS`).

    Returns:
        A read-only :class:`MainConfig`-shaped DictConfig with ``task.env.num_envs``,
        ``max_iterations``, ``sim_device``, ``rl_device`` and ``experiment`` filled in. With
        ``teleop=True`` and ``task.teleop.max_robots > 0``, ``num_envs`` is capped at it.

    Raises:
        ConfigError: for unknown keys (with a "did you mean"), an unknown task, wrong types or
            impossible values (all listed).
    """
    from omegaconf.errors import OmegaConfBaseException

    for arg in overrides:  # Hydra strips a blank value to '' (the task name): refuse it here
        key, sep, value = arg.partition("=")
        if key.lstrip("+~") == "experiment" and sep and value and not value.strip(" '\"\t"):
            raise ConfigError(f"experiment must be a plain name (letters, digits, . _ -), got {value!r}")
    raw = _hydra_compose(_expand_short_names(overrides, command))
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(MainConfig), raw)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", "") or ""
        first = str(exc).strip().splitlines()[0]
        if "not in" in first and key:
            raise ConfigError(_unknown_key(key, _known_keys())) from None
        value = re.match(r"Value '([^']*)'", first)
        if key and value:
            raise ConfigError(f"invalid value {key}={value.group(1)}: {first}") from None
        raise ConfigError(f"invalid config value{(' for ' + key) if key else ''}: {first}") from None

    cfg.sim_device = resolve_device(cfg.sim_device)
    cfg.rl_device = resolve_device(cfg.rl_device) if cfg.rl_device else cfg.sim_device
    family = "cuda" if cfg.sim_device.startswith("cuda") else "cpu"
    defaults = cfg.device_defaults.get(family, DeviceDefaults())
    if cfg.num_envs is None:
        cfg.num_envs = defaults.num_envs
    if cfg.max_iterations is None:
        cfg.max_iterations = defaults.max_iterations
    if cfg.teleop and cfg.task.teleop.max_robots > 0 and cfg.num_envs > cfg.task.teleop.max_robots:
        log.info("teleop: %d robots (task.teleop.max_robots)", cfg.task.teleop.max_robots)
        cfg.num_envs = cfg.task.teleop.max_robots
    cfg.task.env.num_envs = cfg.num_envs
    if not cfg.experiment:
        cfg.experiment = cfg.task.name
    validate(cfg)
    OmegaConf.set_readonly(cfg, True)
    return cfg


# ----------------------------------------------------------------------------------
# Values
# ----------------------------------------------------------------------------------
def _non_finite(node, prefix: str = "") -> List[str]:
    """Dotted keys of every float in ``node`` that is NaN or infinite."""
    bad = []
    items = node.items() if isinstance(node, (dict, DictConfig)) else enumerate(node)
    for key, value in items:
        full = f"{prefix}{key}" if isinstance(key, str) else f"{prefix[:-1]}[{key}]"
        if isinstance(value, (dict, list, DictConfig, ListConfig)):
            bad += _non_finite(value, full + ".")
        elif isinstance(value, float) and not math.isfinite(value):
            bad.append(f"{full}={value}")
    return bad


def validate(cfg: DictConfig) -> None:
    """Check values the schema's types cannot; every problem is listed at once.

    Raises:
        ConfigError: naming each bad value and the expected range.
    """
    problems: List[str] = []
    env = cfg.task.env

    def need(ok: bool, message: str) -> None:
        if not ok:
            problems.append(message)

    try:
        plain = OmegaConf.to_container(cfg, resolve=True)
    except Exception as exc:  # an interpolation that cannot resolve (${oc.env:...} of an unset variable)
        raise ConfigError(f"cannot resolve the config: {str(exc).strip().splitlines()[0]}") from None
    problems += [f"{key} must be a finite number" for key in _non_finite(plain)]
    need(cfg.num_envs > 0, f"num_envs must be > 0, got {cfg.num_envs}")
    need(cfg.max_iterations > 0, f"max_iterations must be > 0, got {cfg.max_iterations}")
    need(cfg.dist_timeout_s > 0, f"dist_timeout_s must be > 0 s, got {cfg.dist_timeout_s}")
    need(0 <= cfg.seed < 2**32, f"seed must be in 0..{2**32 - 1}, got {cfg.seed}")
    need(env.episode_length > 1, f"task.env.episode_length must be > 1 control steps, got {env.episode_length}")
    need(env.control_frequency_inv >= 1, f"task.env.control_frequency_inv must be >= 1, got {env.control_frequency_inv}")
    need(0 < cfg.task.sim.dt <= MAX_SIM_DT, f"task.sim.dt must be in (0, {MAX_SIM_DT}] s, got {cfg.task.sim.dt}")
    need(env.success_tolerance > 0, f"task.env.success_tolerance must be > 0 m, got {env.success_tolerance}")
    need(env.success_window_s > 0, f"task.env.success_window_s must be > 0 s, got {env.success_window_s}")
    need(env.clip_actions > 0 and env.clip_observations > 0, "task.env.clip_actions and clip_observations must be > 0")
    need(env.dof_vel_scale >= 0, f"task.env.dof_vel_scale must be >= 0, got {env.dof_vel_scale}")
    need(env.reset_dof_pos_noise >= 0, f"task.env.reset_dof_pos_noise must be >= 0, got {env.reset_dof_pos_noise}")
    need(env.env_spacing >= 0, f"task.env.env_spacing must be >= 0 m, got {env.env_spacing}")
    need(0 < env.goal.xy_min <= env.goal.xy_max, f"goal xy range must satisfy 0 < xy_min <= xy_max, got {env.goal.xy_min}..{env.goal.xy_max}")
    need(0 <= env.goal.z_min <= env.goal.z_max, f"goal z range must satisfy 0 <= z_min <= z_max, got {env.goal.z_min}..{env.goal.z_max}")
    need(cfg.physics in PHYSICS_BACKENDS, f"physics={cfg.physics} is unknown: expected one of {', '.join(PHYSICS_BACKENDS)}")
    need(cfg.episodes > 0, f"episodes must be > 0, got {cfg.episodes}")
    need(_PLAIN_NAME.fullmatch(cfg.experiment) is not None and cfg.experiment.strip(".") != "",
         f"experiment must be a plain name (letters, digits, . _ -, not starting with . or -), got {cfg.experiment!r}")
    problems += randomization_problems(cfg.task.randomization)
    problems += _model_problems(cfg.task.sim.model)
    problems += _ppo_problems(cfg)
    problems += _section_problems(cfg)
    if problems:
        raise ConfigError("; ".join(problems))


#: Largest physics step (s) accepted: the arm's simulation went unstable at 0.1 s (MuJoCo's
#: "Nan, Inf or huge value in QPOS" warnings, written to MUJOCO_LOG.TXT in the working folder).
MAX_SIM_DT = 0.05


def _model_problems(model: str) -> List[str]:
    if not model:
        return []
    path = Path(model).expanduser()
    if not path.is_file():
        return [f"task.sim.model: no robot model file at {path}"]
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        return [f"task.sim.model: cannot read {path}: {exc.strerror}"]
    return [] if b"<mujoco" in head else [f"task.sim.model: {path} is not a MuJoCo MJCF file (no <mujoco> element)"]


def _ppo_problems(cfg) -> List[str]:
    """The PPO values a typo can make impossible (rl_games would crash or divide by zero)."""
    try:
        ppo = cfg.train.params.config
    except Exception:  # noqa: BLE001 - a train config without params.config is rl_games' to reject
        return []
    problems = []
    for key in ("horizon_length", "num_minibatches", "mini_epochs"):
        value = ppo.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            problems.append(f"train.params.config.{key} must be an integer >= 1, got {value!r}")
    for key in ("learning_rate", "e_clip", "gamma"):
        value = ppo.get(key)
        if value is not None and (not isinstance(value, (int, float)) or not value > 0):
            problems.append(f"train.params.config.{key} must be > 0, got {value!r}")
        elif key == "gamma" and value is not None and value > 1:  # the discount
            problems.append(f"train.params.config.gamma must be in (0, 1], got {value!r}")
    tau = ppo.get("tau")  # GAE lambda: 0 is TD(0), 1 Monte Carlo
    if tau is not None and (not isinstance(tau, (int, float)) or isinstance(tau, bool) or not 0 <= tau <= 1):
        problems.append(f"train.params.config.tau must be in [0, 1], got {tau!r}")
    if not problems and ppo.get("num_minibatches") and ppo.get("horizon_length"):
        batch = int(cfg.num_envs) * int(ppo.horizon_length)
        if batch % int(ppo.num_minibatches):
            problems.append(f"num_envs x horizon_length = {batch} does not split into "
                            f"train.params.config.num_minibatches={ppo.num_minibatches} minibatches")
    return problems


def _section_problems(cfg) -> List[str]:
    """The ``sim2real``, ``task.teleop``, ``export`` and ``bench`` sections."""
    from dofbot_rl.sim2real.client import validate_settings
    from dofbot_rl.sim2real.protocol import read_token_file
    from dofbot_rl.teleop.model import TeleopBindings

    problems = []
    s2r = cfg.sim2real
    try:
        validate_settings(s2r.host, s2r.port, s2r.protocol, bool(s2r.token_file), s2r.rate_hz, s2r.mode,
                          s2r.heartbeat_ms, s2r.takeover)
    except ValueError as exc:
        problems.append(str(exc))
    if s2r.enabled and s2r.mode == "real2sim" and not cfg.teleop and cfg.num_envs < 2:
        problems.append("sim2real.mode=real2sim drives env 0 from the arm, so no episode of it is counted: "
                        "num_envs must be >= 2 (or teleop=True, which runs until Ctrl+C)")
    if s2r.token_file and not Path(s2r.token_file).expanduser().exists():
        problems.append(f"sim2real.token_file: no such file {s2r.token_file!r}")
    elif s2r.token_file:  # read as the client will (a regular file, bounded), so no error waits for the link
        try:
            read_token_file(s2r.token_file, allow_readable=True)
        except ValueError as exc:
            problems.append(f"sim2real.token_file: {exc}")
    try:
        TeleopBindings.from_config(cfg.task.teleop)
    except ValueError as exc:
        problems.append(f"task.teleop: {exc}")
    if cfg.task.teleop.max_robots < 0:
        problems.append(f"task.teleop.max_robots must be >= 0 (0: no cap), got {cfg.task.teleop.max_robots}")
    unknown = [f for f in cfg.export.format if f not in EXPORT_FORMATS + ("all",)]
    if unknown or not cfg.export.format:
        problems.append(f"export.format: format={','.join(unknown) or '(none)'} is unknown: expected "
                        f"{', '.join(EXPORT_FORMATS[:-1])}, {EXPORT_FORMATS[-1]} or all, or a comma list of them")
    if cfg.export.samples < 1:
        problems.append(f"export.samples: samples={cfg.export.samples} must be >= 1")
    if any(n < 1 for n in cfg.bench.sizes):
        problems.append(f"bench.sizes: sizes must be positive, got {list(cfg.bench.sizes)}")
    if not cfg.bench.seconds > 0:
        problems.append(f"bench.seconds must be > 0 s, got {cfg.bench.seconds}")
    if cfg.bench.train_epochs < 0:
        problems.append(f"bench.train_epochs must be >= 0, got {cfg.bench.train_epochs}")
    return problems


def model_path(cfg: DictConfig):
    """The robot MJCF the config asks for (``task.sim.model`` or the generated default)."""
    path = Path(cfg.task.sim.model).expanduser() if cfg.task.sim.model else robot_model_path("mjcf")
    if not path.is_file():
        raise ConfigError(f"task.sim.model: no robot model at {path}")
    return path


def to_container(cfg: DictConfig) -> Dict[str, Any]:
    """A plain ``dict`` copy of ``cfg`` with interpolations resolved."""
    return OmegaConf.to_container(cfg, resolve=True)
