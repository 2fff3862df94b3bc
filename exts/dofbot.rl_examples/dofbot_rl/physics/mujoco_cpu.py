"""The embedded CPU backend: MuJoCo C through :class:`mujoco.batch.Batch`.

``num_envs`` copies of the Dofbot MJCF step on a thread pool (all cores by default);
the batch's live float64 state rows are wrapped by ``torch.from_numpy`` without copies
and converted to float32 once per read. Bitwise deterministic at any thread count
(no contacts). Measured ~100k env-steps/s on 2 cores at 2048 envs
(docs/benchmarks.md; ``dofbot-rl bench`` prints this machine's figure).
"""

from pathlib import Path
from typing import Optional

import mujoco
import mujoco.batch
import numpy as np
import torch

from dofbot_rl import robot
from dofbot_rl.physics.base import PhysicsError, grid_origins


class MujocoCpuBackend:
    """:class:`~dofbot_rl.physics.base.PhysicsBackend` on MuJoCo C, CPU only; also
    :class:`~dofbot_rl.physics.base.SupportsDynamicsScales`.

    Args:
        model_path: the Dofbot MJCF (``data/robots/dofbot/dofbot.xml``).
        num_envs: number of robots (> 0).
        env_spacing: grid spacing (m) of ``env_origins``.
        dt: physics time step (s); None keeps the MJCF's ``timestep``.
        nthread: worker threads; 0 uses every core.

    Raises:
        ValueError: if ``num_envs`` < 1 or the model lacks the Dofbot's joints.
    """

    def __init__(self, model_path: Path, num_envs: int, env_spacing: float = 1.0, dt: Optional[float] = None,
                 nthread: int = 0):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.model = mujoco.MjModel.from_xml_path(str(model_path))
        if dt is not None:
            self.model.opt.timestep = float(dt)
        self.num_envs = int(num_envs)
        self.num_dof = robot.NUM_DOF
        self.device = torch.device("cpu")
        self.dt = float(self.model.opt.timestep)
        self.env_origins = grid_origins(self.num_envs, env_spacing, self.device)

        try:
            self._qadr = np.array([self.model.joint(n).qposadr[0] for n in robot.JOINT_NAMES])
            self._dadr = np.array([self.model.joint(n).dofadr[0] for n in robot.JOINT_NAMES])
            self._act = np.array([self.model.actuator(n).id for n in robot.JOINT_NAMES])
            self._ee_body = self.model.body(robot.EE_LINK).id
        except KeyError as exc:
            raise ValueError(f"{model_path} is not a Dofbot model: {exc}") from None

        self._batch = mujoco.batch.Batch(self.model, self.num_envs, nthread=nthread)
        self._batch.reset()
        # Live (num_envs, n) float64 rows of the batch; torch views share their memory.
        self._qpos = torch.from_numpy(self._batch.bind("qpos"))
        self._qvel = torch.from_numpy(self._batch.bind("qvel"))
        self._ctrl = torch.from_numpy(self._batch.bind("ctrl"))
        self._xpos_np = self._batch.bind("xpos")
        self._xquat_np = self._batch.bind("xquat")
        self._contiguous = bool(np.array_equal(self._qadr, np.arange(self.num_dof)) and np.array_equal(self._act, np.arange(self.num_dof)))
        # Per-env model fields of set_dynamics_scales, expanded on its first call: (num_envs, ...) float64.
        self._scaled_fields = None

    # -- state -------------------------------------------------------------------------
    @property
    def dof_pos(self) -> torch.Tensor:
        """``(num_envs, 6)`` float32 rad (a fresh tensor)."""
        return self._qpos[:, self._qadr].float()

    @property
    def dof_vel(self) -> torch.Tensor:
        """``(num_envs, 6)`` float32 rad/s (a fresh tensor)."""
        return self._qvel[:, self._dadr].float()

    @property
    def ee_pose(self) -> torch.Tensor:
        """``(num_envs, 7)`` float32: link5 position (m) and quaternion (w, x, y, z)."""
        pos = torch.from_numpy(np.ascontiguousarray(self._xpos_np[:, self._ee_body]))
        quat = torch.from_numpy(np.ascontiguousarray(self._xquat_np[:, self._ee_body]))
        return torch.cat([pos, quat], dim=-1).float()

    # -- commands ------------------------------------------------------------------------
    def set_joint_position_targets(self, targets: torch.Tensor, env_ids: Optional[torch.Tensor] = None) -> None:
        """Write PD targets (rad) into the actuators' ``ctrl``; see the protocol."""
        values = targets.detach().to("cpu", torch.float64)
        if env_ids is None:
            if self._contiguous:
                self._ctrl.copy_(values)
            else:
                self._ctrl[:, self._act] = values
        else:
            ids = env_ids.to("cpu", torch.long)
            self._ctrl[ids[:, None], torch.from_numpy(self._act)] = values

    def write_joint_state(self, env_ids: torch.Tensor, dof_pos: torch.Tensor, dof_vel: torch.Tensor) -> None:
        """Reset robots ``env_ids`` to ``dof_pos``/``dof_vel`` and hold them there."""
        ids = env_ids.to("cpu", torch.long)
        if ids.numel() == 0:
            return
        ids_np = ids.numpy()
        self._batch.reset(ids_np, stage=mujoco.mjtStage.mjSTAGE_NONE)
        cols_q, cols_v = torch.from_numpy(self._qadr), torch.from_numpy(self._dadr)
        self._qpos[ids[:, None], cols_q] = dof_pos.detach().to("cpu", torch.float64)
        self._qvel[ids[:, None], cols_v] = dof_vel.detach().to("cpu", torch.float64)
        self._ctrl[ids[:, None], torch.from_numpy(self._act)] = dof_pos.detach().to("cpu", torch.float64)
        self._batch.forward(ids_np, stage=mujoco.mjtStage.mjSTAGE_POS)

    def set_dynamics_scales(self, env_ids: torch.Tensor, pd_gain_scale: torch.Tensor, mass_scale: torch.Tensor) -> None:
        """Per-env PD gains and link masses (:class:`~dofbot_rl.physics.base.SupportsDynamicsScales`).

        The first call gives the batch per-simulation ``actuator_gainprm`` / ``actuator_biasprm``
        (position actuators: ``kp = gainprm[0] = -biasprm[1]``, ``kv = -biasprm[2]``) and
        ``body_mass`` / ``body_inertia``; ``set_const`` then recomputes the constants derived
        from the masses (subtree masses, inverse weights) of ``env_ids`` only.

        Args:
            env_ids: ``(n,)`` int64. pd_gain_scale: ``(n, 6)`` > 0. mass_scale: ``(n,)`` > 0.
        """
        ids = env_ids.to("cpu", torch.long).numpy()
        if ids.size == 0:
            return
        if self._scaled_fields is None:
            m = self.model
            affine = int(mujoco.mjtBias.mjBIAS_AFFINE)
            if (m.actuator_gaintype[self._act] != int(mujoco.mjtGain.mjGAIN_FIXED)).any() or (m.actuator_biastype[self._act] != affine).any():
                raise ValueError("set_dynamics_scales needs position (fixed-gain, affine-bias) actuators")
            self._scaled_fields = {name: self._batch.expand(name) for name in
                                   ("actuator_gainprm", "actuator_biasprm", "body_mass", "body_inertia")}
        f, m, act = self._scaled_fields, self.model, self._act
        kp = pd_gain_scale.detach().to("cpu", torch.float64).numpy()
        mass = mass_scale.detach().to("cpu", torch.float64).numpy()
        rows, cols = ids[:, None], act[None, :]
        f["actuator_gainprm"][rows, cols, 0] = m.actuator_gainprm[act, 0] * kp
        f["actuator_biasprm"][rows, cols, 1] = m.actuator_biasprm[act, 1] * kp
        f["actuator_biasprm"][rows, cols, 2] = m.actuator_biasprm[act, 2] * kp
        f["body_mass"][ids] = m.body_mass * mass[:, None]
        f["body_inertia"][ids] = m.body_inertia * mass[:, None, None]
        self._batch.set_const(ids)

    def step(self, n_substeps: int) -> None:
        """Advance all robots ``n_substeps`` steps; kinematics current at the new state."""
        self._batch.step(nstep=int(n_substeps), stage=mujoco.mjtStage.mjSTAGE_POS)
        if not torch.isfinite(self._qpos).all():
            bad = torch.nonzero(~torch.isfinite(self._qpos).all(dim=1)).flatten()[:5].tolist()
            raise PhysicsError(f"MuJoCo state is not finite in envs {bad}: the simulation diverged")

    def close(self) -> None:
        """Drop the batch (its thread pool ends with it)."""
        self._batch = None
