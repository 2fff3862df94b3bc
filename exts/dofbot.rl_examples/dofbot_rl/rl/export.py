"""Export a checkpoint's deterministic policy (ONNX, TorchScript, npz) and prove it equal to rl_games'.

``dofbot-rl export checkpoint=PATH format=onnx|torchscript|npz|all output=DIR verify=True samples=10000``
(options: the ``export`` section of :class:`dofbot_rl.config.MainConfig`; ``dofbot-rl export --help``)

Every format computes the rl_games player's deterministic action with everything it
applies at play time baked in (:mod:`dofbot_rl.rl.policy`): observation clamp, running
mean / std normalisation with its epsilon and clip, the MLP, ``mu``, the action clamp.
Files written to ``output`` (default ``runs/<experiment>/export/`` for a checkpoint in
``runs/<experiment>/nn/``):

==================  ==================================================================
``policy.onnx``     input ``obs`` ``(batch, 29)`` float32, output ``actions`` ``(batch, 6)``
``policy.pt``       TorchScript module, same signature (``torch.jit.load``)
``policy.npz``      weights + normaliser + deployment facts for
                    :class:`dofbot_rl.sim2real.npz_policy.NumpyPolicy` (numpy only)
``policy.json``     sidecar: observation / action layout, limits, control rate,
                    checkpoint sha256, the training settings the policy depends on,
                    verification figures; lists every format exported into the folder
==================  ==================================================================

``verify=True`` (the default) runs the real task with the rl_games player restored from
the checkpoint, records ``samples`` observations and the player's actions, and replays
them through every written format; the largest absolute action difference must stay
within :data:`VERIFY_TOLERANCE` or the command fails (exit status 1).
"""

import hashlib
import json
import logging
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np
import torch

from dofbot_rl import robot
from dofbot_rl.config import EXPORT_FORMATS
from dofbot_rl.rl.checkpoints import CheckpointError, atomic_write, load_checkpoint, policy_shape, validate_for_config
from dofbot_rl.rl.policy import DeterministicPolicy, PolicySpec, network_settings, spec_arrays, spec_from_checkpoint
from dofbot_rl.errors import DofbotRlError

log = logging.getLogger(__name__)

#: Export formats, in the order they are written.
FORMATS = EXPORT_FORMATS
#: File name of each format inside the output directory.
FILE_NAMES = {"onnx": "policy.onnx", "torchscript": "policy.pt", "npz": "policy.npz", "sidecar": "policy.json"}
#: ONNX opset: 13 runs on onnxruntime >= 1.6 (JetPack 4 builds included).
ONNX_OPSET = 13
#: Largest absolute action difference accepted by the verification (float32 round-off).
VERIFY_TOLERANCE = 1e-5
#: Observations uniform in +-clip added to the task's recordings to exercise the normaliser clip.
NUM_SYNTHETIC_SAMPLES = 1024
#: Envs of the task run when recording observations (unless ``num_envs=`` is given).
VERIFY_NUM_ENVS = 64


class ExportVerificationError(DofbotRlError, RuntimeError):
    """An exported format disagrees with the rl_games player beyond the tolerance."""


@dataclass
class ExportResult:
    """What :func:`export` wrote."""

    output_dir: Path
    files: Dict[str, Path]  #: format name -> file
    sidecar: Path  #: the JSON sidecar
    spec: PolicySpec  #: the numbers every format computes with
    checkpoint: Path
    checkpoint_sha256: str
    metadata: Dict[str, object] = field(default_factory=dict)  #: the sidecar's content


@dataclass
class VerifyResult:
    """Figures of :func:`verify`."""

    samples: int  #: observations compared (task + synthetic)
    task_samples: int  #: of which recorded from the task
    max_abs_diff: Dict[str, float]  #: per format (``torch`` is the rebuilt module itself)
    tolerance: float

    @property
    def worst(self) -> float:
        """The largest difference over all formats."""
        return max(self.max_abs_diff.values())

    @property
    def passed(self) -> bool:
        """Every format within the tolerance."""
        return self.worst <= self.tolerance

    def summary_line(self) -> str:
        """The machine-readable last line of ``dofbot-rl export verify=True``."""
        return f"max_abs_diff={self.worst:.3e} samples={self.samples} formats={','.join(self.max_abs_diff)}"


