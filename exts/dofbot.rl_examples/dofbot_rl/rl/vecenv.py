"""rl_games glue: the vec-env adapter and its one, idempotent registration.

Registered the way IsaacGymEnvs / OmniIsaacGymEnvs do it: vec-env type ``RLGPU`` and
env name ``rlgpu`` (the train yaml's ``env_name``). The adapter is the last wrapper:
it moves actions to the sim device, observations and rewards to the rl device, and
returns ``time_outs`` for value bootstrapping.
"""

from typing import Callable, Dict, Optional

import torch

#: rl_games env name and vec-env type used by config/train/*.yaml.
ENV_NAME = "rlgpu"
VECENV_TYPE = "RLGPU"


class RlGamesVecEnv:
    """rl_games ``IVecEnv`` over a task (``reset()``, ``step(actions)``, ``get_env_info()``).

    Args:
        task: a task with ``num_envs``, ``num_observations``, ``num_actions``, ``reset()``
            and ``step(actions)`` (e.g. :class:`dofbot_rl.tasks.DofbotReacher`).
        rl_device: where rl_games keeps its tensors (``cpu`` / ``cuda:N``).
    """

    def __init__(self, task, rl_device: str):
        from dofbot_rl.rl.rlg_compat import gym_spaces  # rl_games 1.6.1 (gym) or 1.6.5 (gymnasium)
        import numpy as np

        spaces = gym_spaces()
        self.task = task
        self.rl_device = torch.device(rl_device)
        self.num_envs = task.num_envs
        clip_obs, clip_act = float(task.cfg.clip_observations), float(task.cfg.clip_actions)
        self.observation_space = spaces.Box(-clip_obs, clip_obs, (task.num_observations,), dtype=np.float32)
        self.action_space = spaces.Box(-clip_act, clip_act, (task.num_actions,), dtype=np.float32)

    def reset(self) -> Dict[str, torch.Tensor]:
        """Reset all envs; returns ``{"obs": (num_envs, 29)}`` on the rl device."""
        return {"obs": self.task.reset().to(self.rl_device)}

    def step(self, actions: torch.Tensor):
        """One control step: ``({"obs"}, rewards (num_envs,), dones (num_envs,) uint8, infos)``."""
        obs, rew, reset, extras = self.task.step(actions.to(self.task.device))
        infos = {"time_outs": extras["time_outs"].to(self.rl_device)}
        if "episode" in extras:
            infos["episode"] = extras["episode"]
        return {"obs": obs.to(self.rl_device)}, rew.to(self.rl_device), reset.to(self.rl_device, torch.uint8), infos

    def get_number_of_agents(self) -> int:
        """Single-agent task: 1."""
        return 1

    def get_env_info(self) -> Dict[str, object]:
        """Spaces and sizes for rl_games (no asymmetric critic: ``state_space`` absent)."""
        return {"observation_space": self.observation_space, "action_space": self.action_space, "agents": 1, "value_size": 1}

    def set_train_info(self, env_frames, *args, **kwargs) -> None:
        """rl_games curriculum hook; the reacher has no curriculum."""

    def get_env_state(self):
        """rl_games checkpoint hook; the reacher keeps no state worth saving."""
        return None

    def set_env_state(self, env_state) -> None:
        """rl_games checkpoint hook; nothing to restore."""


#: The creator registered now (what :func:`release_rl_games` compares against).
_registered: Optional[Callable[..., RlGamesVecEnv]] = None


def _no_env(*args, **kwargs):
    raise RuntimeError(f"no environment is registered as {ENV_NAME!r}: the run that registered one has ended")


def register_rl_games(env_creator: Callable[..., RlGamesVecEnv]) -> None:
    """Register ``env_creator`` with rl_games as env ``rlgpu`` / vec-env ``RLGPU`` (idempotent).

    rl_games keeps the creator in module-level registries; call :func:`release_rl_games`
    when the run ends, else they keep its env (and the task and physics behind it) alive.
    """
    global _registered
    from rl_games.common import env_configurations, vecenv

    vecenv.register(VECENV_TYPE, lambda config_name, num_actors, **kwargs: env_creator())
    env_configurations.register(ENV_NAME, {"vecenv_type": VECENV_TYPE, "env_creator": lambda **kwargs: env_creator()})
    _registered = env_creator


def registered_creator() -> Optional[Callable[..., RlGamesVecEnv]]:
    """The creator :func:`register_rl_games` registered last and nobody released, or None."""
    return _registered


def release_rl_games(env_creator: Optional[Callable[..., RlGamesVecEnv]] = None) -> None:
    """Drop rl_games' reference to a run's env: the registries then hold a creator that raises.

    Args:
        env_creator: release only if this is still the registered creator (a later run's
            registration stays); ``None`` releases whatever is registered.
    """
    global _registered
    if _registered is None or (env_creator is not None and env_creator is not _registered):
        return
    register_rl_games(_no_env)
    _registered = None
