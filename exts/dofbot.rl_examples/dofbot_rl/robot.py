"""Facts about the Yahboom Dofbot arm, in one place.

Everything the rest of the project knows about the robot comes from here: joint names
and order, URDF joint frames, the reference task's conservative limits, the default
pose, the fingertip offset, estimated masses and the sim <-> servo angle mapping.

This module is the innermost layer. It is standard-library only and Python 3.6
compatible, because the sim-to-real server that runs on the Dofbot's Jetson Nano
(JetPack 4, Python 3.6, maybe without numpy) imports it too.

Sources (see ``docs/robot.md``):

* URDF joint origins and axes: Yahboom's official ``dofbot.urdf`` (``dofbot_info``
  package, Jan 2021), as vendored by the OmniIsaacGymEnvs-DofbotReacher project.
* Conservative limits, default pose, fingertip offset: ``_dof_limits``,
  ``post_reset`` and ``get_object_displacement_tensor`` of the reference
  ``dofbot_reacher.py`` task.
* Servo mapping: ``sim_dof_angle_limits`` / ``servo_angle_limits`` of the reference
  ``sim2real/dofbot.py`` client and Yahboom's ``Arm_Lib``.
* Masses: **estimated** (the URDF has no inertials); see ``LINK_MASSES``.
"""

import math

# ----------------------------------------------------------------------------------
# Joints
# ----------------------------------------------------------------------------------

#: Actuated joints in task order. Indices 0-4 are the arm, index 5 is the gripper.
JOINT_NAMES = ("joint1", "joint2", "joint3", "joint4", "joint5", "gripper")
#: Number of actuated degrees of freedom seen by the task: 5 arm joints + gripper.
NUM_DOF = 6
#: Number of arm joints (the URDF's revolute joints).
NUM_ARM_JOINTS = 5
#: Link (body) names, base first; ``LINK_NAMES[i + 1]`` is the child of joint ``i``.
LINK_NAMES = ("base_link", "link1", "link2", "link3", "link4", "link5")
#: Body whose pose the physics seam reports as ``ee_pose`` (URDF variant of the reference).
EE_LINK = "link5"

#: URDF joint origins ``(xyz m, rpy rad)`` of joint1..joint5, parent frame; every
#: joint rotates about +Z of its child frame. From Yahboom's ``dofbot.urdf``.
URDF_JOINT_ORIGINS = (
    ((0.0, 0.0, 0.06605), (-0.010805, 0.0, 0.0)),
    ((0.0, -0.00031873, 0.04145), (0.0, 1.5708, 0.0)),
    ((-0.08285, 0.0, 0.0), (0.0, 0.0, 0.0)),
    ((-0.08285, 0.0, 0.0), (0.0, 0.0, 0.0083081)),
    ((-0.07385, -0.001, 0.0), (0.0, -1.57, 0.0)),
)

#: Hardware joint limits (rad) of the URDF / NVIDIA USD: joints 1-4 +-90 deg, the wrist
#: -90..180 deg, the gripper (NVIDIA USD ``Finger_Left_01``) -30..60 deg.
JOINT_LIMITS_LOWER = (-1.5708, -1.5708, -1.5708, -1.5708, -1.5708, math.radians(-30.0))
JOINT_LIMITS_UPPER = (1.5708, 1.5708, 1.5708, 1.5708, 3.1416, math.radians(60.0))

#: The reference task's "conservative" limits (rad), used for action scaling,
#: observation normalisation, reset noise and as the safe limits on the real arm.
#: From ``_dof_limits`` in the reference ``dofbot_reacher.py``. The gripper range is
#: deliberately non-zero (a zero range makes rl_games' Normal distribution NaN).
SAFE_LIMITS_LOWER = (-math.pi / 2, -math.pi / 4, -math.pi / 4, -math.pi / 4, -math.pi / 2, -0.1)
SAFE_LIMITS_UPPER = (math.pi / 2, math.pi / 4, math.pi / 4, math.pi / 4, math.pi / 2, 0.1)

