"""The physics seam: what the task asks of any simulator, batched over ``num_envs``.

Every backend (MuJoCo C on CPU, MuJoCo Warp on CUDA, Isaac Sim in Kit) implements
:class:`PhysicsBackend` and passes the same conformance tests
(``tests/test_physics_conformance.py``). Tensors live on ``backend.device``; joint order is
``dofbot_rl.robot.JOINT_NAMES``. :class:`SupportsDynamicsScales` is an optional extra
(per-env PD gains and link masses, for domain randomisation); both MuJoCo backends have it.
:class:`SupportsStepCapture` is another (one CUDA graph for a whole control step of the
task: torch ops and physics substeps); MuJoCo Warp has it.
"""

from typing import Callable, Optional, Protocol, runtime_checkable

import torch
from dofbot_rl.errors import DofbotRlError


class PhysicsError(DofbotRlError, RuntimeError):
    """A simulator failed (diverged, or its engine reported an error)."""


@runtime_checkable
class PhysicsBackend(Protocol):
    """Batched articulated-arm simulator used by the DofbotReacher task.

    Attributes:
        num_envs: number of simulated robots.
        num_dof: actuated joints per robot (6: 5 arm joints + gripper).
        device: torch device of every tensor below.
        dt: physics time step (s); a control step is ``n_substeps * dt``.
        env_origins: ``(num_envs, 3)`` m, world position of each robot's base (for
            display; task quantities are expressed relative to the env origin).
    """

    num_envs: int
    num_dof: int
    device: torch.device
    dt: float
    env_origins: torch.Tensor

    @property
    def dof_pos(self) -> torch.Tensor:
        """``(num_envs, num_dof)`` float32 joint positions (rad), current after ``step``/``reset``."""

    @property
    def dof_vel(self) -> torch.Tensor:
        """``(num_envs, num_dof)`` float32 joint velocities (rad/s)."""

    @property
    def ee_pose(self) -> torch.Tensor:
        """``(num_envs, 7)`` float32 pose of the end-effector body (link5), env frame:
        position (m) then quaternion (w, x, y, z)."""

    def set_joint_position_targets(self, targets: torch.Tensor, env_ids: Optional[torch.Tensor] = None) -> None:
        """Set PD position targets ``(len(env_ids) or num_envs, num_dof)`` rad."""

    def write_joint_state(self, env_ids: torch.Tensor, dof_pos: torch.Tensor, dof_vel: torch.Tensor) -> None:
        """Teleport robots ``env_ids`` (int64 index tensor) to ``dof_pos``/``dof_vel``
        ``(len(env_ids), num_dof)``; their targets become ``dof_pos``. Kinematics
        (``ee_pose``) are current on return."""

    def step(self, n_substeps: int) -> None:
        """Advance every robot by ``n_substeps`` physics steps of ``dt``.

        Raises:
            PhysicsError: if the engine reports an error or the state is not finite.
        """

    def close(self) -> None:
        """Release the engine's resources (threads, GPU memory)."""


@runtime_checkable
class SupportsDynamicsScales(Protocol):
    """Optional part of the seam: per-env PD gains and link masses (domain randomisation).

    A backend that implements it can scale, per env, its joints' PD stiffness and damping
    and its links' masses and inertias. Scales are relative to the nominal model (the MJCF),
    not cumulative: writing ones restores it. The task calls this only when
    ``task.randomization`` asks for gain or mass ranges other than ``[1, 1]``, and refuses to
    start on a backend without it.
    """

    def set_dynamics_scales(self, env_ids: torch.Tensor, pd_gain_scale: torch.Tensor, mass_scale: torch.Tensor) -> None:
        """Scale the dynamics of robots ``env_ids`` (int64 index tensor, ``n`` ids).

        Args:
            env_ids: ``(n,)`` the robots.
            pd_gain_scale: ``(n, num_dof)`` > 0, multiplies each joint's PD stiffness ``kp`` and
                damping ``kv``.
            mass_scale: ``(n,)`` > 0, multiplies every link's mass and rotational inertia
                (the derived constants follow).

        Takes effect at the next ``step``; call it before ``reset`` of the same envs.
        """


@runtime_checkable
class SupportsStepCapture(Protocol):
    """Optional part of the seam: record the task's whole control step (its torch ops and
    the ``step`` calls inside it) as one CUDA graph.

    Attributes:
        graph_version: changes whenever the backend's device arrays are re-created (graphs
            captured before then read stale memory and must be captured again).
    """

    graph_version: int

    def capture(self, fn: Callable[[], None]) -> Callable[[], None]:
        """Record ``fn()`` (not run) and return a replay function.

        ``fn`` must have run once eagerly before (kernels loaded) and must not synchronise
        with the host; tensors it allocates belong to the graph and are overwritten by
        each replay, so state carried between steps must be written in place.
        """

    def run_eagerly(self, fn: Callable[[], None]) -> None:
        """Run ``fn()`` now, its ``step`` calls launching their kernels directly (loading them),
        as the eager run before :meth:`capture` needs: no graph of the step alone is recorded."""


def grid_origins(num_envs: int, spacing: float, device: torch.device) -> torch.Tensor:
    """Env origins on a square grid in the XY plane, ``(num_envs, 3)`` m, centred on 0.

    ``spacing`` is the reference's ``envSpacing`` (1.0 m).
    """
    side = max(1, int(torch.ceil(torch.sqrt(torch.tensor(float(num_envs)))).item()))
    ids = torch.arange(num_envs, device=device)
    origins = torch.zeros(num_envs, 3, device=device)
    origins[:, 0] = (ids // side).float() * spacing
    origins[:, 1] = (ids % side).float() * spacing
    origins[:, :2] -= origins[:, :2].mean(dim=0)
    return origins
