"""Pure, batched math of the reacher task: no simulator, no ``self``.

Every function takes tensors and floats, works on any torch device and returns one
value per env. Numbers come from the reference DofbotReacher task
(docs/task.md); where a function has a reference counterpart its name
is given.
"""

from typing import Dict, Tuple

import torch


# ----------------------------------------------------------------------------------
# Quaternions (w, x, y, z)
# ----------------------------------------------------------------------------------
def _hamilton_table() -> torch.Tensor:
    """``(16, 4)`` table T with ``(a * b)_i = sum_jk a_j b_k T[4 j + k, i]`` (w, x, y, z)."""
    table = torch.zeros(4, 4, 4)
    # (j, k) -> (i, sign) of the Hamilton product's 16 terms
    terms = {(0, 0): (0, 1), (1, 1): (0, -1), (2, 2): (0, -1), (3, 3): (0, -1),
             (0, 1): (1, 1), (1, 0): (1, 1), (2, 3): (1, 1), (3, 2): (1, -1),
             (0, 2): (2, 1), (1, 3): (2, -1), (2, 0): (2, 1), (3, 1): (2, 1),
             (0, 3): (3, 1), (1, 2): (3, 1), (2, 1): (3, -1), (3, 0): (3, 1)}
    for (j, k), (i, sign) in terms.items():
        table[j, k, i] = sign
    return table.reshape(16, 4)


_HAMILTON = _hamilton_table()
_HAMILTON_ON = {}