#: Limits a human may jog to with the keyboard (rad): the safe limits for the arm,
#: the gripper's full open/close range (the reference left the gripper dead).
TELEOP_LIMITS_LOWER = SAFE_LIMITS_LOWER[:5] + (JOINT_LIMITS_LOWER[5],)
TELEOP_LIMITS_UPPER = SAFE_LIMITS_UPPER[:5] + (JOINT_LIMITS_UPPER[5],)

#: Default joint positions (rad): all zero, the arm stands straight up (reference ``post_reset``).
DEFAULT_DOF_POS = (0.0,) * NUM_DOF

#: Fingertip offset (m) from the link5 origin, expressed in the **world** frame at the
#: zero pose. From ``get_object_displacement_tensor`` of the reference task.
TIP_OFFSET_ZERO_POSE_W = (0.0, 0.015, 0.10)

#: Estimated link masses (kg). The official URDF has no inertials. Each moving link
#: carries one Yahboom bus servo (~55-60 g) plus an aluminium / plastic bracket; link5
#: carries the gripper servo and the claw. Inertias follow from the primitive shapes.
LINK_MASSES = {
    "base_link": 0.40,
    "link1": 0.10,
    "link2": 0.09,
    "link3": 0.09,
    "link4": 0.08,
    "link5": 0.10,
    "finger": 0.03,
}

#: Reflected rotor inertia of a geared hobby servo (kg m^2), modelled as MuJoCo
#: ``armature`` on every joint (estimate: rotor ~1e-7 kg m^2 times a ~300:1 gear ratio squared).
SERVO_ARMATURE = 0.01
#: Servo output torque limit (N m): Yahboom's 15 kg cm bus servos, rounded up.
SERVO_TORQUE_LIMIT = 2.0
#: PD position drive as an *acceleration* drive, like the NVIDIA Dofbot USD's PhysX drives:
#: stiffness 1048 1/s^2 and damping 53 1/s, multiplied by each joint's inertia when the
#: MJCF is generated (see ``dofbot_rl.assets``).
DRIVE_STIFFNESS = 1048.0
DRIVE_DAMPING = 53.0

# ----------------------------------------------------------------------------------
# Servo mapping (sim rad <-> servo degrees), as the reference sim2real client and Arm_Lib use it
# ----------------------------------------------------------------------------------

#: Servo ids on the Dofbot bus, in task joint order.
SERVO_IDS = (1, 2, 3, 4, 5, 6)
#: Sim angle range (deg) mapped linearly onto ``SERVO_RANGES_DEG``.
SIM_RANGES_DEG = ((-90.0, 90.0), (-90.0, 90.0), (-90.0, 90.0), (-90.0, 90.0), (-90.0, 180.0), (-30.0, 60.0))
#: Servo command range (deg) accepted by ``Arm_serial_servo_write6`` (servo 5 takes 0-270).
SERVO_RANGES_DEG = ((0.0, 180.0), (0.0, 180.0), (0.0, 180.0), (0.0, 180.0), (0.0, 270.0), (0.0, 180.0))
#: Whether the mapping is reversed (only the gripper).
SERVO_INVERTED = (False, False, False, False, False, True)


def sim_to_servo_deg(q):
    """Map sim joint angles to Dofbot servo angles.

    Args:
        q: 6 joint angles (rad) in task order (``JOINT_NAMES``).

    Returns:
        A list of 6 servo angles (degrees) for servos 1-6: ``deg(q) + 90`` for joints 1-5,
        ``180 - 2 (deg(q) + 30)`` for the gripper (the reference's linear map).

    Raises:
        ValueError: if ``q`` does not hold 6 finite numbers.
    """
    q = list(as_floats(q, what="joint angles"))
    out = []
    for i, angle in enumerate(q):
        (lo, hi), (a, b) = SIM_RANGES_DEG[i], SERVO_RANGES_DEG[i]
        servo = (math.degrees(angle) - lo) * (b - a) / (hi - lo) + a
        if SERVO_INVERTED[i]:
            servo = a + b - servo
        out.append(servo)
    return out


def servo_deg_to_sim(servo):
    """Inverse of :func:`sim_to_servo_deg`: servo angles (deg) -> joint angles (rad).

    Raises:
        ValueError: if ``servo`` does not hold 6 finite numbers.
    """
    servo = list(as_floats(servo, what="servo angles"))
    out = []
    for i, s in enumerate(servo):
        (lo, hi), (a, b) = SIM_RANGES_DEG[i], SERVO_RANGES_DEG[i]
        if SERVO_INVERTED[i]:
            s = a + b - s
        out.append(math.radians((s - a) * (hi - lo) / (b - a) + lo))
    return out


