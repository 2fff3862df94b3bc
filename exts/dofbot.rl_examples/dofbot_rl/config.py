"""Typed configuration: Hydra composes ``config/``, dataclasses check it.

``load_config(overrides)`` composes ``config/config.yaml`` with Hydra (the reference's
layout: ``task/DofbotReacher.yaml``, ``train/DofbotReacherPPO.yaml``), merges it into
the dataclass schema below (unknown keys and wrong types fail), fills the per-device
defaults and checks the values. Every failure is a :class:`ConfigError` whose message
names the bad value and what was expected.
"""

import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from omegaconf import MISSING, DictConfig, OmegaConf

from dofbot_rl.paths import config_dir, robot_model_path


class ConfigError(ValueError):
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

    name: str = "DofbotReacher"
    env: EnvConfig = field(default_factory=EnvConfig)
    sim: SimConfig = field(default_factory=SimConfig)
    randomization: RandomizationConfig = field(default_factory=RandomizationConfig)
    teleop: Dict[str, Any] = field(default_factory=dict)  #: checked by dofbot_rl.teleop.TeleopConfig


@dataclass
class DeviceDefaults:
    """Defaults that depend on the simulation device."""

    num_envs: int = 512
    max_iterations: int = 150


@dataclass
class MainConfig:
    """Top-level config (``config/config.yaml``); names follow IsaacGymEnvs / OIGE."""

    task: TaskConfig = field(default_factory=TaskConfig)
    train: Dict[str, Any] = field(default_factory=dict)  #: rl_games params (validated by rl_games)
    experiment: str = ""  #: run name; empty: the task name
    num_envs: Optional[int] = None  #: None: the device default
    seed: int = 42
    torch_deterministic: bool = False
    max_iterations: Optional[int] = None  #: PPO epochs; None: the device default
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
    rl_device: str = ""  #: empty: same as sim_device
    headless: bool = True  #: accepted for IsaacGymEnvs compatibility; the headless CLI never opens a window
    test: bool = False  #: play instead of train
    checkpoint: str = ""  #: .pth to resume from (train) or to play
    train_dir: str = "runs"  #: runs/<experiment>/nn/<experiment>.pth
    episodes: int = 20  #: play: at least this many episodes in total (rounded up to a multiple of num_envs)
    teleop: bool = False  #: play: drive env 0 from the keyboard
    render: bool = False  #: play: save an animated GIF of env 0 as runs/<experiment>/rollout.gif
    sim2real: Dict[str, Any] = field(default_factory=dict)  #: checked by dofbot_rl.sim2real.client.Sim2RealConfig
    device_defaults: Dict[str, DeviceDefaults] = field(default_factory=dict)


PHYSICS_BACKENDS = ("mujoco",)


def _hydra_compose(overrides: Sequence[str]) -> DictConfig:
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        message = str(exc).strip().splitlines()[0]
        raise ConfigError(f"bad override: {message} (the keys are in config/config.yaml and config/task/, see README)") from None


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


def load_config(overrides: Sequence[str] = ()) -> DictConfig:
    """Compose, type-check and complete the configuration.

    Args:
        overrides: Hydra overrides, e.g. ``["task=DofbotReacher", "num_envs=64", "test=True"]``.

    Returns:
        A read-only :class:`MainConfig`-shaped DictConfig with ``task.env.num_envs``,
        ``max_iterations``, ``sim_device``, ``rl_device`` and ``experiment`` filled in.

    Raises:
        ConfigError: for unknown keys, wrong types or impossible values.
    """
    from omegaconf.errors import OmegaConfBaseException

    raw = _hydra_compose(overrides)
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(MainConfig), raw)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", "") or ""
        first = str(exc).strip().splitlines()[0]
        raise ConfigError(f"invalid config value{(' for ' + key) if key else ''}: {first}") from None

    cfg.sim_device = resolve_device(cfg.sim_device)
    cfg.rl_device = resolve_device(cfg.rl_device) if cfg.rl_device else cfg.sim_device
    family = "cuda" if cfg.sim_device.startswith("cuda") else "cpu"
    defaults = cfg.device_defaults.get(family, DeviceDefaults())
    if cfg.num_envs is None:
        cfg.num_envs = defaults.num_envs
    if cfg.max_iterations is None:
        cfg.max_iterations = defaults.max_iterations
    cfg.task.env.num_envs = cfg.num_envs
    if not cfg.experiment:
        cfg.experiment = cfg.task.name
    validate(cfg)
    OmegaConf.set_readonly(cfg, True)
    return cfg


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

    need(cfg.num_envs > 0, f"num_envs must be > 0, got {cfg.num_envs}")
    need(cfg.max_iterations > 0, f"max_iterations must be > 0, got {cfg.max_iterations}")
    need(env.episode_length > 1, f"task.env.episode_length must be > 1 control steps, got {env.episode_length}")
    need(env.control_frequency_inv >= 1, f"task.env.control_frequency_inv must be >= 1, got {env.control_frequency_inv}")
    need(cfg.task.sim.dt > 0, f"task.sim.dt must be > 0 s, got {cfg.task.sim.dt}")
    need(env.success_tolerance > 0, f"task.env.success_tolerance must be > 0 m, got {env.success_tolerance}")
    need(env.clip_actions > 0 and env.clip_observations > 0, "task.env.clip_actions and clip_observations must be > 0")
    need(0 < env.goal.xy_min <= env.goal.xy_max, f"goal xy range must satisfy 0 < xy_min <= xy_max, got {env.goal.xy_min}..{env.goal.xy_max}")
    need(0 <= env.goal.z_min <= env.goal.z_max, f"goal z range must satisfy 0 <= z_min <= z_max, got {env.goal.z_min}..{env.goal.z_max}")
    need(cfg.physics in PHYSICS_BACKENDS, f"physics={cfg.physics} is unknown: expected one of {', '.join(PHYSICS_BACKENDS)}")
    need(cfg.episodes > 0, f"episodes must be > 0, got {cfg.episodes}")
    need(bool(cfg.experiment) and os.sep not in cfg.experiment, f"experiment must be a plain name, got {cfg.experiment!r}")
    problems += randomization_problems(cfg.task.randomization)
    problems += _section_problems(cfg)
    if problems:
        raise ConfigError("; ".join(problems))


def _section_problems(cfg) -> List[str]:
    """The ``sim2real`` and ``task.teleop`` sections, checked by their own parsers."""
    from dofbot_rl.sim2real.client import Sim2RealConfig
    from dofbot_rl.teleop.model import TeleopBindings, TeleopConfig

    problems = []
    try:
        Sim2RealConfig.from_mapping(OmegaConf.to_container(cfg.sim2real))
    except ValueError as exc:
        problems.append(f"sim2real: {exc}")
    try:
        TeleopBindings.from_config(TeleopConfig.from_mapping(OmegaConf.to_container(cfg.task.teleop)))
    except ValueError as exc:
        problems.append(f"task.teleop: {exc}")
    return problems


def model_path(cfg: DictConfig):
    """The robot MJCF the config asks for (``task.sim.model`` or the generated default)."""
    from pathlib import Path

    path = Path(cfg.task.sim.model) if cfg.task.sim.model else robot_model_path("mjcf")
    if not path.is_file():
        raise ConfigError(f"task.sim.model: no robot model at {path}")
    return path


def to_container(cfg: DictConfig) -> Dict[str, Any]:
    """A plain ``dict`` copy of ``cfg`` with interpolations resolved."""
    return OmegaConf.to_container(cfg, resolve=True)