def quat_mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product ``a * b`` of ``(n, 4)`` quaternions (w, x, y, z).

    Computed as one outer product and one matrix product (two GPU kernels rather
    than the ~30 of the component formula).
    """
    key = (a.device, a.dtype)
    table = _HAMILTON_ON.get(key)
    if table is None:
        table = _HAMILTON_ON[key] = _HAMILTON.to(device=a.device, dtype=a.dtype)
    outer = (a.unsqueeze(-1) * b.unsqueeze(-2)).reshape(*a.shape[:-1], 16)
    return outer @ table


_CONJ = {}


def quat_conjugate(q: torch.Tensor) -> torch.Tensor:
    """Conjugate of ``(..., 4)`` quaternions (w, x, y, z)."""
    key = (q.device, q.dtype)
    sign = _CONJ.get(key)
    if sign is None:
        sign = _CONJ[key] = torch.tensor([1.0, -1.0, -1.0, -1.0], device=q.device, dtype=q.dtype)
    return q * sign


def quat_positive_w(q: torch.Tensor) -> torch.Tensor:
    """``(..., 4)`` quaternions (w, x, y, z) with the sign that makes ``w >= 0``.

    ``q`` and ``-q`` are the same rotation; engines do not agree on which one they report
    (MuJoCo composes its body and joint quaternions along the chain as they come; PhysX
    flips each joint's rotation to ``w >= 0`` and composes its own joint-frame quaternions),
    so everything fed to a policy uses this one. Batched, no host sync.
    """
    return torch.where(q[..., :1] < 0, -q, q)


def quat_rotate(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate ``(..., 3)`` vectors ``v`` by unit quaternions ``q`` ``(..., 4)`` (w, x, y, z)."""
    w, xyz = q[..., :1], q[..., 1:]
    t = 2.0 * torch.cross(xyz, v, dim=-1)
    return v + w * t + torch.cross(xyz, t, dim=-1)


def quat_from_angle_axis(angle: torch.Tensor, axis: torch.Tensor) -> torch.Tensor:
    """Quaternions ``(n, 4)`` for rotations by ``angle`` ``(n,)`` rad about unit ``axis`` ``(n, 3)``."""
    half = 0.5 * angle.unsqueeze(-1)
    return torch.cat((torch.cos(half), axis * torch.sin(half)), dim=-1)


# ----------------------------------------------------------------------------------
# Actions and joint scaling
# ----------------------------------------------------------------------------------
def actions_to_joint_targets(actions: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """Absolute joint targets ``(num_envs, 6)`` rad from actions in ``[-1, 1]``.

    ``target = lower + (a + 1) / 2 * (upper - lower)``, clamped to ``[lower, upper]``: the
    reference's ``scale`` + ``tensor_clamp`` (``useRelativeControl: False``). The
    action scale is each joint's half-range of the conservative limits.
    """
    targets = lower + 0.5 * (actions + 1.0) * (upper - lower)
    return torch.maximum(torch.minimum(targets, upper), lower)


def joint_targets_to_actions(targets: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`actions_to_joint_targets` (rad -> ``[-1, 1]``, unclamped)."""
    return 2.0 * (targets - lower) / (upper - lower) - 1.0


def servo_max_step(lower: torch.Tensor, upper: torch.Tensor, move_time_s: float, control_dt: float) -> torch.Tensor:
    """Largest target change per control step ``(num_dof,)`` rad of a servo with move time ``move_time_s``.

    A servo that crosses a joint's whole range ``upper - lower`` in ``move_time_s`` moves
    its target at most ``(upper - lower) / move_time_s * control_dt`` per control step
    (the linear slew of Yahboom Arm_Lib's ``time`` argument).
    """
    return (upper - lower) * (control_dt / move_time_s)


def slew_limit(previous: torch.Tensor, commanded: torch.Tensor, max_step: torch.Tensor) -> torch.Tensor:
    """Targets ``(num_envs, num_dof)`` rad moved from ``previous`` toward ``commanded`` by at most ``max_step`` ``(num_dof,)``."""
    return previous + torch.maximum(torch.minimum(commanded - previous, max_step), -max_step)


def unscale_dof_pos(dof_pos: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """Joint positions mapped to ``[-1, 1]`` over the limits: ``(2q - (L + U)) / (U - L)`` (reference ``unscale``)."""
    return (2.0 * dof_pos - (lower + upper)) / (upper - lower)


# ----------------------------------------------------------------------------------
# Goals
# ----------------------------------------------------------------------------------
def sample_goal_positions(num: int, xy_min: float, xy_max: float, z_min: float, z_max: float,
                          device: torch.device, generator: torch.Generator = None) -> torch.Tensor:
    """Goal positions ``(num, 3)`` m relative to the robot base (reference ``get_reset_target_new_pos``).

    For x and y: ``u ~ U(-1, 1)``, value ``= (xy_max - xy_min) u + xy_min sign(u)``, so
    ``|x|, |y|`` lie in ``[xy_min, xy_max]`` (0.15-0.20 m) with either sign; z is
    ``(z_max - z_min) |u| + z_min`` (0.15-0.35 m).
    """
    u = 2.0 * torch.rand(num, 3, device=device, generator=generator) - 1.0
    goals = torch.empty_like(u)
    goals[:, :2] = (xy_max - xy_min) * u[:, :2] + xy_min * torch.sign(u[:, :2])
    goals[:, 2] = (z_max - z_min) * u[:, 2].abs() + z_min
    return goals


def sample_goal_rotations(num: int, device: torch.device, generator: torch.Generator = None) -> torch.Tensor:
    """Random goal orientations ``(num, 4)`` (w, x, y, z): about x by ``pi U(-1, 1)``, then about y.

    ``q = q_x(a) * q_y(b) = (cos a/2 cos b/2, sin a/2 cos b/2, cos a/2 sin b/2, sin a/2 sin b/2)``.
    The reference feeds these to the policy but never rewards them; they are kept so
    the 29-value observation (and checkpoints) stay compatible with the reference.
    """
    half = 0.5 * torch.pi * (2.0 * torch.rand(num, 2, device=device, generator=generator) - 1.0)
    c, s = torch.cos(half), torch.sin(half)
    return torch.stack((c[:, 0] * c[:, 1], s[:, 0] * c[:, 1], c[:, 0] * s[:, 1], s[:, 0] * s[:, 1]), dim=-1)


def tip_positions(ee_pose: torch.Tensor, tip_offset_ee: torch.Tensor) -> torch.Tensor:
    """Fingertip positions ``(num_envs, 3)`` m: ``p_ee + R_ee @ tip_offset_ee``.

    ``ee_pose`` is ``(num_envs, 7)`` (position m, quaternion w, x, y, z) of link5;
    ``tip_offset_ee`` ``(3,)`` m in the link5 frame (``robot.TIP_OFFSET_EE``).
    """
    return ee_pose[:, :3] + quat_rotate(ee_pose[:, 3:7], tip_offset_ee.expand(ee_pose.shape[0], 3))


# ----------------------------------------------------------------------------------
# Reward and observations
# ----------------------------------------------------------------------------------
def compute_reward(tip_pos: torch.Tensor, goal_pos: torch.Tensor, actions: torch.Tensor, dist_scale: float,
                   action_penalty_scale: float, reach_goal_bonus: float,
                   success_tolerance: float) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
    """The reference reward ``dist_scale d + action_penalty_scale |a|^2 + bonus [d <= tol]``.

    With the reference weights: ``-10 d - 0.0002 |a|^2 + 250 [d <= 0.05 m]``, ``d`` the
    fingertip-goal distance (m). The reference's rotation term (computed, never added)
    is not computed here.

    Returns:
        ``(reward (num_envs,), terms {"dist", "action_penalty", "reach_bonus"}, distance (num_envs,))``.
    """
    distance = torch.linalg.vector_norm(tip_pos - goal_pos, dim=-1)
    terms = {
        "dist": dist_scale * distance,
        "action_penalty": action_penalty_scale * torch.sum(actions * actions, dim=-1),
        "reach_bonus": reach_goal_bonus * (distance <= success_tolerance).float(),
    }
    reward = terms["dist"] + terms["action_penalty"] + terms["reach_bonus"]
    return reward, terms, distance


def compute_observations(dof_pos: torch.Tensor, dof_vel: torch.Tensor, goal_pos: torch.Tensor, goal_rot: torch.Tensor,
                         ee_rot: torch.Tensor, actions: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor,
                         dof_vel_scale: float) -> torch.Tensor:
    """The 29-value "full" observation ``(num_envs, 29)`` of the reference ``compute_full_observations``.

    Layout: ``[0:6]`` joint positions scaled to ``[-1, 1]`` by the limits; ``[6:12]`` joint
    velocities (rad/s) times ``dof_vel_scale`` (0.2); ``[12:15]`` goal position (m, env
    frame); ``[15:19]`` goal quaternion; ``[19:23]`` ``ee_rot * conj(goal_rot)`` with
    ``ee_rot`` sign-normalised to ``w >= 0`` first (:func:`quat_positive_w`: the same pose gives
    the same observation on every engine); ``[23:29]`` the actions applied this step (gripper
    entry 0).
    """
    return torch.cat(
        (
            unscale_dof_pos(dof_pos, lower, upper),
            dof_vel_scale * dof_vel,
            goal_pos,
            goal_rot,
            quat_mul(quat_positive_w(ee_rot), quat_conjugate(goal_rot)),
            actions,
        ),
        dim=-1,
    )


#: Observation columns of the joint positions and velocities (``[0:12]``), where sensor noise goes.
JOINT_OBS = slice(0, 12)


def add_joint_observation_noise(obs: torch.Tensor, std: float) -> torch.Tensor:
    """``obs`` ``(num_envs, 29)`` with ``N(0, std^2)`` noise added to the joint position and
    velocity entries ``[0:12]`` (observation units, i.e. after scaling); the rest unchanged."""
    noisy = obs.clone()
    noisy[:, JOINT_OBS] += std * torch.randn(obs.shape[0], JOINT_OBS.stop - JOINT_OBS.start, device=obs.device,
                                             dtype=obs.dtype)
    return noisy


#: Names of the 29 observation entries, in order (for export sidecars and docs).
OBSERVATION_NAMES = (
    [f"dof_pos_scaled_{i}" for i in range(6)]
    + [f"dof_vel_scaled_{i}" for i in range(6)]
    + ["goal_x", "goal_y", "goal_z", "goal_qw", "goal_qx", "goal_qy", "goal_qz"]
    + ["rel_qw", "rel_qx", "rel_qy", "rel_qz"]
    + [f"action_{i}" for i in range(6)]
)
