"""Generate the Dofbot USD (``data/robots/dofbot/dofbot.usda``) for Isaac Sim, and the USD
pieces of the panel's scene (markers).

The USD describes the same robot as the generated MJCF (:mod:`dofbot_rl.assets`), so the
Isaac Sim backend and the embedded MuJoCo backend simulate one arm (docs/robot.md, "One
arm in both engines"; ``tests/test_one_arm.py`` checks it):

* kinematics: ``robot.URDF_JOINT_ORIGINS``; links are sibling rigid bodies under the
  ``/Dofbot`` articulation root, placed at their zero-pose world transforms (the URDF
  importer's layout); every revolute joint turns about its child frame's +Z (the gripper
  about +X), its frame given by ``localPos0/localRot0`` in the parent body;
* masses, centres of mass and principal inertias: read off the compiled MJCF;
* drives: PhysX *force* drives with the MJCF actuators' torque gains. USD states angular
  drive gains per degree, so ``stiffness = kp * pi / 180`` (N m/deg, ``kp`` in N m/rad) and
  ``damping = kv * pi / 180`` (N m s/deg); ``maxForce`` is the MJCF's force range (the servo
  torque limit); joint ``armature`` the MJCF's; limits in degrees; no joint velocity limit
  in effect (``assets.JOINT_VELOCITY_LIMIT``, as the MJCF has none); link damping 0 (PhysX
  would otherwise damp link velocities by 0.05 1/s, MuJoCo does not);
* geometry: the MJCF's capsules and base cylinder as visual prims only (no colliders:
  the MJCF has contacts off, like the reference task); self-collisions off;
* fixed base: a ``PhysicsFixedJoint`` from the world to ``base_link``.

Only ``pxr`` is needed (``pip install usd-core`` outside Kit; Kit ships it). PhysX
schemas (``PhysxArticulationAPI``, ``PhysxJointAPI``, ``PhysxRigidBodyAPI``) are written
as applied-schema tokens and namespaced attributes, which Isaac Sim reads without
``PhysxSchema`` here. Regenerate with ``python -m dofbot_rl.usd_asset``; a test checks the
committed file.
"""

import math
from pathlib import Path
from typing import Dict, List, Tuple

from dofbot_rl import robot, scene
from dofbot_rl.paths import robot_model_path

#: Name of the robot prim (the default prim; ``teleop.picking`` expects it under each env).
ROBOT_PRIM = scene.ROBOT_NAME
#: PhysX articulation solver iterations.
SOLVER_POSITION_ITERATIONS, SOLVER_VELOCITY_ITERATIONS = 8, 1


def _mujoco_model():
    import mujoco

    from dofbot_rl.assets import build_mjcf

    return mujoco.MjModel.from_xml_string(build_mjcf())


def _quat_from_matrix(rot) -> Tuple[float, float, float, float]:
    """3x3 rotation (nested lists) -> unit quaternion (w, x, y, z)."""
    m = rot
    trace = m[0][0] + m[1][1] + m[2][2]
    if trace > 0:
        s = 0.5 / math.sqrt(trace + 1.0)
        q = (0.25 / s, (m[2][1] - m[1][2]) * s, (m[0][2] - m[2][0]) * s, (m[1][0] - m[0][1]) * s)
    elif m[0][0] > m[1][1] and m[0][0] > m[2][2]:
        s = 2.0 * math.sqrt(1.0 + m[0][0] - m[1][1] - m[2][2])
        q = ((m[2][1] - m[1][2]) / s, 0.25 * s, (m[0][1] + m[1][0]) / s, (m[0][2] + m[2][0]) / s)
    elif m[1][1] > m[2][2]:
        s = 2.0 * math.sqrt(1.0 + m[1][1] - m[0][0] - m[2][2])
        q = ((m[0][2] - m[2][0]) / s, (m[0][1] + m[1][0]) / s, 0.25 * s, (m[1][2] + m[2][1]) / s)
    else:
        s = 2.0 * math.sqrt(1.0 + m[2][2] - m[0][0] - m[1][1])
        q = ((m[1][0] - m[0][1]) / s, (m[0][2] + m[2][0]) / s, (m[1][2] + m[2][1]) / s, 0.25 * s)
    norm = math.sqrt(sum(v * v for v in q))
    q = tuple(v / norm for v in q)
    return q if q[0] >= 0 else tuple(-v for v in q)


