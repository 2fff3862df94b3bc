"""Generate the Dofbot robot models (MJCF and URDF) from the facts in :mod:`dofbot_rl.robot`.

The generated files are committed under ``data/robots/dofbot/`` and a test checks that
they match this generator; regenerate them with ``python -m dofbot_rl.assets``.

Model choices (documented in ``docs/robot.md``):

* kinematics: the official URDF joint frames; every joint rotates about its child +Z;
* geometry: primitive capsules between joint origins (no meshes), visual only: contacts
  are disabled, like the reference task (self-collision off; the conservative limits
  keep the arm off the ground);
* inertia: estimated link masses (``robot.LINK_MASSES``) on the capsules plus the
  servo's reflected rotor inertia as joint ``armature``;
* drives: PD position actuators with fixed torque gains ``kp = 1048 * I_jj`` and
  ``kv = 53 * I_jj`` (the NVIDIA USD's acceleration-drive gains, 1048 1/s^2 and 53 1/s,
  times ``I_jj``, the joint-space inertia at the zero pose), torque limited to
  ``robot.SERVO_TORQUE_LIMIT``, no velocity limit; the USD (:mod:`dofbot_rl.usd_asset`)
  carries the same torque gains as PhysX *force* drives;
* the gripper: one finger hinge on link5 (task DOF 5), kept at 0 by the task.
"""

import math
from pathlib import Path
from typing import Dict

import mujoco
import numpy as np

from dofbot_rl import robot
from dofbot_rl.paths import robot_model_path

#: Physics time step (s), the reference's ``sim.dt`` (1/120 s).
PHYSICS_DT = 1.0 / 120.0
#: Capsule radius (m) of each link's visual/inertial shape.
LINK_RADIUS = {"link1": 0.020, "link2": 0.016, "link3": 0.016, "link4": 0.015, "link5": 0.015, "finger": 0.006}
#: Base cylinder: radius and height (m).
BASE_RADIUS, BASE_HEIGHT = 0.05, robot.URDF_JOINT_ORIGINS[0][0][2]
#: Where the finger hinge sits on link5, as a fraction of the link5 -> fingertip segment.
FINGER_HINGE_FRACTION = 0.55
#: Joint velocity limit (rad/s) written to the URDF and the USD: in effect none, as in the
#: MJCF (MuJoCo has no joint velocity limit). The torque-limited drives reach ~25 rad/s at
#: most; a value is written only because URDF requires one and Isaac Sim's asset validator
#: wants ``physxJoint:maxJointVelocity`` wherever ``PhysxJointAPI`` is applied.
JOINT_VELOCITY_LIMIT = 1000.0

_RGBA = {
    "grey": [0.592, 0.667, 0.682, 1.0],
    "green": [0.0, 0.627, 0.235, 1.0],
    "white": [0.95, 0.95, 0.95, 1.0],
}
_LINK_COLOUR = {"base_link": "grey", "link1": "green", "link2": "grey", "link3": "green", "link4": "grey", "link5": "white"}


def _rpy_to_quat(rpy):
    """URDF roll-pitch-yaw (rad) -> MuJoCo quaternion (w, x, y, z)."""
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.asarray(robot.rpy_to_matrix(rpy), dtype=float).ravel())
    return quat


