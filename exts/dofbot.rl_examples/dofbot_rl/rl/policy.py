"""The deterministic policy of an rl_games checkpoint, rebuilt without rl_games.

rl_games' player (``PpoPlayerContinuous.get_action(obs, is_deterministic=True)`` of a
``continuous_a2c_logstd`` model with ``normalize_input: True``) computes, for
observations ``obs (N, 29)``::

    x = (obs - running_mean) / sqrt(running_var + 1e-5)     # RunningMeanStd, float32 stats
    x = clamp(x, -5, 5)                                      # RunningMeanStd's own clip
    h = elu(W2 elu(W1 x + b1) + b2)                          # actor_mlp (Linear, act) x n
    mu = Wmu h + bmu                                         # mu_activation: None
    actions = clamp(mu, -1, 1)                               # player clip_actions (+ rescale to +-1: identity)

docs/deploy.md. The task already clamps its observations to
``+-clip_observations`` (5); the exported graph repeats that clamp so that a caller
outside the task (the real arm) gets the same inputs. Everything here is read from the
checkpoint's ``model`` state dict: the normaliser (``running_mean_std.*``), the actor
MLP (``a2c_network.actor_mlp.<i>.*``) and ``a2c_network.mu.*``. The value head,
``sigma`` and ``value_mean_std`` are not part of the deterministic policy.

:class:`PolicySpec` holds those numbers (numpy float32); :class:`DeterministicPolicy`
is the ``torch.nn.Module`` exported to ONNX and TorchScript;
:func:`dofbot_rl.sim2real.npz_policy.NumpyPolicy` is the numpy twin for the robot.
"""

from dataclasses import dataclass
from typing import Dict, List, Mapping, Tuple

import numpy as np
import torch
from torch import nn

from dofbot_rl.rl.checkpoints import CheckpointError, policy_shape

#: ``RunningMeanStd(epsilon=1e-05)``: rl_games' default, used by ``normalize_input``.
RMS_EPSILON = 1e-5
#: ``RunningMeanStd.forward`` clamps normalised observations to +-this (hard-coded there).
RMS_CLIP = 5.0
#: Activations of rl_games' ``activations_factory`` that this module rebuilds.
ACTIVATIONS = ("elu", "relu", "tanh", "None")


@dataclass
class PolicySpec:
    """Everything the deterministic policy computes with, as float32 numpy arrays.

    Attributes:
        obs_mean, obs_var: ``(num_obs,)`` running statistics (stored float64 in the
            checkpoint; rl_games casts them to float32 before use, so do we).
        layers: hidden layers ``[(weight (out, in), bias (out,)), ...]``.
        mu_weight, mu_bias: ``(num_actions, hidden)``, ``(num_actions,)``.
        activation: one of :data:`ACTIVATIONS`.
        obs_clip: raw observations are clamped to +-this first (the task's ``clip_observations``).
        norm_eps, norm_clip: :data:`RMS_EPSILON`, :data:`RMS_CLIP`.
        action_clip: actions are clamped to +-this (1.0, the player's clamp).
    """

    obs_mean: np.ndarray
    obs_var: np.ndarray
    layers: List[Tuple[np.ndarray, np.ndarray]]
    mu_weight: np.ndarray
    mu_bias: np.ndarray
    activation: str = "elu"
    obs_clip: float = 5.0
    norm_eps: float = RMS_EPSILON
    norm_clip: float = RMS_CLIP
    action_clip: float = 1.0

    @property
    def num_observations(self) -> int:
        """Observation size (29 for the reacher)."""
        return int(self.obs_mean.shape[0])

    @property
    def num_actions(self) -> int:
        """Action size (6)."""
        return int(self.mu_bias.shape[0])

    @property
    def hidden_units(self) -> Tuple[int, ...]:
        """Widths of the hidden layers, e.g. ``(64, 64)``."""
        return tuple(int(b.shape[0]) for _, b in self.layers)