# ----------------------------------------------------------------------------------
# Layout and metadata
# ----------------------------------------------------------------------------------
def observation_layout(cfg) -> List[Dict[str, object]]:
    """The 29 observation entries: index, name, meaning, units and the scaling applied."""
    from dofbot_rl.tasks.reacher_math import OBSERVATION_NAMES

    env = cfg.task.env
    layout = []
    for i, name in enumerate(OBSERVATION_NAMES):
        if i < 6:
            entry = {"meaning": f"position of {robot.JOINT_NAMES[i]}", "units": "1 (rad scaled)",
                     "scaling": "(2 q - (lower + upper)) / (upper - lower), q in rad: -1 at lower, +1 at upper"}
        elif i < 12:
            entry = {"meaning": f"velocity of {robot.JOINT_NAMES[i - 6]}", "units": "rad/s x dof_vel_scale",
                     "scaling": f"{env.dof_vel_scale} x qdot (rad/s)"}
        elif i < 15:
            entry = {"meaning": f"goal position {'xyz'[i - 12]}", "units": "m",
                     "scaling": "none; robot base frame (x forward, z up)"}
        elif i < 19:
            entry = {"meaning": f"goal orientation {('w', 'x', 'y', 'z')[i - 15]}", "units": "quaternion",
                     "scaling": "none; unit quaternion (w, x, y, z), identity if unused"}
        elif i < 23:
            entry = {"meaning": f"ee_rot * conj(goal_rot) {('w', 'x', 'y', 'z')[i - 19]}", "units": "quaternion",
                     "scaling": "none; ee_rot = link5 orientation in the base frame"}
        else:
            entry = {"meaning": f"previous action for {robot.JOINT_NAMES[i - 23]}", "units": "1",
                     "scaling": "the action applied last step, in [-1, 1]; gripper slot always 0"}
        layout.append(dict(index=i, name=name, **entry))
    return layout


def action_layout() -> List[Dict[str, object]]:
    """The 6 action entries: joint, target mapping and limits (rad)."""
    layout = []
    for i, joint in enumerate(robot.JOINT_NAMES):
        lo, hi = robot.SAFE_LIMITS_LOWER[i], robot.SAFE_LIMITS_UPPER[i]
        entry = {"index": i, "name": f"action_{i}", "joint": joint, "range": [-1.0, 1.0],
                 "target": "absolute joint target q = lower + (a + 1) / 2 (upper - lower) rad, clamped",
                 "lower_rad": lo, "upper_rad": hi}
        if i == len(robot.JOINT_NAMES) - 1:
            entry["note"] = "the task zeroes this slot (gripper unused): command the gripper's mid-range"
        layout.append(entry)
    return layout


def training_config(checkpoint: Path, cfg) -> Tuple[Dict[str, object], str]:
    """The training settings the policy depends on, and where they came from.

    Only the task's MDP (``task.name``, ``task.env`` without ``num_envs``, ``task.sim.dt``,
    ``task.randomization``) and the network (``train.params.network``), unresolved: nothing
    else of the run's config (paths, ``${oc.env:...}`` values such as HOME or PATH) is copied.
    Read from ``runs/<experiment>/config.yaml`` (written by the trainer) when the checkpoint
    sits in ``runs/<experiment>/nn/``; otherwise from the current config ``cfg``.
    """
    from omegaconf import OmegaConf

    run_config = checkpoint.parent.parent / "config.yaml"
    if checkpoint.parent.name == "nn" and run_config.is_file():
        source, where = OmegaConf.load(run_config), str(run_config.resolve())
    else:
        source, where = cfg, "current config (no runs/<experiment>/config.yaml beside the checkpoint)"

    def pick(key):
        node = OmegaConf.select(source, key, default=None)
        return OmegaConf.to_container(node, resolve=False) if OmegaConf.is_config(node) else node

    env = pick("task.env") or {}
    env.pop("num_envs", None)
    picked = {"task": {"name": pick("task.name"), "env": env, "sim": {"dt": pick("task.sim.dt")},
                       "randomization": pick("task.randomization")},
              "train": {"params": {"network": pick("train.params.network")}}}
    return picked, where