def zero_pose_body_frames() -> Dict[str, Tuple[List[float], list]]:
    """World frames ``(position m, 3x3 rotation)`` of every body at q = 0, base at the origin."""
    frames = {"base_link": ([0.0, 0.0, 0.0], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])}
    for link, frame in zip(robot.LINK_NAMES[1:], robot.link_frames((0.0,) * robot.NUM_ARM_JOINTS)):
        frames[link] = frame
    pos5, rot5 = frames["link5"]
    hinge = finger_hinge()
    frames["finger"] = ([p + sum(rot5[i][k] * hinge[k] for k in range(3)) for i, p in enumerate(pos5)], rot5)
    return frames


def finger_hinge() -> Tuple[float, float, float]:
    """Position (m) of the gripper hinge in the link5 frame (the MJCF's finger body)."""
    from dofbot_rl.assets import FINGER_HINGE_FRACTION

    return tuple(FINGER_HINGE_FRACTION * v for v in robot.TIP_OFFSET_EE)


def build_stage(model=None):
    """Build the Dofbot as an in-memory ``Usd.Stage`` (default prim ``/Dofbot``, Z up, metres, kg).

    Args:
        model: the compiled Dofbot ``mujoco.MjModel`` to read masses and geoms from;
            default: compiled from :func:`dofbot_rl.assets.build_mjcf`.
    """
    from pxr import Gf, Sdf, Usd, UsdGeom, UsdPhysics

    model = model if model is not None else _mujoco_model()
    stage = Usd.Stage.CreateInMemory()
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    UsdPhysics.SetStageKilogramsPerUnit(stage, 1.0)
    root_path = Sdf.Path("/" + ROBOT_PRIM)
    root = UsdGeom.Xform.Define(stage, root_path).GetPrim()
    stage.SetDefaultPrim(root)
    root.SetMetadata("comment", "generated by dofbot_rl.usd_asset from dofbot_rl.robot: do not edit")
    UsdPhysics.ArticulationRootAPI.Apply(root)
    root.AddAppliedSchema("PhysxArticulationAPI")
    root.CreateAttribute("physxArticulation:enabledSelfCollisions", Sdf.ValueTypeNames.Bool).Set(False)
    root.CreateAttribute("physxArticulation:solverPositionIterationCount", Sdf.ValueTypeNames.Int).Set(SOLVER_POSITION_ITERATIONS)
    root.CreateAttribute("physxArticulation:solverVelocityIterationCount", Sdf.ValueTypeNames.Int).Set(SOLVER_VELOCITY_ITERATIONS)

    from dofbot_rl.assets import JOINT_VELOCITY_LIMIT

    frames = zero_pose_body_frames()
    for name, (pos, rot) in frames.items():
        _define_body(stage, root_path.AppendChild(name), name, pos, rot, model)

    joints = root_path.AppendChild("joints")
    UsdGeom.Scope.Define(stage, joints)
    fixed = UsdPhysics.FixedJoint.Define(stage, joints.AppendChild("root_joint"))
    fixed.CreateBody1Rel().SetTargets([root_path.AppendChild("base_link")])

    parents = ("base_link",) + robot.LINK_NAMES[1:-1]
    specs = [(robot.JOINT_NAMES[i], parents[i], robot.LINK_NAMES[i + 1], robot.URDF_JOINT_ORIGINS[i][0],
              _quat_from_matrix(robot.rpy_to_matrix(robot.URDF_JOINT_ORIGINS[i][1])), "Z", i)
             for i in range(robot.NUM_ARM_JOINTS)]
    specs.append(("gripper", "link5", "finger", finger_hinge(), (1.0, 0.0, 0.0, 0.0), "X", 5))
    for name, parent, child, xyz, quat, axis, index in specs:
        joint = UsdPhysics.RevoluteJoint.Define(stage, joints.AppendChild(name))
        joint.CreateBody0Rel().SetTargets([root_path.AppendChild(parent)])
        joint.CreateBody1Rel().SetTargets([root_path.AppendChild(child)])
        joint.CreateLocalPos0Attr().Set(Gf.Vec3f(*xyz))
        joint.CreateLocalRot0Attr().Set(Gf.Quatf(quat[0], Gf.Vec3f(*quat[1:])))
        joint.CreateLocalPos1Attr().Set(Gf.Vec3f(0.0, 0.0, 0.0))
        joint.CreateLocalRot1Attr().Set(Gf.Quatf(1.0, Gf.Vec3f(0.0, 0.0, 0.0)))
        joint.CreateAxisAttr().Set(axis)
        joint.CreateLowerLimitAttr().Set(math.degrees(robot.JOINT_LIMITS_LOWER[index]))
        joint.CreateUpperLimitAttr().Set(math.degrees(robot.JOINT_LIMITS_UPPER[index]))
        actuator, dof = model.actuator(name), model.joint(name).dofadr[0]
        drive = UsdPhysics.DriveAPI.Apply(joint.GetPrim(), "angular")
        drive.CreateTypeAttr().Set("force")
        drive.CreateStiffnessAttr().Set(float(actuator.gainprm[0]) * math.pi / 180.0)
        drive.CreateDampingAttr().Set(-float(actuator.biasprm[2]) * math.pi / 180.0)
        drive.CreateMaxForceAttr().Set(float(actuator.forcerange[1]))
        drive.CreateTargetPositionAttr().Set(0.0)
        prim = joint.GetPrim()
        prim.AddAppliedSchema("PhysxJointAPI")
        prim.CreateAttribute("physxJoint:armature", Sdf.ValueTypeNames.Float).Set(float(model.dof_armature[dof]))
        prim.CreateAttribute("physxJoint:maxJointVelocity", Sdf.ValueTypeNames.Float).Set(math.degrees(JOINT_VELOCITY_LIMIT))
    return stage


