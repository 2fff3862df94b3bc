"""The Isaac Sim backend behind the physics seam (Kit only).

Scene (built by :mod:`dofbot_rl.app.commands`, paths in :mod:`dofbot_rl.scene`):
``/World/envs/env_<i>/Dofbot`` referencing the repository's ``data/robots/dofbot/dofbot.usda``,
copied on a grid by the core API's ``GridCloner``, plus one PointInstancer holding every
goal and fingertip marker (visual spheres, no physics, no view: a World reset leaves it alone).

The backend reads and writes the robots through an articulation view over
``/World/envs/env_.*/Dofbot`` and a rigid-body view over their ``link5``; tensors stay on
the simulation device (GPU pipeline on CUDA). Physics is stepped only by :meth:`step`
(``/app/player/playSimulations`` is off while the backend lives: set once its checks
passed, restored by :meth:`close` and on every failure), so one control step of the task
is exactly ``control_frequency_inv`` PhysX steps, as on MuJoCo. Steps happen only while
the timeline plays (the sim loop pauses and stops runs with the toolbar).

Known difference to MuJoCo: after :meth:`reset` the link poses PhysX reports are those
of the last step until the next one, unless the physics view offers
``update_articulations_kinematic`` (newer Isaac Sim); the reference task had the same lag.
"""

import logging
import math
from typing import Optional

import torch

from dofbot_rl import robot
from dofbot_rl.app import compat
from dofbot_rl.physics.base import PhysicsError
from dofbot_rl.scene import ROBOTS_EXPR, robot_link_expr

log = logging.getLogger(__name__)

EE_EXPR = robot_link_expr(robot.EE_LINK)
#: The views the backend adds to the World's scene: physics views only (markers have none).
VIEW_NAMES = ("dofbot_view", "dofbot_ee_view")


async def create_world_async(api, physics_dt: float, device: str):
    """The core API's ``World`` for this scene, initialised for the extension workflow.

    Args:
        api: :class:`dofbot_rl.app.compat.CoreApi`.
        physics_dt: physics step (s).
        device: ``cpu`` or ``cuda:N`` (GPU dynamics and pipeline on CUDA).
    """
    world = api.World.instance()
    if world is not None:
        await world.stop_async()
        world.clear_instance()
    world = api.World(physics_dt=physics_dt, rendering_dt=1.0 / 60.0, stage_units_in_meters=1.0, backend="torch",
                      device=device)
    await world.initialize_simulation_context_async()
    physics = world.get_physics_context()
    on_gpu = device.startswith("cuda")
    physics.enable_gpu_dynamics(on_gpu)
    physics.set_broadphase_type("GPU" if on_gpu else "MBP")
    return world


