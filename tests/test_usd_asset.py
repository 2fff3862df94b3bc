"""The generated Dofbot USD: committed file up to date, and one robot with the MJCF."""

import math

import numpy as np
import pytest

pxr = pytest.importorskip("pxr", reason="usd-core is not installed (pip install usd-core)")
mujoco = pytest.importorskip("mujoco")

from pxr import Gf, Usd, UsdGeom, UsdPhysics  # noqa: E402

from dofbot_rl import robot  # noqa: E402
from dofbot_rl.assets import build_mjcf  # noqa: E402
from dofbot_rl.paths import robot_model_path  # noqa: E402
from dofbot_rl.usd_asset import build_stage  # noqa: E402


def _canonical(stage):
    """Every prim's path, type, applied schemas, authored attribute values and relationships."""
    out = []
    for prim in stage.Traverse():
        out.append((str(prim.GetPath()), prim.GetTypeName(), _api_schemas(prim)))
        for attr in sorted(prim.GetAuthoredAttributes(), key=lambda a: a.GetName()):
            value = attr.Get()
            if hasattr(value, "GetReal"):  # Gf.Quat*: compare as 4 numbers
                value = [value.GetReal(), *value.GetImaginary()]
            try:
                value = np.asarray(list(value) if hasattr(value, "__len__") else [value], dtype=float).ravel()
            except (TypeError, ValueError):
                value = str(value)
            out.append((attr.GetName(), value))
        for rel in prim.GetAuthoredRelationships():
            out.append((rel.GetName(), tuple(str(t) for t in rel.GetTargets())))
    return out


def _api_schemas(prim):
    """Applied API schemas as authored (PhysX ones included, which usd-core does not know)."""
    listop = prim.GetMetadata("apiSchemas")
    return tuple(listop.GetAddedOrExplicitItems()) if listop else ()


@pytest.fixture(scope="module")
def stage():
    return build_stage()


@pytest.fixture(scope="module")
def mj():
    model = mujoco.MjModel.from_xml_string(build_mjcf())
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    return model, data


def test_committed_usda_is_up_to_date(stage):
    committed = Usd.Stage.Open(str(robot_model_path("usd")))
    assert committed.GetDefaultPrim().GetName() == "Dofbot"
    old, new = _canonical(committed), _canonical(stage)
    assert [entry[0] for entry in old] == [entry[0] for entry in new], "regenerate with: python -m dofbot_rl.usd_asset"
    for a, b in zip(old, new):
        if isinstance(a[1], np.ndarray) and isinstance(b[1], np.ndarray):
            # float noise across numpy / mujoco builds stays far below this
            assert a[1].shape == b[1].shape and np.allclose(a[1], b[1], atol=1e-5), (a, b)
        else:
            assert str(a[1:]) == str(b[1:]), (a, b)


def _world(stage, path):
    return UsdGeom.Xformable(stage.GetPrimAtPath(path)).ComputeLocalToWorldTransform(Usd.TimeCode.Default())


def test_bodies_sit_where_the_mjcf_puts_them(stage, mj):
    model, data = mj
    for name in ("base_link",) + robot.LINK_NAMES[1:] + ("finger",):
        xf = _world(stage, f"/Dofbot/{name}")
        np.testing.assert_allclose(np.array(xf.ExtractTranslation()), data.xpos[model.body(name).id], atol=1e-6)
        rot = np.array(xf.ExtractRotationMatrix()).T  # Gf is row-vector: transpose to column convention
        expected = data.xmat[model.body(name).id].reshape(3, 3)
        np.testing.assert_allclose(rot, expected, atol=1e-5)
        mass = UsdPhysics.MassAPI(stage.GetPrimAtPath(f"/Dofbot/{name}")).GetMassAttr().Get()
        assert mass == pytest.approx(model.body(name).mass[0], rel=1e-6)


def test_joints_match_the_mjcf(stage, mj):
    model, data = mj
    for name in robot.JOINT_NAMES:
        joint = UsdPhysics.RevoluteJoint(stage.GetPrimAtPath(f"/Dofbot/joints/{name}"))
        assert joint, name
        body0 = str(joint.GetBody0Rel().GetTargets()[0])
        body1 = str(joint.GetBody1Rel().GetTargets()[0])
        jid = model.joint(name).id
        assert body1.split("/")[-1] == model.body(model.jnt_bodyid[jid]).name
        # the joint frame seen from body0 lands on body1's origin
        local = Gf.Vec3d(joint.GetLocalPos0Attr().Get())
        world = _world(stage, body0).Transform(local)
        np.testing.assert_allclose(np.array(world), data.xpos[model.jnt_bodyid[jid]], atol=1e-6)  # float localPos0
        axis = {"X": (1, 0, 0), "Y": (0, 1, 0), "Z": (0, 0, 1)}[joint.GetAxisAttr().Get()]
        np.testing.assert_allclose(axis, model.jnt_axis[jid])
        lower, upper = joint.GetLowerLimitAttr().Get(), joint.GetUpperLimitAttr().Get()
        np.testing.assert_allclose([math.radians(lower), math.radians(upper)], model.jnt_range[jid], atol=1e-5)
        # drives, limits and velocity limits against the MJCF's actuators: tests/test_one_arm.py


def test_fixed_base_articulation(stage):
    root = stage.GetPrimAtPath("/Dofbot")
    assert root.HasAPI(UsdPhysics.ArticulationRootAPI)
    assert "PhysxArticulationAPI" in _api_schemas(root)
    assert root.GetAttribute("physxArticulation:enabledSelfCollisions").Get() is False
    fixed = UsdPhysics.FixedJoint(stage.GetPrimAtPath("/Dofbot/joints/root_joint"))
    assert not fixed.GetBody0Rel().GetTargets() and str(fixed.GetBody1Rel().GetTargets()[0]) == "/Dofbot/base_link"
    assert not [p for p in stage.Traverse() if p.HasAPI(UsdPhysics.CollisionAPI)]  # contacts off, as in the MJCF