def _define_body(stage, path, name, pos, rot, model) -> None:
    from pxr import Gf, Sdf, UsdGeom, UsdPhysics

    xform = UsdGeom.Xform.Define(stage, path)
    quat = _quat_from_matrix(rot)
    xform.AddTranslateOp().Set(Gf.Vec3d(*pos))
    # double precision: a float quaternion loses ~1e-5 rad on near-identity rotations
    xform.AddOrientOp(UsdGeom.XformOp.PrecisionDouble).Set(Gf.Quatd(quat[0], Gf.Vec3d(*quat[1:])))
    prim = xform.GetPrim()
    UsdPhysics.RigidBodyAPI.Apply(prim)
    prim.AddAppliedSchema("PhysxRigidBodyAPI")
    for attr in ("physxRigidBody:linearDamping", "physxRigidBody:angularDamping"):
        prim.CreateAttribute(attr, Sdf.ValueTypeNames.Float).Set(0.0)
    mass = UsdPhysics.MassAPI.Apply(prim)
    body = model.body(name)
    mass.CreateMassAttr().Set(float(body.mass[0]))
    mass.CreateCenterOfMassAttr().Set(Gf.Vec3f(*[float(v) for v in body.ipos]))
    mass.CreateDiagonalInertiaAttr().Set(Gf.Vec3f(*[float(v) for v in body.inertia]))
    iq = [float(v) for v in body.iquat]
    mass.CreatePrincipalAxesAttr().Set(Gf.Quatf(iq[0], Gf.Vec3f(*iq[1:])))

    geom = model.geom(name)
    import mujoco

    radius, half = float(geom.size[0]), float(geom.size[1])
    if geom.type[0] == mujoco.mjtGeom.mjGEOM_CYLINDER:
        shape = UsdGeom.Cylinder.Define(stage, path.AppendChild("visual"))
        shape.CreateHeightAttr().Set(2.0 * half)
    else:
        shape = UsdGeom.Capsule.Define(stage, path.AppendChild("visual"))
        shape.CreateHeightAttr().Set(2.0 * half)
    shape.CreateRadiusAttr().Set(radius)
    shape.CreateAxisAttr().Set(UsdGeom.Tokens.z)
    gq = [float(v) for v in geom.quat]
    shape.AddTranslateOp().Set(Gf.Vec3d(*[float(v) for v in geom.pos]))
    shape.AddOrientOp(UsdGeom.XformOp.PrecisionDouble).Set(Gf.Quatd(gq[0], Gf.Vec3d(*gq[1:])))
    shape.CreateDisplayColorAttr().Set([Gf.Vec3f(*[float(v) for v in geom.rgba[:3]])])


# ----------------------------------------------------------------------------------
# The panel's scene: pieces the Kit layer builds (Kit-free, so usd-core tests them)
# ----------------------------------------------------------------------------------
def define_env_source(stage, usd_path: str):
    """Define ``/World/envs/env_0/Dofbot`` referencing the robot USD (the prim the cloner copies).

    Returns:
        The env_0 ``Usd.Prim``.
    """
    from pxr import UsdGeom

    env = UsdGeom.Xform.Define(stage, scene.env_path(0)).GetPrim()
    stage.DefinePrim(scene.robot_path(0), "Xform").GetReferences().AddReference(str(usd_path))
    return env


