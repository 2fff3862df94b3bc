"""Physics backends behind one seam (:mod:`dofbot_rl.physics.base`).

``make_physics(cfg)`` picks the implementation from ``physics`` and ``sim_device``:
MuJoCo C (``mujoco.batch``) on ``cpu``, MuJoCo Warp on ``cuda:N``; both load the same
MJCF. The Isaac Sim backend lives in the Kit layer (``dofbot_rl.app``).
"""

from dofbot_rl.physics.base import PhysicsBackend, PhysicsError, SupportsStepCapture, grid_origins

__all__ = ["PhysicsBackend", "PhysicsError", "SupportsStepCapture", "grid_origins", "make_physics"]


def make_physics(cfg) -> PhysicsBackend:
    """Build the backend that ``cfg`` (a loaded :class:`dofbot_rl.config.MainConfig`) asks for.

    Raises:
        dofbot_rl.config.ConfigError: for an unknown backend, a missing model, or a CUDA
            device without the optional ``mujoco-warp`` install (``pip install -e .[gpu]``).
    """
    from dofbot_rl.config import ConfigError, model_path

    if cfg.physics != "mujoco":
        raise ConfigError(f"physics={cfg.physics} is not available headless: expected mujoco")
    env = cfg.task.env
    path = model_path(cfg)
    if cfg.sim_device == "cpu":
        from dofbot_rl.physics.mujoco_cpu import MujocoCpuBackend

        return MujocoCpuBackend(path, env.num_envs, env_spacing=env.env_spacing, dt=cfg.task.sim.dt)
    try:
        from dofbot_rl.physics.mujoco_warp import MujocoWarpBackend
    except ImportError as exc:
        raise ConfigError(
            f"sim_device={cfg.sim_device} needs MuJoCo Warp ({exc.name} is missing): "
            "pip install -e '.[gpu]', or use sim_device=cpu"
        ) from None
    return MujocoWarpBackend(path, env.num_envs, device=cfg.sim_device, env_spacing=env.env_spacing, dt=cfg.task.sim.dt)
