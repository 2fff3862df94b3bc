"""The embedded GPU backend: MuJoCo Warp, the same MJCF as the CPU backend.

All state stays on the GPU: MuJoCo Warp's arrays are exposed to torch as zero-copy
views (``wp.to_torch``), warp launches on torch's current CUDA stream (no syncs
between the two), and one control step (``n_substeps`` ``mjw.step`` calls plus the
kinematics at the new state) is one captured CUDA graph: without graphs MuJoCo Warp
is 10-23x slower at this model size (measured in this project's physics survey; docs/benchmarks.md).
The task can go further (:meth:`MujocoWarpBackend.capture`): its whole control step,
torch ops and substeps together, as one CUDA graph.

First use compiles warp kernels (~50 s on a GPU); the cache (``~/.cache/warp`` or
``$WARP_CACHE_PATH``) makes later starts take about a second. Install with
``pip install -e '.[gpu]'``.
"""

import logging
from pathlib import Path
from typing import Callable, Dict, Optional

import mujoco
import torch
import warp as wp

wp.config.quiet = True  # before mujoco_warp initialises warp: no per-module compile lines
import mujoco_warp as mjw  # noqa: E402

from dofbot_rl import robot
from dofbot_rl.physics.base import PhysicsError, grid_origins

log = logging.getLogger(__name__)