class IsaacPhysicsBackend:
    """:class:`~dofbot_rl.physics.base.PhysicsBackend` on PhysX through the core API's views.

    Build it with :meth:`create_async`. Attributes as in the protocol.
    """

    def __init__(self, api, world, robots, ee, markers, env_origins: torch.Tensor, dof_ids: torch.Tensor,
                 device: torch.device, dt: float):
        self.api = api
        self.world = world
        self._robots, self._ee = robots, ee
        self._markers = markers  # dofbot_rl.usd_asset.MarkerWriter
        self._marker_origins = env_origins.repeat(2, 1)  # (2 num_envs, 3): goals, then tips
        self.env_origins = env_origins
        self._dof_ids = dof_ids
        self.num_envs = int(env_origins.shape[0])
        self.num_dof = robot.NUM_DOF
        self.device = device
        self.dt = float(dt)
        self._fabric = True  # push physics results to Fabric on the last substep (viewport)
        self._nonfinite = torch.zeros(self.num_envs, dtype=torch.bool, device=device)
        self._closed = False

    @classmethod
    async def create_async(cls, api, world, env_origins, device: str) -> "IsaacPhysicsBackend":
        """Make the views over the built scene, start the simulation and check the robot.

        Args:
            api: :class:`dofbot_rl.app.compat.CoreApi`.
            world: from :func:`create_world_async`.
            env_origins: ``(num_envs, 3)`` m, the cloner's env positions.
            device: the simulation device.

        Raises:
            PhysicsError: the articulation lacks a Dofbot joint or the view count is wrong.
        """
        scene = world.scene
        _remove_views(scene)
        robots = api.articulation_view(ROBOTS_EXPR, VIEW_NAMES[0])
        ee = api.rigid_view(EE_EXPR, VIEW_NAMES[1])
        for view in (robots, ee):
            scene.add(view)
        await world.reset_async()
        compat.app_steps_physics(False)
        try:
            origins = torch.as_tensor(env_origins, dtype=torch.float32, device=device).reshape(-1, 3)
            if robots.count != origins.shape[0]:
                raise PhysicsError(f"{robots.count} Dofbot articulations found under /World/envs, expected {origins.shape[0]}")
            try:
                dof_ids = torch.tensor([robots.get_dof_index(n) for n in robot.JOINT_NAMES], dtype=torch.long,
                                       device=device)
            except Exception as exc:  # the views raise plain exceptions for unknown names
                raise PhysicsError(f"the Dofbot USD lacks a joint of {robot.JOINT_NAMES}: {exc}") from None
            import omni.usd

            from dofbot_rl.usd_asset import MarkerWriter

            markers = MarkerWriter(omni.usd.get_context().get_stage())
            if markers.num_points != 2 * origins.shape[0]:
                raise PhysicsError(f"the marker instancer holds {markers.num_points} points, "
                                   f"expected {2 * origins.shape[0]}")
            backend = cls(api, world, robots, ee, markers, origins, dof_ids, torch.device(device),
                          world.get_physics_dt())
        except BaseException:
            compat.app_steps_physics(True)
            _remove_views(scene)
            raise
        log.info("Isaac Sim backend: %d robots on %s, dt %.5f s", backend.num_envs, device, backend.dt)
        return backend

    # -- state -------------------------------------------------------------------------
    @property
    def dof_pos(self) -> torch.Tensor:
        """``(num_envs, 6)`` float32 rad, ``robot.JOINT_NAMES`` order."""
        return self._robots.get_joint_positions(clone=False)[:, self._dof_ids].float()

    @property
    def dof_vel(self) -> torch.Tensor:
        """``(num_envs, 6)`` float32 rad/s."""
        return self._robots.get_joint_velocities(clone=False)[:, self._dof_ids].float()

    @property
    def ee_pose(self) -> torch.Tensor:
        """``(num_envs, 7)`` float32: link5 position (m, env frame) and quaternion (w, x, y, z)."""
        pos, quat = self._ee.get_world_poses(clone=False)
        return torch.cat([pos - self.env_origins, quat], dim=-1).float()

    # -- commands ------------------------------------------------------------------------
    def set_joint_position_targets(self, targets: torch.Tensor, env_ids: Optional[torch.Tensor] = None) -> None:
        """PD targets (rad) for ``env_ids`` (all when None)."""
        self._robots.set_joint_position_targets(targets.to(self.device), indices=env_ids, joint_indices=self._dof_ids)

    def reset(self, env_ids: torch.Tensor, dof_pos: torch.Tensor, dof_vel: torch.Tensor) -> None:
        """Teleport robots ``env_ids`` to ``dof_pos`` / ``dof_vel``; targets become ``dof_pos``."""
        if env_ids.numel() == 0:
            return
        ids = env_ids.to(self.device, torch.long)
        self._robots.set_joint_positions(dof_pos.to(self.device), indices=ids, joint_indices=self._dof_ids)
        self._robots.set_joint_velocities(dof_vel.to(self.device), indices=ids, joint_indices=self._dof_ids)
        self._robots.set_joint_position_targets(dof_pos.to(self.device), indices=ids, joint_indices=self._dof_ids)
        sim_view = getattr(self.world, "physics_sim_view", None)
        if sim_view is not None and hasattr(sim_view, "update_articulations_kinematic"):
            sim_view.update_articulations_kinematic()

    def step(self, n_substeps: int) -> None:
        """``n_substeps`` PhysX steps of ``dt``; the last one updates Fabric for the viewport.

        The joint state's finiteness is recorded on the device without a host sync (on a
        GPU) and checked by :meth:`check_finite`, which the task calls where it already
        syncs (its time-out check); on the CPU it is checked here.

        Raises:
            PhysicsError: the timeline is not playing (the sim loop does not step then), or
                (CPU) the joint state is no longer finite.
        """
        for i in range(int(n_substeps)):
            if not self.api.physics_step(self.world, update_fabric=self._fabric and i == n_substeps - 1):
                raise PhysicsError("the timeline is not playing: press Play (the run pauses while it is paused)")
        q = self._robots.get_joint_positions(clone=False)
        self._nonfinite |= ~torch.isfinite(q).all(dim=1)
        if self.device.type == "cpu":
            self.check_finite()

    def check_finite(self) -> None:
        """Raise :class:`PhysicsError` if any robot's joint state was not finite after a step
        (one host sync: call where the loop already syncs)."""
        if bool(self._nonfinite.any()):
            bad = torch.nonzero(self._nonfinite).flatten()[:5].tolist()
            raise PhysicsError(f"PhysX joint state is not finite in envs {bad}: the simulation diverged")

    def set_viewport_sync(self, enabled: bool) -> None:
        """Whether steps push results to Fabric (off when the viewport is frozen).

        Switching it back on pushes the current physics state to Fabric once, so a viewport
        that was frozen in the *UI only* / *None* modes does not keep the pose it froze at
        when no step follows (the run ended, or the scene only stands).
        """
        enabled = bool(enabled)
        if enabled and not self._fabric and not self._closed:
            sim_view = getattr(self.world, "physics_sim_view", None)
            if self.device.type == "cuda" and sim_view is not None and hasattr(sim_view, "update_articulations_kinematic"):
                sim_view.update_articulations_kinematic()  # link poses from the joint state (GPU pipeline)
            self.api.push_to_fabric(self.world)
        self._fabric = enabled

    # -- markers -------------------------------------------------------------------------
    def update_markers(self, goal_pos: torch.Tensor, tip_pos: torch.Tensor) -> None:
        """Move every goal and fingertip marker: one device-to-host copy and one USD write.

        Args:
            goal_pos, tip_pos: ``(num_envs, 3)`` m, env frame.
        """
        positions_w = torch.cat((goal_pos.detach(), tip_pos.detach())) + self._marker_origins
        self._markers.write(positions_w.cpu().numpy())

    def close(self) -> None:
        """Stop owning the physics: the app steps the simulation again; views leave the scene."""
        if self._closed:
            return
        self._closed = True
        compat.app_steps_physics(True)
        _remove_views(self.world.scene)


def _remove_views(scene) -> None:
    """Take the backend's views out of the scene registry. ``registry_only=True``: the
    default also deletes the views' prims (a non-undoable DeletePrims of every robot)."""
    for name in VIEW_NAMES:
        if scene.object_exists(name):
            scene.remove_object(name, registry_only=True)


def grid_spacing(env_spacing: float) -> float:
    """The cloner's grid spacing (m): the task's ``env_spacing`` (the reference's 1.0 m)."""
    if not (env_spacing > 0 and math.isfinite(env_spacing)):
        raise ValueError(f"env_spacing must be > 0 m, got {env_spacing}")
    return float(env_spacing)