def network_settings(train_params: Mapping) -> str:
    """Check that an rl_games ``params`` dict describes a network this module rebuilds.

    Args:
        train_params: ``cfg.train.params`` as a plain dict (``network``, ``model``, ``config``).

    Returns:
        The MLP activation name (one of :data:`ACTIVATIONS`).

    Raises:
        CheckpointError: for an RNN, CNN, D2RL, a mu activation, a model other than
            ``continuous_a2c_logstd`` or ``normalize_input: False``, naming the setting.
    """
    network = dict(train_params.get("network", {}))
    model = dict(train_params.get("model", {}))
    config = dict(train_params.get("config", {}))
    mlp = dict(network.get("mlp", {}))
    continuous = dict(dict(network.get("space", {})).get("continuous", {}))
    problems = []
    if model.get("name", "continuous_a2c_logstd") != "continuous_a2c_logstd":
        problems.append(f"model.name={model.get('name')!r} (expected continuous_a2c_logstd)")
    if network.get("name", "actor_critic") != "actor_critic":
        problems.append(f"network.name={network.get('name')!r} (expected actor_critic)")
    if network.get("rnn") or network.get("cnn"):
        problems.append("network has an rnn / cnn section (only MLP policies are exported)")
    if mlp.get("d2rl", False):
        problems.append("network.mlp.d2rl=True (expected False)")
    if str(continuous.get("mu_activation", "None")) != "None":
        problems.append(f"mu_activation={continuous.get('mu_activation')!r} (expected None)")
    if not config.get("normalize_input", True):
        problems.append("config.normalize_input=False (the exporter expects the running mean/std normaliser)")
    activation = str(mlp.get("activation", "elu"))
    if activation not in ACTIVATIONS:
        problems.append(f"network.mlp.activation={activation!r} (expected one of {', '.join(ACTIVATIONS)})")
    if problems:
        raise CheckpointError("cannot export this policy: " + "; ".join(problems))
    return activation


def spec_from_checkpoint(state: Mapping, activation: str = "elu", obs_clip: float = 5.0,
                         action_clip: float = 1.0) -> PolicySpec:
    """Read a :class:`PolicySpec` from a checkpoint dict (:func:`~dofbot_rl.rl.checkpoints.load_checkpoint`).

    Args:
        state: the checkpoint dict (``state["model"]`` is read).
        activation: the MLP activation (:func:`network_settings`).
        obs_clip: the task's ``clip_observations``.
        action_clip: the player's clamp of ``mu`` (1.0 in rl_games).

    Raises:
        CheckpointError: weights missing or of inconsistent shapes.
    """
    if activation not in ACTIVATIONS:
        raise CheckpointError(f"activation {activation!r} is not one of {', '.join(ACTIVATIONS)}")
    shape = policy_shape(state)
    model = state["model"]

    def f32(key):
        try:
            return model[key].detach().cpu().to(torch.float32).numpy().copy()
        except KeyError:
            raise CheckpointError(f"checkpoint weights lack {key}") from None

    layer_ids = sorted(int(k.split(".")[2]) for k in model
                       if k.startswith("a2c_network.actor_mlp.") and k.endswith(".weight"))
    layers = [(f32(f"a2c_network.actor_mlp.{i}.weight"), f32(f"a2c_network.actor_mlp.{i}.bias")) for i in layer_ids]
    spec = PolicySpec(obs_mean=f32("running_mean_std.running_mean"), obs_var=f32("running_mean_std.running_var"),
                      layers=layers, mu_weight=f32("a2c_network.mu.weight"), mu_bias=f32("a2c_network.mu.bias"),
                      activation=activation, obs_clip=float(obs_clip), action_clip=float(action_clip))
    width = shape.num_observations
    for i, (w, b) in zip(layer_ids, layers):
        if w.shape[1] != width or b.shape != (w.shape[0],):
            raise CheckpointError(f"actor_mlp.{i} has shape {w.shape} / {b.shape}, expected (*, {width})")
        width = w.shape[0]
    if spec.mu_weight.shape != (shape.num_actions, width):
        raise CheckpointError(f"mu weight has shape {spec.mu_weight.shape}, expected ({shape.num_actions}, {width})")
    return spec