class MujocoWarpBackend:
    """:class:`~dofbot_rl.physics.base.PhysicsBackend` on MuJoCo Warp (CUDA; warp's CPU device for smoke tests);
    also :class:`~dofbot_rl.physics.base.SupportsDynamicsScales` and (on CUDA)
    :class:`~dofbot_rl.physics.base.SupportsStepCapture`.

    Args:
        model_path: the Dofbot MJCF.
        num_envs: number of robots (worlds), > 0.
        device: ``cuda:N`` (or ``cpu`` to run warp's CPU device: slow, for tests only).
        env_spacing: grid spacing (m) of ``env_origins``.
        dt: physics time step (s); None keeps the MJCF's.

    Raises:
        ValueError: for ``num_envs`` < 1 or a model that is not the Dofbot.
    """

    def __init__(self, model_path: Path, num_envs: int, device: str = "cuda:0", env_spacing: float = 1.0,
                 dt: Optional[float] = None):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        wp.init()
        self.mj_model = mujoco.MjModel.from_xml_path(str(model_path))
        if dt is not None:
            self.mj_model.opt.timestep = float(dt)
        self.num_envs = int(num_envs)
        self.num_dof = robot.NUM_DOF
        self.device = torch.device(device)
        self.dt = float(self.mj_model.opt.timestep)
        self.env_origins = grid_origins(self.num_envs, env_spacing, self.device)
        m = self.mj_model
        try:
            qadr = [m.joint(n).qposadr[0] for n in robot.JOINT_NAMES]
            dadr = [m.joint(n).dofadr[0] for n in robot.JOINT_NAMES]
            act = [m.actuator(n).id for n in robot.JOINT_NAMES]
            self._ee_body = m.body(robot.EE_LINK).id
        except KeyError as exc:
            raise ValueError(f"{model_path} is not a Dofbot model: {exc}") from None
        if qadr != list(range(self.num_dof)) or dadr != list(range(self.num_dof)) or act != list(range(self.num_dof)):
            raise ValueError(f"{model_path}: joints and actuators must come first and in task order")

        self._wp_device = wp.get_device("cpu" if self.device.type == "cpu" else f"cuda:{self.device.index or 0}")
        with wp.ScopedDevice(self._wp_device):
            if self.device.type == "cuda":
                # torch runs on warp's (capturable, non-default) stream: torch ops and the captured
                # graphs stay ordered without syncs.
                self._stream = wp.get_stream(self._wp_device)
                torch.cuda.set_stream(wp.stream_to_torch(self._stream))
            mj_data = mujoco.MjData(m)
            mujoco.mj_forward(m, mj_data)
            self._m = mjw.put_model(m)
            self._d = mjw.put_data(m, mj_data, nworld=self.num_envs)
            self._reset_mask_wp = wp.zeros(self.num_envs, dtype=bool)
        self._views()
        self._graphs: Dict[int, object] = {}
        self.graph_version = 0  # bumped when the device model is re-created (captured graphs go stale)
        # step() launches its substeps itself, without its own graph: in capture() (into the
        # caller's graph) and in run_eagerly()
        self._launch_directly = False
        self._scaled_fields: Optional[Dict[str, torch.Tensor]] = None  # set by set_dynamics_scales

    def _views(self) -> None:
        d = self._d
        self._qpos = wp.to_torch(d.qpos)  # (num_envs, nq) float32, shares memory
        self._qvel = wp.to_torch(d.qvel)
        self._ctrl = wp.to_torch(d.ctrl)
        self._xpos = wp.to_torch(d.xpos)  # (num_envs, nbody, 3)
        self._xquat = wp.to_torch(d.xquat)  # (num_envs, nbody, 4), MuJoCo order (w, x, y, z)
        self._reset_mask = wp.to_torch(self._reset_mask_wp)

    # -- state ---------------------------------------------------------------------------
    @property
    def dof_pos(self) -> torch.Tensor:
        """``(num_envs, 6)`` float32 rad (a view of MuJoCo Warp's ``qpos``)."""
        return self._qpos[:, : self.num_dof]

    @property
    def dof_vel(self) -> torch.Tensor:
        """``(num_envs, 6)`` float32 rad/s (a view)."""
        return self._qvel[:, : self.num_dof]

    @property
    def ee_pose(self) -> torch.Tensor:
        """``(num_envs, 7)`` float32: link5 position (m) and quaternion (w, x, y, z)."""
        return torch.cat((self._xpos[:, self._ee_body], self._xquat[:, self._ee_body]), dim=-1)

    # -- commands ------------------------------------------------------------------------
    def set_joint_position_targets(self, targets: torch.Tensor, env_ids: Optional[torch.Tensor] = None) -> None:
        """Write PD targets (rad) into ``ctrl`` (on the GPU, no copy to the host)."""
        if env_ids is None:
            self._ctrl[:, : self.num_dof] = targets
        else:
            self._ctrl[env_ids, : self.num_dof] = targets

    def write_joint_state(self, env_ids: torch.Tensor, dof_pos: torch.Tensor, dof_vel: torch.Tensor) -> None:
        """Reset worlds ``env_ids`` (MuJoCo Warp ``reset_data`` by mask), set their state and targets."""
        if env_ids.numel() == 0:
            return
        ids = env_ids.to(self.device)
        self._reset_mask.zero_()
        self._reset_mask[ids] = True
        with wp.ScopedDevice(self._wp_device):
            mjw.reset_data(self._m, self._d, reset=self._reset_mask_wp)
            self._qpos[ids, : self.num_dof] = dof_pos.to(self.device)
            self._qvel[ids, : self.num_dof] = dof_vel.to(self.device)
            self._ctrl[ids, : self.num_dof] = dof_pos.to(self.device)
            mjw.kinematics(self._m, self._d)

    #: Model fields made per-world by set_dynamics_scales: the ones it writes and the
    #: constants set_const derives from the masses.
    _PER_WORLD_FIELDS = ("actuator_gainprm", "actuator_biasprm", "body_mass", "body_inertia", "body_subtreemass",
                         "body_invweight0", "dof_invweight0", "actuator_acc0")

    def set_dynamics_scales(self, env_ids: torch.Tensor, pd_gain_scale: torch.Tensor, mass_scale: torch.Tensor) -> None:
        """Per-env PD gains and link masses (:class:`~dofbot_rl.physics.base.SupportsDynamicsScales`).

        The first call re-creates the device model with per-world ``actuator_gainprm`` /
        ``actuator_biasprm`` (position actuators: ``kp = gainprm[0] = -biasprm[1]``,
        ``kv = -biasprm[2]``), ``body_mass`` / ``body_inertia`` and the constants derived
        from them, and drops the captured graphs (re-captured at the next ``step``); until
        then every world shares one model, as before. Each call writes the scaled fields on
        the device (no host sync) and runs MuJoCo Warp's ``set_const`` for the masses.

        Args:
            env_ids: ``(n,)`` int64. pd_gain_scale: ``(n, 6)`` > 0. mass_scale: ``(n,)`` > 0.
        """
        if env_ids.numel() == 0:
            return
        if self._scaled_fields is None:
            m = self.mj_model
            if (m.actuator_gaintype[: self.num_dof] != int(mujoco.mjtGain.mjGAIN_FIXED)).any() or (
                    m.actuator_biastype[: self.num_dof] != int(mujoco.mjtBias.mjBIAS_AFFINE)).any():
                raise ValueError("set_dynamics_scales needs position (fixed-gain, affine-bias) actuators")
            with wp.ScopedDevice(self._wp_device):
                self._m = mjw.put_model(m, batch_sizes={name: self.num_envs for name in self._PER_WORLD_FIELDS})
            self._graphs.clear()
            self.graph_version += 1
            self._scaled_fields = {name: wp.to_torch(getattr(self._m, name)) for name in self._PER_WORLD_FIELDS[:4]}
            # nominal values, (1, ...) on the device
            self._nominal = {name: view[:1].clone() for name, view in self._scaled_fields.items()}
        f, nom, n = self._scaled_fields, self._nominal, self.num_dof
        ids = env_ids.to(self.device)
        kp = pd_gain_scale.to(self.device, torch.float32)
        mass = mass_scale.to(self.device, torch.float32)
        f["actuator_gainprm"][ids, :n, 0] = nom["actuator_gainprm"][:, :n, 0] * kp
        f["actuator_biasprm"][ids, :n, 1] = nom["actuator_biasprm"][:, :n, 1] * kp
        f["actuator_biasprm"][ids, :n, 2] = nom["actuator_biasprm"][:, :n, 2] * kp
        f["body_mass"][ids] = nom["body_mass"] * mass[:, None]
        f["body_inertia"][ids] = nom["body_inertia"] * mass[:, None, None]
        with wp.ScopedDevice(self._wp_device):
            mjw.set_const(self._m, self._d)

    def _substeps(self, n_substeps: int) -> None:
        for _ in range(n_substeps):
            mjw.step(self._m, self._d)
        mjw.kinematics(self._m, self._d)  # xpos / xquat at the new state

    def _state_arrays(self):
        d = self._d
        return tuple(a for a in (d.qpos, d.qvel, d.act, d.qacc_warmstart, d.time) if a.size > 0)

    def step(self, n_substeps: int) -> None:
        """Advance every world ``n_substeps`` steps: one CUDA-graph launch (captured on first use)."""
        n = int(n_substeps)
        with wp.ScopedDevice(self._wp_device):
            if self.device.type != "cuda" or self._launch_directly:
                self._substeps(n)  # inside capture() / run_eagerly(): directly, or into the caller's graph
                return
            graph = self._graphs.get(n)
            if graph is None:
                # Compile and load the kernels outside the capture, then undo that step.
                state = [wp.to_torch(a).clone() for a in self._state_arrays()]
                self._substeps(n)
                for a, saved in zip(self._state_arrays(), state):
                    wp.to_torch(a).copy_(saved)
                mjw.kinematics(self._m, self._d)
                with wp.ScopedCapture(device=self._wp_device, stream=self._stream) as capture:
                    self._substeps(n)
                graph = self._graphs[n] = capture.graph
            wp.capture_launch(graph, stream=self._stream)

    def run_eagerly(self, fn: Callable[[], None]) -> None:
        """Run ``fn()`` now with :meth:`step` launching the substeps' kernels directly (the first run
        loads them), not through a graph of its own: the eager run before :meth:`capture`, which
        records those kernels into the caller's graph. :class:`~dofbot_rl.physics.base.SupportsStepCapture`."""
        self._launch_directly = True
        try:
            fn()
        finally:
            self._launch_directly = False

    def capture(self, fn: Callable[[], None]) -> Callable[[], None]:
        """Record ``fn()`` -- torch ops and :meth:`step` calls -- as one CUDA graph (not run); return its replay.

        :class:`~dofbot_rl.physics.base.SupportsStepCapture`. The capture runs on a side
        stream (non-blocking, as torch's graph capture needs) that warp joins as an external
        capture; each replay runs on the backend's stream, ordered with everything else.
        ``fn`` must have run eagerly once (:meth:`run_eagerly`: warp kernels loaded) and must
        not synchronise with the host.

        Raises:
            RuntimeError: on a CPU device (no CUDA graphs there).
        """
        if self.device.type != "cuda":
            raise RuntimeError("capture() needs a CUDA device")
        graph = torch.cuda.CUDAGraph()
        side = torch.cuda.Stream(device=self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        side_wp = wp.stream_from_torch(side)
        with wp.ScopedDevice(self._wp_device), wp.ScopedStream(side_wp), torch.cuda.graph(graph, stream=side):
            wp.capture_begin(stream=side_wp, force_module_load=False, external=True)
            self._launch_directly = True
            try:
                fn()
            finally:
                self._launch_directly = False
                wp.capture_end(stream=side_wp)
        torch.cuda.current_stream(self.device).wait_stream(side)
        return graph.replay

    def check_finite(self) -> None:
        """Raise :class:`PhysicsError` if any world's state is not finite (syncs: not for the step loop)."""
        bad = ~torch.isfinite(self._qpos).all(dim=1)
        if bool(bad.any()):
            raise PhysicsError(f"MuJoCo Warp state is not finite in envs {torch.nonzero(bad).flatten()[:5].tolist()}")

    def close(self) -> None:
        """Drop graphs and device arrays."""
        self._graphs.clear()
        self.graph_version += 1
        self._m = self._d = None