def file_sha256(path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _deployment_arrays(cfg) -> Dict[str, np.ndarray]:
    env = cfg.task.env
    control_dt = float(cfg.task.sim.dt) * int(env.control_frequency_inv)
    return {
        "format": np.array("dofbot-rl-policy"), "format_version": np.array(1, dtype=np.int64),
        "dof_lower": np.array(robot.SAFE_LIMITS_LOWER, dtype=np.float32),
        "dof_upper": np.array(robot.SAFE_LIMITS_UPPER, dtype=np.float32),
        "dof_vel_scale": np.array(env.dof_vel_scale, dtype=np.float32),
        "control_rate_hz": np.array(1.0 / control_dt, dtype=np.float32),
        "gripper_index": np.array(robot.NUM_DOF - 1, dtype=np.int64),
        "goal_region": np.array([env.goal.xy_min, env.goal.xy_max, env.goal.z_min, env.goal.z_max], dtype=np.float32),
        "success_tolerance": np.array(env.success_tolerance, dtype=np.float32),
        "success_window_s": np.array(env.success_window_s, dtype=np.float32),
        "episode_length_s": np.array(env.episode_length * control_dt, dtype=np.float32),
        "observation_names": np.array([e["name"] for e in observation_layout(cfg)]),
        "action_names": np.array(list(robot.JOINT_NAMES)),
    }


# ----------------------------------------------------------------------------------
# Writers
# ----------------------------------------------------------------------------------
def _write_onnx(module: DeterministicPolicy, path: Path) -> None:
    example = torch.zeros(1, module.obs_mean.shape[0])

    def write(tmp):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript-based exporter's deprecation notice
            torch.onnx.export(module, (example,), tmp, dynamo=False, opset_version=ONNX_OPSET,
                              input_names=["obs"], output_names=["actions"],
                              dynamic_axes={"obs": {0: "batch"}, "actions": {0: "batch"}})

    atomic_write(path, write)


def _write_torchscript(module: DeterministicPolicy, path: Path) -> None:
    scripted = torch.jit.script(module)
    atomic_write(path, lambda tmp: torch.jit.save(scripted, tmp))


def _write_npz(arrays: Mapping[str, np.ndarray], path: Path) -> None:
    def write(tmp):
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    atomic_write(path, write)


def default_output_dir(checkpoint) -> Path:
    """``runs/<experiment>/export`` for ``runs/<experiment>/nn/x.pth``, else ``<dir>/<stem>_export``."""
    checkpoint = Path(checkpoint)
    if checkpoint.parent.name == "nn":
        return checkpoint.parent.parent / "export"
    return checkpoint.parent / f"{checkpoint.stem}_export"


def export(checkpoint, fmt, output_dir, cfg) -> ExportResult:
    """Write the checkpoint's deterministic policy in ``fmt`` plus the JSON sidecar.

    Args:
        checkpoint: an rl_games ``.pth`` of the task ``cfg`` describes.
        fmt: ``"onnx"``, ``"torchscript"``, ``"npz"``, ``"all"`` or a sequence of those.
        output_dir: directory for the files (created); None: :func:`default_output_dir`.
        cfg: loaded config (:func:`dofbot_rl.config.load_config`): task layout, limits,
            rate; the network settings come from the run's ``config.yaml`` when present.

    Returns:
        An :class:`ExportResult`.

    Raises:
        CheckpointError: missing / foreign checkpoint, wrong sizes for the task, or a
            network this exporter does not rebuild.
        ValueError: an unknown format name.
    """
    formats = parse_formats(fmt)
    if "onnx" in formats:
        require_export_extra("onnx", "format=onnx")
    checkpoint = Path(checkpoint).expanduser()
    state = load_checkpoint(checkpoint)
    shape = policy_shape(state)
    from dofbot_rl.tasks import TASKS

    task_cls = TASKS.get(cfg.task.name)
    if task_cls is not None and (shape.num_observations, shape.num_actions) != (task_cls.num_observations,
                                                                                task_cls.num_actions):
        raise CheckpointError(
            f"{checkpoint} was trained for {shape.num_observations} observations / {shape.num_actions} actions, "
            f"the task {cfg.task.name} has {task_cls.num_observations} / {task_cls.num_actions}")
    train_cfg, train_cfg_source = training_config(checkpoint, cfg)
    activation = network_settings(train_cfg.get("train", {}).get("params", {}))
    spec = spec_from_checkpoint(state, activation, obs_clip=float(cfg.task.env.clip_observations),
                                action_clip=1.0)
    module = DeterministicPolicy(spec)
    output_dir = Path(output_dir).expanduser() if output_dir else default_output_dir(checkpoint)
    _make_output_dir(output_dir)
    sha = file_sha256(checkpoint)

    files: Dict[str, Path] = {}
    for name in formats:
        path = output_dir / FILE_NAMES[name]
        if name == "onnx":
            _write_onnx(module, path)
        elif name == "torchscript":
            _write_torchscript(module, path)
        else:
            arrays = dict(spec_arrays(spec), **_deployment_arrays(cfg))
            arrays["checkpoint_sha256"] = np.array(sha)
            _write_npz(arrays, path)
        files[name] = path
        log.debug("wrote %s", path)

    env = cfg.task.env
    control_dt = float(cfg.task.sim.dt) * int(env.control_frequency_inv)
    from importlib import metadata

    import dofbot_rl

    try:
        rl_games_version = metadata.version("rl-games")
    except metadata.PackageNotFoundError:  # pragma: no cover - rl_games from a source tree
        rl_games_version = "unknown"
    metadata = {
        "format": "dofbot-rl-policy", "format_version": 1, "task": cfg.task.name,
        "files": {name: {"path": path.name, "sha256": file_sha256(path)} for name, path in files.items()},
        "checkpoint": {"path": str(checkpoint.resolve()), "sha256": sha, "epoch": state.get("epoch"),
                       "frame": state.get("frame"), "last_mean_rewards": _jsonable(state.get("last_mean_rewards"))},
        "policy": {
            "graph": (f"clamp(obs, +-{spec.obs_clip:g}) -> (x - obs_mean) / sqrt(obs_var + {spec.norm_eps:g}) -> "
                      f"clamp(+-{spec.norm_clip:g}) -> MLP {list(spec.hidden_units)} {spec.activation} -> mu -> "
                      f"clamp(+-{spec.action_clip:g})"),
            "deterministic": True, "obs_clip": spec.obs_clip, "norm_eps": spec.norm_eps, "norm_clip": spec.norm_clip,
            "hidden_units": list(spec.hidden_units), "activation": spec.activation, "action_clip": spec.action_clip,
            "obs_mean": spec.obs_mean.tolist(), "obs_var": spec.obs_var.tolist(),
        },
        "observation": observation_layout(cfg),
        "action": action_layout(),
        "limits": {"dof_lower_rad": list(robot.SAFE_LIMITS_LOWER), "dof_upper_rad": list(robot.SAFE_LIMITS_UPPER),
                   "joint_names": list(robot.JOINT_NAMES)},
        "control_rate_hz": 1.0 / control_dt, "control_dt_s": control_dt, "dof_vel_scale": float(env.dof_vel_scale),
        "goal_region_m": {"xy_min": env.goal.xy_min, "xy_max": env.goal.xy_max, "z_min": env.goal.z_min,
                          "z_max": env.goal.z_max},
        "success_tolerance_m": float(env.success_tolerance), "success_window_s": float(env.success_window_s),
        "episode_length_s": env.episode_length * control_dt,
        "onnx": {"opset": ONNX_OPSET, "input": "obs", "output": "actions", "shape": "(batch, 29) -> (batch, 6) float32"},
        "versions": {"torch": torch.__version__, "rl_games": rl_games_version,
                     "numpy": np.__version__, "dofbot_rl": getattr(dofbot_rl, "__version__", "unknown")},
        "training_config_source": train_cfg_source,
        "training_config": train_cfg,
    }
    sidecar = output_dir / FILE_NAMES["sidecar"]
    _keep_earlier_files(sidecar, metadata, sha)
    _write_json(sidecar, metadata)
    log.debug("wrote %s", sidecar)
    return ExportResult(output_dir=output_dir, files=files, sidecar=sidecar, spec=spec, checkpoint=checkpoint,
                        checkpoint_sha256=sha, metadata=metadata)


def require_export_extra(module: str, what: str) -> None:
    """Check that ``module`` (onnx, onnxruntime) is importable before anything is written.

    Raises:
        ConfigError: one line naming the project's ``[export]`` extra.
    """
    import importlib.util

    from dofbot_rl.config import ConfigError

    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"{what} needs the {module} package, which is not installed: "
                          f"pip install -e '.[export]' (or pip install onnx onnxruntime), or leave out onnx")