def build_spec(gains: Dict[str, float] = None) -> mujoco.MjSpec:
    """Build the Dofbot as a :class:`mujoco.MjSpec`.

    Args:
        gains: joint name -> joint-space inertia ``I_jj`` (kg m^2) used to turn the
            acceleration-drive gains into torque gains; ``None`` uses 1.0 (a first pass
            from which :func:`joint_inertias` reads the real values).

    Returns:
        The spec; ``spec.compile()`` gives the model, ``spec.to_xml()`` the MJCF text.
    """
    spec = mujoco.MjSpec()
    spec.modelname = "dofbot"
    spec.compiler.degree = False
    spec.option.timestep = PHYSICS_DT
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.option.disableflags |= mujoco.mjtDisableBit.mjDSBL_CONTACT

    capsule = mujoco.mjtGeom.mjGEOM_CAPSULE
    spec.worldbody.add_light(name="top", pos=[0, 0, 1.5], dir=[0, 0, -1])
    spec.worldbody.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[0.5, 0.5, 0.01],
                            rgba=[0.3, 0.3, 0.35, 1.0], contype=0, conaffinity=0)
    base = spec.worldbody.add_body(name="base_link")
    base.add_geom(name="base_link", type=mujoco.mjtGeom.mjGEOM_CYLINDER, size=[BASE_RADIUS, BASE_HEIGHT / 2, 0],
                  pos=[0, 0, BASE_HEIGHT / 2], mass=robot.LINK_MASSES["base_link"], rgba=_RGBA["grey"],
                  contype=0, conaffinity=0)

    parent = base
    child_offsets = [origin[0] for origin in robot.URDF_JOINT_ORIGINS[1:]] + [robot.TIP_OFFSET_EE]
    for i, ((xyz, rpy), link) in enumerate(zip(robot.URDF_JOINT_ORIGINS, robot.LINK_NAMES[1:])):
        name = robot.JOINT_NAMES[i]
        body = parent.add_body(name=link, pos=list(xyz), quat=list(_rpy_to_quat(rpy)))
        body.add_joint(name=name, type=mujoco.mjtJoint.mjJNT_HINGE, axis=[0, 0, 1], armature=robot.SERVO_ARMATURE,
                       range=[robot.JOINT_LIMITS_LOWER[i], robot.JOINT_LIMITS_UPPER[i]], limited=mujoco.mjtLimited.mjLIMITED_TRUE)
        body.add_geom(name=link, type=capsule, fromto=[0, 0, 0] + list(child_offsets[i]), size=[LINK_RADIUS[link], 0, 0],
                      mass=robot.LINK_MASSES[link], rgba=_RGBA[_LINK_COLOUR[link]], contype=0, conaffinity=0)
        parent = body
    link5 = parent
    link5.add_site(name="tip", pos=list(robot.TIP_OFFSET_EE), size=[0.008, 0, 0], rgba=[1.0, 0.2, 0.2, 1.0])

    hinge = [FINGER_HINGE_FRACTION * v for v in robot.TIP_OFFSET_EE]
    finger = link5.add_body(name="finger", pos=hinge)
    finger.add_joint(name="gripper", type=mujoco.mjtJoint.mjJNT_HINGE, axis=[1, 0, 0], armature=robot.SERVO_ARMATURE,
                     range=[robot.JOINT_LIMITS_LOWER[5], robot.JOINT_LIMITS_UPPER[5]], limited=mujoco.mjtLimited.mjLIMITED_TRUE)
    to_tip = [t - h for t, h in zip(robot.TIP_OFFSET_EE, hinge)]
    finger.add_geom(name="finger", type=capsule, size=[LINK_RADIUS["finger"], 0, 0], fromto=[0, 0, 0] + to_tip,
                    mass=robot.LINK_MASSES["finger"], rgba=_RGBA["white"], contype=0, conaffinity=0)

    for i, name in enumerate(robot.JOINT_NAMES):
        inertia = 1.0 if gains is None else gains[name]
        act = spec.add_actuator(name=name, target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        act.set_to_position(kp=round(robot.DRIVE_STIFFNESS * inertia, 5), kv=round(robot.DRIVE_DAMPING * inertia, 5))
        act.ctrlrange = [robot.JOINT_LIMITS_LOWER[i], robot.JOINT_LIMITS_UPPER[i]]
        act.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
        act.forcerange = [-robot.SERVO_TORQUE_LIMIT, robot.SERVO_TORQUE_LIMIT]
        act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
    return spec


def joint_inertias(model: mujoco.MjModel) -> Dict[str, float]:
    """Joint-space inertia ``I_jj`` (kg m^2, armature included) of each actuated joint at q = 0."""
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    full = np.zeros((model.nv, model.nv))
    mujoco.mj_fullM(model, data, full)
    return {name: float(full[model.joint(name).dofadr[0], model.joint(name).dofadr[0]]) for name in robot.JOINT_NAMES}


def build_mjcf() -> str:
    """The MJCF text of the Dofbot, with drive gains scaled by each joint's inertia."""
    first = build_spec().compile()
    return build_spec(joint_inertias(first)).to_xml()


def build_urdf(model: mujoco.MjModel) -> str:
    """A URDF of the same robot (for Isaac Sim's URDF importer), inertials from ``model``.

    Joint frames are the official URDF's; visuals and collisions are the MJCF's capsules
    (expressed as cylinders: URDF has no capsules); masses, centres of mass and inertia
    diagonals come from the compiled MuJoCo model so both files describe one robot.
    """
    lines = ['<?xml version="1.0"?>', "<!-- generated by dofbot_rl.assets from dofbot_rl.robot: do not edit -->",
             '<robot name="dofbot">']

    def link_block(name, geom_name):
        body = model.body(name)
        ipos = " ".join(f"{v:.6g}" for v in body.ipos)
        rot = np.zeros(9)
        mujoco.mju_quat2Mat(rot, body.iquat)
        inertia = rot.reshape(3, 3) @ np.diag(body.inertia) @ rot.reshape(3, 3).T
        geom = model.geom(geom_name)
        gq = np.zeros(9)
        mujoco.mju_quat2Mat(gq, geom.quat)
        rpy = _matrix_to_rpy(gq.reshape(3, 3))
        if geom.type[0] == mujoco.mjtGeom.mjGEOM_CYLINDER:
            radius, length = geom.size[0], 2 * geom.size[1]
        else:
            radius, length = geom.size[0], 2 * geom.size[1] + 2 * geom.size[0]
        shape = f'<cylinder radius="{radius:.6g}" length="{length:.6g}"/>'
        origin = f'<origin xyz="{" ".join(f"{v:.6g}" for v in geom.pos)}" rpy="{" ".join(f"{v:.6g}" for v in rpy)}"/>'
        colour = " ".join(f"{v:.3g}" for v in geom.rgba)
        return [
            f'  <link name="{name}">',
            f'    <inertial><origin xyz="{ipos}" rpy="0 0 0"/><mass value="{body.mass[0]:.6g}"/>'
            f'<inertia ixx="{inertia[0, 0]:.6g}" ixy="{inertia[0, 1]:.6g}" ixz="{inertia[0, 2]:.6g}" '
            f'iyy="{inertia[1, 1]:.6g}" iyz="{inertia[1, 2]:.6g}" izz="{inertia[2, 2]:.6g}"/></inertial>',
            f'    <visual>{origin}<geometry>{shape}</geometry><material name="{name}_colour"><color rgba="{colour}"/></material></visual>',
            f"    <collision>{origin}<geometry>{shape}</geometry></collision>",
            "  </link>",
        ]

    lines += link_block("base_link", "base_link")
    parent = "base_link"
    for i, link in enumerate(robot.LINK_NAMES[1:]):
        xyz, rpy = robot.URDF_JOINT_ORIGINS[i]
        lines += link_block(link, link)
        lines += _joint_block(robot.JOINT_NAMES[i], parent, link, xyz, rpy, (0, 0, 1), i)
        parent = link
    lines += link_block("finger", "finger")
    finger = model.body("finger")
    lines += _joint_block("gripper", "link5", "finger", tuple(finger.pos), (0, 0, 0), (1, 0, 0), 5)
    lines.append("</robot>")
    return "\n".join(lines) + "\n"


def _joint_block(name, parent, child, xyz, rpy, axis, index):
    effort, velocity = robot.SERVO_TORQUE_LIMIT, JOINT_VELOCITY_LIMIT
    return [
        f'  <joint name="{name}" type="revolute">',
        f'    <parent link="{parent}"/><child link="{child}"/>',
        f'    <origin xyz="{" ".join(f"{v:.8g}" for v in xyz)}" rpy="{" ".join(f"{v:.8g}" for v in rpy)}"/>',
        f'    <axis xyz="{" ".join(str(v) for v in axis)}"/>',
        f'    <limit lower="{robot.JOINT_LIMITS_LOWER[index]:.6g}" upper="{robot.JOINT_LIMITS_UPPER[index]:.6g}" '
        f'effort="{effort}" velocity="{velocity}"/>',
        "  </joint>",
    ]


def _matrix_to_rpy(rot):
    pitch = math.asin(max(-1.0, min(1.0, -rot[2, 0])))
    roll = math.atan2(rot[2, 1], rot[2, 2])
    yaw = math.atan2(rot[1, 0], rot[0, 0])
    return roll, pitch, yaw


def generate() -> Dict[str, str]:
    """The generated model files: ``{"mjcf": text, "urdf": text}``."""
    mjcf = build_mjcf()
    model = mujoco.MjModel.from_xml_string(mjcf)
    return {"mjcf": mjcf, "urdf": build_urdf(model)}


def write_models() -> Dict[str, Path]:
    """Regenerate the committed model files; returns kind -> path written."""
    written = {}
    for kind, text in generate().items():
        path = robot_model_path(kind)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written[kind] = path
    return written


if __name__ == "__main__":  # pragma: no cover - a maintenance entry point
    for kind, path in write_models().items():
        print(f"wrote {kind}: {path}")