def define_markers(stage, num_envs: int, path: str = scene.MARKERS_PATH):
    """Define the goal and fingertip markers of ``num_envs`` robots as one ``UsdGeom.PointInstancer``.

    Instance ``i`` is env ``i``'s goal, instance ``num_envs + i`` its fingertip; positions
    (m) are in the instancer's frame, which is the env root's (identity transforms): env
    origin plus the env-frame position. The instancer starts invisible (nothing is hidden below the floor)
    and carries a full ``translate, orient, scale`` xform-op stack, so anything that resets
    it like the core API's XForm views do (writing ``xformOp:translate`` and
    ``xformOp:orient``) finds the attributes it writes.

    Raises:
        ValueError: ``num_envs < 1``.
    """
    from pxr import Gf, UsdGeom, Vt

    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    instancer = UsdGeom.PointInstancer.Define(stage, path)
    instancer.AddTranslateOp(UsdGeom.XformOp.PrecisionDouble).Set(Gf.Vec3d(0.0, 0.0, 0.0))
    instancer.AddOrientOp(UsdGeom.XformOp.PrecisionDouble).Set(Gf.Quatd(1.0, 0.0, 0.0, 0.0))
    instancer.AddScaleOp(UsdGeom.XformOp.PrecisionDouble).Set(Gf.Vec3d(1.0, 1.0, 1.0))
    prototypes = []
    for name, radius, rgb in zip(scene.MARKER_PROTOTYPES, (scene.GOAL_RADIUS, scene.TIP_RADIUS),
                                 (scene.GOAL_RGB, scene.TIP_RGB)):
        sphere = UsdGeom.Sphere.Define(stage, f"{path}/{name}")
        sphere.CreateRadiusAttr(radius)
        sphere.CreateDisplayColorAttr([Gf.Vec3f(*rgb)])
        prototypes.append(sphere.GetPath())
    instancer.CreatePrototypesRel().SetTargets(prototypes)
    instancer.CreateProtoIndicesAttr(Vt.IntArray([0] * num_envs + [1] * num_envs))
    instancer.CreatePositionsAttr(Vt.Vec3fArray(2 * num_envs))
    instancer.MakeInvisible()
    return instancer


class MarkerWriter:
    """Writes every marker of the instancer from :func:`define_markers` in one batch.

    One :meth:`write` is one ``positions`` value (``2 num_envs`` points) set at the Sdf level
    inside one ``Sdf.ChangeBlock``: one change notice per frame, however many robots.

    Args:
        stage: the stage holding the instancer.
        path: the instancer's prim path.

    Raises:
        ValueError: no marker instancer at ``path`` in the stage's edit target.
    """

    def __init__(self, stage, path: str = scene.MARKERS_PATH):
        from pxr import Sdf, UsdGeom

        instancer = UsdGeom.PointInstancer(stage.GetPrimAtPath(path))
        if not instancer:
            raise ValueError(f"no marker PointInstancer at {path}")
        layer = stage.GetEditTarget().GetLayer()
        self._positions = layer.GetAttributeAtPath(instancer.GetPositionsAttr().GetPath())
        self._visibility = layer.GetAttributeAtPath(Sdf.Path(path).AppendProperty(UsdGeom.Tokens.visibility))
        if self._positions is None:
            raise ValueError(f"{path}.positions is not authored in {layer.identifier}")
        self.num_points = len(instancer.GetPositionsAttr().Get())
        self._shown = False

    def write(self, positions_w) -> None:
        """Set all marker positions: ``positions_w`` ``(2 num_envs, 3)`` m in the env root's frame
        (env origin + env-frame position; goals first, then fingertips). The instancer becomes
        visible on the first write.

        Raises:
            ValueError: wrong shape.
            RuntimeError: the instancer was removed from the stage since.
        """
        import numpy as np
        from pxr import Sdf, UsdGeom, Vt

        positions_w = np.ascontiguousarray(positions_w, dtype=np.float32)
        if positions_w.shape != (self.num_points, 3):
            raise ValueError(f"marker positions must be ({self.num_points}, 3), got {positions_w.shape}")
        if self._positions.expired:
            raise RuntimeError("the marker instancer is gone from the stage")
        with Sdf.ChangeBlock():
            self._positions.default = Vt.Vec3fArray.FromNumpy(positions_w)
            if not self._shown and self._visibility is not None:
                self._visibility.default = UsdGeom.Tokens.inherited
        self._shown = True


def build_usda() -> str:
    """The USD text (``.usda``) of the Dofbot."""
    stage = build_stage()  # keep the stage alive while its layer is exported
    return stage.GetRootLayer().ExportToString()


def write_usda() -> Path:
    """Regenerate ``data/robots/dofbot/dofbot.usda``; returns its path."""
    path = robot_model_path("usd")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build_usda())
    return path


if __name__ == "__main__":  # pragma: no cover - a maintenance entry point
    import logging

    logging.basicConfig(level=logging.INFO)
    logging.getLogger(__name__).info("wrote %s", write_usda())