def _make_output_dir(output_dir: Path) -> None:
    """Create the output folder, or say in one line why it cannot be written.

    Raises:
        ConfigError: the folder cannot be created or written.
    """
    from dofbot_rl.config import ConfigError

    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"export output {output_dir} cannot be created: {exc.strerror or exc}") from None
    if not os.access(output_dir, os.W_OK | os.X_OK):
        raise ConfigError(f"export output {output_dir} is not writable: pass output=DIR")


def _keep_earlier_files(sidecar: Path, metadata: Dict[str, object], sha: str) -> None:
    """List in ``metadata["files"]`` the formats an earlier export of the same checkpoint left in the
    folder (unchanged on disk: same sha256), so separate exports into one folder add up."""
    try:
        earlier = json.loads(sidecar.read_text())
        if earlier.get("checkpoint", {}).get("sha256") != sha:
            return
        for name, info in earlier.get("files", {}).items():
            path = sidecar.parent / str(info["path"])
            if name not in metadata["files"] and path.is_file() and file_sha256(path) == info["sha256"]:
                metadata["files"][name] = {"path": path.name, "sha256": info["sha256"]}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # no usable earlier sidecar
        return


def parse_formats(fmt) -> Tuple[str, ...]:
    """``"all"`` / one name / a comma list / a sequence -> formats in :data:`FORMATS` order.

    Raises:
        ValueError: an unknown name (listed with the accepted ones).
    """
    names = fmt.split(",") if isinstance(fmt, str) else list(fmt)
    names = [n.strip().lower() for n in names if n.strip()]
    if names == ["all"]:
        return FORMATS
    bad = [n for n in names if n not in FORMATS]
    if bad or not names:
        shown = ",".join(bad) if bad else repr(fmt)
        raise ValueError(f"format={shown} is unknown: expected onnx, torchscript, npz or all")
    return tuple(f for f in FORMATS if f in names)