def _activation_module(name: str) -> nn.Module:
    return {"elu": nn.ELU, "relu": nn.ReLU, "tanh": nn.Tanh, "None": nn.Identity}[name]()


class DeterministicPolicy(nn.Module):
    """The rl_games deterministic policy as one small module: ``obs (N, num_obs) -> actions (N, num_actions)``.

    Input and output are float32; actions lie in ``[-action_clip, action_clip]``.
    Buffers: ``obs_mean``, ``obs_var`` ``(num_obs,)`` float32. Scriptable and ONNX-exportable.
    """

    def __init__(self, spec: PolicySpec):
        super().__init__()
        self.obs_clip = float(spec.obs_clip)
        self.norm_eps = float(spec.norm_eps)
        self.norm_clip = float(spec.norm_clip)
        self.action_clip = float(spec.action_clip)
        self.register_buffer("obs_mean", torch.from_numpy(spec.obs_mean.copy()))
        self.register_buffer("obs_var", torch.from_numpy(spec.obs_var.copy()))
        modules: List[nn.Module] = []
        for weight, bias in spec.layers:
            linear = nn.Linear(weight.shape[1], weight.shape[0])
            linear.weight.data.copy_(torch.from_numpy(weight))
            linear.bias.data.copy_(torch.from_numpy(bias))
            modules += [linear, _activation_module(spec.activation)]
        self.actor_mlp = nn.Sequential(*modules)
        self.mu = nn.Linear(spec.mu_weight.shape[1], spec.mu_weight.shape[0])
        self.mu.weight.data.copy_(torch.from_numpy(spec.mu_weight))
        self.mu.bias.data.copy_(torch.from_numpy(spec.mu_bias))
        self.eval()

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Actions ``(N, num_actions)`` in ``[-1, 1]`` for observations ``(N, num_obs)`` float32."""
        x = torch.clamp(obs, -self.obs_clip, self.obs_clip)
        x = (x - self.obs_mean) / torch.sqrt(self.obs_var + self.norm_eps)
        x = torch.clamp(x, -self.norm_clip, self.norm_clip)
        mu = self.mu(self.actor_mlp(x))
        return torch.clamp(mu, -self.action_clip, self.action_clip)


def load_policy(checkpoint, activation: str = "elu", obs_clip: float = 5.0) -> DeterministicPolicy:
    """Load ``checkpoint`` safely and rebuild its deterministic policy (eval mode, CPU).

    Raises:
        CheckpointError: missing, foreign or non-MLP checkpoint.
    """
    from dofbot_rl.rl.checkpoints import load_checkpoint

    return DeterministicPolicy(spec_from_checkpoint(load_checkpoint(checkpoint), activation, obs_clip))


def spec_arrays(spec: PolicySpec) -> Dict[str, np.ndarray]:
    """The numeric content of ``spec`` as the ``npz`` keys :class:`~dofbot_rl.sim2real.npz_policy.NumpyPolicy` reads."""
    arrays = {
        "obs_mean": spec.obs_mean, "obs_var": spec.obs_var,
        "mu_weight": spec.mu_weight, "mu_bias": spec.mu_bias,
        "num_layers": np.array(len(spec.layers), dtype=np.int64),
        "activation": np.array(spec.activation),
        "obs_clip": np.array(spec.obs_clip, dtype=np.float32),
        "norm_eps": np.array(spec.norm_eps, dtype=np.float32),
        "norm_clip": np.array(spec.norm_clip, dtype=np.float32),
        "action_clip": np.array(spec.action_clip, dtype=np.float32),
    }
    for i, (weight, bias) in enumerate(spec.layers):
        arrays[f"layer{i}_weight"] = weight
        arrays[f"layer{i}_bias"] = bias
    return arrays