def clamp_to_limits(q, lower=SAFE_LIMITS_LOWER, upper=SAFE_LIMITS_UPPER):
    """Clamp 6 joint angles (rad) into ``[lower, upper]``; returns a new list."""
    return [min(max(float(v), lo), hi) for v, lo, hi in zip(q, lower, upper)]


def as_floats(values, n=NUM_DOF, what="joint angles", finite=True):
    """``values`` as a tuple of ``n`` floats: the project's one "n (finite) numbers" check.

    Used by the robot facts, teleop and the whole sim2real package (Python 3.6, standard
    library).

    Args:
        values: any iterable of numbers (list, tuple, a CPU tensor's elements...).
        n: how many (6: the joints, task order).
        what: names the values in the error.
        finite: also refuse NaN and infinity.

    Raises:
        ValueError: not ``n`` numbers, or (``finite``) a NaN or infinite one.
    """
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError, OverflowError):
        raise ValueError("%s must be %d numbers, got %r" % (what, n, values))
    if len(out) != n:
        raise ValueError("%s must be %d numbers, got %d" % (what, n, len(out)))
    if finite and not all(math.isfinite(v) for v in out):
        raise ValueError("%s must be %d finite numbers, got %r" % (what, n, out))
    return out


# ----------------------------------------------------------------------------------
# Forward kinematics of the URDF chain (pure Python, 3x3 lists)
# ----------------------------------------------------------------------------------


def _matmul(a, b):
    return [[sum(a[i][k] * b[k][j] for k in range(3)) for j in range(3)] for i in range(3)]


def _matvec(a, v):
    return [sum(a[i][k] * v[k] for k in range(3)) for i in range(3)]


def _transpose(a):
    return [[a[j][i] for j in range(3)] for i in range(3)]


def rpy_to_matrix(rpy):
    """URDF fixed-axis roll-pitch-yaw (rad) -> rotation matrix ``Rz(y) Ry(p) Rx(r)`` (3x3 lists)."""
    r, p, y = rpy
    cr, sr, cp, sp, cy, sy = math.cos(r), math.sin(r), math.cos(p), math.sin(p), math.cos(y), math.sin(y)
    return [
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ]


def _rot_z(angle):
    c, s = math.cos(angle), math.sin(angle)
    return [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]


def link_frames(q):
    """World poses of link1..link5 for the arm joint angles ``q``.

    Args:
        q: at least 5 joint angles (rad); only the first 5 (the arm) are used.

    Returns:
        A list of 5 ``(position, rotation)`` pairs, position in m (3 floats), rotation a
        3x3 list whose columns are the link frame's axes in the world (base) frame.
    """
    pos, rot = [0.0, 0.0, 0.0], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    frames = []
    for (xyz, rpy), angle in zip(URDF_JOINT_ORIGINS, list(q)[:NUM_ARM_JOINTS]):
        pos = [p + d for p, d in zip(pos, _matvec(rot, xyz))]
        rot = _matmul(_matmul(rot, rpy_to_matrix(rpy)), _rot_z(float(angle)))
        frames.append((pos, rot))
    return frames


#: Fingertip offset in the link5 frame (m): ``R_link5(q=0)^T @ TIP_OFFSET_ZERO_POSE_W``.
TIP_OFFSET_EE = tuple(_matvec(_transpose(link_frames((0.0,) * 5)[-1][1]), TIP_OFFSET_ZERO_POSE_W))


def fingertip_position(q):
    """World position (m) of the task's fingertip point for arm angles ``q`` (rad).

    ``p_tip = p_link5 + R_link5 @ TIP_OFFSET_EE``, the reference task's
    ``p_ee + R_ee R_ee0^-1 d`` with ``d = TIP_OFFSET_ZERO_POSE_W``.
    """
    pos, rot = link_frames(q)[-1]
    return [p + d for p, d in zip(pos, _matvec(rot, TIP_OFFSET_EE))]