def _jsonable(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().tolist()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def _write_json(path: Path, data) -> None:
    def write(tmp):
        with open(tmp, "w") as fh:
            json.dump(data, fh, indent=2, default=_jsonable)
            fh.write("\n")

    atomic_write(path, write)


# ----------------------------------------------------------------------------------
# Verification against the rl_games player
# ----------------------------------------------------------------------------------
def record_observations(cfg, checkpoint, samples: int) -> Tuple[torch.Tensor, torch.Tensor, object]:
    """Run the task with the rl_games player and record what it sees and does.

    ``ceil(samples / num_envs)`` control steps of ``cfg.num_envs`` envs; the player
    restored from ``checkpoint`` picks every action (so the states are the policy's own).

    Returns:
        ``(obs (n, 29), actions (n, 6), player)``: float32 on the CPU, ``n >= samples``;
        the actions are the player's deterministic actions for those observations.

    Raises:
        CheckpointError: for a bad checkpoint.
    """
    from dofbot_rl.rl.play import load_player, policy_actions
    from dofbot_rl.rl.trainer import seed_everything
    from dofbot_rl.rl.vecenv import RlGamesVecEnv
    from dofbot_rl.tasks import make_task

    seed_everything(cfg.seed)
    task = make_task(cfg)
    env = RlGamesVecEnv(task, cfg.rl_device)
    player = load_player(cfg, env, checkpoint, quiet=True)
    steps = max(1, math.ceil(samples / task.num_envs))
    observations, actions = [], []
    obs = env.reset()["obs"]
    for _ in range(steps):
        act = policy_actions(player, obs)
        observations.append(obs.detach().cpu().clone())
        actions.append(act.detach().cpu().clone())
        obs = env.step(act)[0]["obs"]
    return torch.cat(observations), torch.cat(actions), player


def _player_actions(player, obs: torch.Tensor, device) -> torch.Tensor:
    from dofbot_rl.rl.play import policy_actions

    return policy_actions(player, obs.to(device)).detach().cpu()


def verify(result: ExportResult, cfg, samples: int = 10000, tolerance: float = VERIFY_TOLERANCE) -> VerifyResult:
    """Compare the rl_games player with the rebuilt module and every exported file.

    Records ``samples`` observations from the task (:func:`record_observations`), adds
    :data:`NUM_SYNTHETIC_SAMPLES` observations uniform in ``+-clip_observations`` (they
    push the normaliser into its clip), computes the player's actions for all of them
    and the actions of: the rebuilt ``torch`` module, ``torchscript`` (``torch.jit.load``),
    ``onnx`` (onnxruntime, CPU) and ``npz`` (:class:`~dofbot_rl.sim2real.npz_policy.NumpyPolicy`),
    whichever were written. Adds a ``verification`` section to the sidecar.

    Returns:
        A :class:`VerifyResult` (check :attr:`VerifyResult.passed`).

    Raises:
        CheckpointError: for a bad checkpoint.
        ImportError: onnxruntime missing while an ONNX file is to be checked.
    """
    from dofbot_rl.sim2real.npz_policy import NumpyPolicy

    task_obs, task_actions, player = record_observations(cfg, result.checkpoint, samples)
    clip = float(cfg.task.env.clip_observations)
    generator = torch.Generator().manual_seed(int(cfg.seed))
    synthetic = (torch.rand(NUM_SYNTHETIC_SAMPLES, task_obs.shape[1], generator=generator) * 2.0 - 1.0) * clip
    synthetic_actions = _player_actions(player, synthetic, cfg.rl_device)
    obs = torch.cat((task_obs, synthetic)).float().contiguous()
    expected = torch.cat((task_actions, synthetic_actions)).numpy()
    obs_np = obs.numpy()

    outputs: Dict[str, np.ndarray] = {}
    with torch.no_grad():
        outputs["torch"] = DeterministicPolicy(result.spec)(obs).numpy()
    if "onnx" in result.files:
        try:
            import onnxruntime
        except ImportError:
            raise ImportError("onnxruntime is needed to verify the ONNX file: pip install onnxruntime "
                              "(or the project's [export] extra), or pass verify=False") from None
        session = onnxruntime.InferenceSession(str(result.files["onnx"]), providers=["CPUExecutionProvider"])
        outputs["onnx"] = session.run(["actions"], {"obs": obs_np})[0]
    if "torchscript" in result.files:
        scripted = torch.jit.load(str(result.files["torchscript"]), map_location="cpu")
        with torch.no_grad():
            outputs["torchscript"] = scripted(obs).numpy()
    if "npz" in result.files:
        outputs["npz"] = NumpyPolicy.from_npz(result.files["npz"]).act(obs_np)

    diffs = {name: float(np.max(np.abs(out.astype(np.float64) - expected.astype(np.float64))))
             for name, out in outputs.items()}
    verdict = VerifyResult(samples=int(obs.shape[0]), task_samples=int(task_obs.shape[0]), max_abs_diff=diffs,
                           tolerance=float(tolerance))
    result.metadata["verification"] = {
        "reference": "rl_games PpoPlayerContinuous.get_action(obs, is_deterministic=True)",
        "samples": verdict.samples, "task_samples": verdict.task_samples,
        "synthetic_samples": NUM_SYNTHETIC_SAMPLES, "max_abs_diff": diffs, "tolerance": tolerance,
        "passed": verdict.passed, "num_envs": int(cfg.num_envs),
    }
    _write_json(result.sidecar, result.metadata)
    for name, diff in diffs.items():
        log.info("%-12s max |action - rl_games action| = %.3e over %d observations", name, diff, verdict.samples)
    return verdict


# ----------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------
def main(args: Sequence[str]) -> int:
    """``dofbot-rl export``: returns 0 on success, 1 when the verification fails.

    Args:
        args: overrides: ``checkpoint=`` (default: the experiment's newest, else the shipped
            policy; ``last``: the experiment's newest), the ``export`` section's options without
            their prefix (``format=onnx,npz output=DIR verify=False samples=N``,
            :class:`dofbot_rl.config.ExportConfig`), and task overrides (``num_envs`` defaults to
            :data:`VERIFY_NUM_ENVS` here).

    Raises:
        ConfigError, CheckpointError: mistakes the user can fix (one line), before anything is written.
    """
    from dofbot_rl.config import load_config
    from dofbot_rl.rl.play import resolve_checkpoint

    overrides = list(args)
    if not any(a.startswith("num_envs=") for a in overrides):
        overrides.append(f"num_envs={VERIFY_NUM_ENVS}")
    cfg = load_config(overrides + ["test=True"], command="export")
    options = cfg.export
    checkpoint = resolve_checkpoint(cfg)
    formats = parse_formats(list(options.format))
    if options.verify and "onnx" in formats:
        require_export_extra("onnxruntime", "verify=True with format onnx")
    if options.verify:  # the verifying player is built from cfg: refuse a network it cannot load before writing
        from dofbot_rl.tasks import TASKS

        task_cls = TASKS[cfg.task.name]
        validate_for_config(checkpoint, cfg, task_cls.num_observations, task_cls.num_actions)
    result = export(checkpoint, formats, options.output or None, cfg)
    for path in list(result.files.values()) + [result.sidecar]:
        print(f"wrote {path}")
    if not options.verify:
        return 0
    verdict = verify(result, cfg, samples=int(options.samples))
    print(verdict.summary_line())
    if not verdict.passed:
        bad = {k: v for k, v in verdict.max_abs_diff.items() if v > verdict.tolerance}
        log.error("export verification FAILED: %s differ from the rl_games player by more than %.0e; "
                  "do not deploy these files", ", ".join(f"{k} ({v:.3e})" for k, v in bad.items()), verdict.tolerance)
        return 1
    return 0
