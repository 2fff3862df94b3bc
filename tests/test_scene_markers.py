"""The panel's Kit scene, built here with usd-core: clones are copies, markers survive a World reset
and are written in one batch.

What Isaac Sim does to the scene is applied as its sources do it (read from isaac-sim/IsaacSim
v5.0.0 / v5.1.0 / v6.0.1 and omni.isaac.core 4.1):

* ``GridCloner.clone`` (``isaacsim.core.cloner`` ``cloner.py``): per clone, a prim spec in the
  root layer that either gets an inherit arc to the source (``copy_from_source=False``, the
  default) or an ``Sdf.CopySpec`` of it (``True``), then ``xformOp:translate/orient/scale``
  specs and the op order;
* an XForm view (``XFormPrim`` 4.5+, ``XFormPrimView`` 4.x) with ``reset_xform_properties=False``:
  its constructor reads the world poses from USD as the default state; ``post_reset`` (a World
  reset; 5.x also from the ``POST_RESET`` event, whether or not the view was added to the
  scene) calls ``set_world_poses`` -> ``set_local_poses``, which per prim ``Set``s
  ``xformOp:translate`` and ``xformOp:orient`` (``Gf.Quatf`` when the attribute is ``quatf``,
  else ``Gf.Quatd``) on whatever ``GetAttribute`` returns.
"""

import ast
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pxr", reason="usd-core is not installed (pip install usd-core)")

from pxr import Gf, Sdf, Tf, Usd, UsdGeom, Vt  # noqa: E402

from dofbot_rl import robot, scene, usd_asset  # noqa: E402
from dofbot_rl.paths import robot_model_path  # noqa: E402

APP = Path(__file__).resolve().parents[1] / "exts" / "dofbot.rl_examples" / "dofbot_rl" / "app"


# ----------------------------------------------------------------------------------
# What Isaac Sim does, applied with usd-core
# ----------------------------------------------------------------------------------
def grid_clone(stage, source, paths, origins, copy_from_source):
    """``GridCloner.clone`` without physics replication (cloner.py, the USD branch)."""
    layer = stage.GetRootLayer()
    with Sdf.ChangeBlock():
        for path, origin in zip(paths, origins):
            if path == source:
                continue
            spec = Sdf.CreatePrimInLayer(layer, path)
            if copy_from_source:
                Sdf.CopySpec(layer, Sdf.Path(source), layer, Sdf.Path(path))
            else:
                spec.inheritPathList.Prepend(source)
            for name, type_name, value in (("xformOp:translate", Sdf.ValueTypeNames.Double3, Gf.Vec3d(*origin)),
                                           ("xformOp:orient", Sdf.ValueTypeNames.Quatd, Gf.Quatd(1.0)),
                                           ("xformOp:scale", Sdf.ValueTypeNames.Double3, Gf.Vec3d(1.0))):
                attr = spec.attributes.get(name) or Sdf.AttributeSpec(spec, name, type_name)
                attr.default = value
            order = spec.attributes.get("xformOpOrder") or Sdf.AttributeSpec(spec, "xformOpOrder",
                                                                             Sdf.ValueTypeNames.TokenArray)
            order.default = Vt.TokenArray(["xformOp:translate", "xformOp:orient", "xformOp:scale"])
    source_xf = UsdGeom.Xformable(stage.GetPrimAtPath(source))
    source_xf.ClearXformOpOrder()
    source_xf.AddTranslateOp(UsdGeom.XformOp.PrecisionDouble).Set(Gf.Vec3d(*origins[0]))
    source_xf.AddOrientOp(UsdGeom.XformOp.PrecisionDouble).Set(Gf.Quatd(1.0))
    source_xf.AddScaleOp(UsdGeom.XformOp.PrecisionDouble).Set(Gf.Vec3d(1.0))


def xform_view_reset(stage, paths):
    """An XForm view over ``paths`` (``reset_xform_properties=False``) built, then reset."""
    prims = [stage.GetPrimAtPath(p) for p in paths]
    time = Usd.TimeCode.Default()
    default = [Gf.Transform(UsdGeom.Xformable(p).ComputeLocalToWorldTransform(time)) for p in prims]  # constructor
    for prim, world in zip(prims, default):  # post_reset -> set_world_poses -> set_local_poses
        parent = UsdGeom.Xformable(prim.GetParent()).ComputeLocalToWorldTransform(time)
        local = Gf.Transform(Gf.Matrix4d(world.GetMatrix()) * parent.GetInverse())
        prim.GetAttribute("xformOp:translate").Set(Gf.Vec3d(local.GetTranslation()))
        orient = prim.GetAttribute("xformOp:orient")
        quat = local.GetRotation().GetQuat()
        orient.Set(Gf.Quatf(quat) if orient.GetTypeName() == "quatf" else Gf.Quatd(quat))


def build_scene(num_envs, copy_from_source=True):
    """Load's scene as ``DofbotBuildScene`` builds it (GridCloner applied as above)."""
    stage = Usd.Stage.CreateInMemory()
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
    UsdGeom.Xform.Define(stage, scene.WORLD)
    UsdGeom.Xform.Define(stage, scene.ENV_ROOT)  # define_base_env
    usd_asset.define_env_source(stage, str(robot_model_path("usd")))
    paths = [f"{scene.CLONER_ROOT}_{i}" for i in range(num_envs)]  # generate_paths
    side = int(np.ceil(np.sqrt(num_envs)))
    origins = [(float(i % side), float(i // side), 0.0) for i in range(num_envs)]
    grid_clone(stage, scene.env_path(0), paths, origins, copy_from_source)
    usd_asset.define_markers(stage, num_envs)
    return stage, np.array(origins, dtype=np.float32)


@pytest.fixture(scope="module")
def built():
    return build_scene(16)


# ----------------------------------------------------------------------------------
# 1. Markers survive a World reset
# ----------------------------------------------------------------------------------
def test_the_reset_as_applied_here_fails_on_the_old_markers():
    """The old markers (spheres with only xformOp:translate under each env) break the reset."""
    stage = Usd.Stage.CreateInMemory()
    sphere = UsdGeom.Sphere.Define(stage, "/World/envs/env_0/goal")
    sphere.AddTranslateOp().Set(Gf.Vec3d(0.0, 0.0, -1.0))
    with pytest.raises(Tf.ErrorException):
        xform_view_reset(stage, ["/World/envs/env_0/goal"])


def test_a_view_reset_on_the_marker_instancer_works_and_moves_nothing(built):
    stage, _ = built
    path = scene.MARKERS_PATH
    before = UsdGeom.Xformable(stage.GetPrimAtPath(path)).ComputeLocalToWorldTransform(Usd.TimeCode.Default())
    xform_view_reset(stage, [path])
    after = UsdGeom.Xformable(stage.GetPrimAtPath(path)).ComputeLocalToWorldTransform(Usd.TimeCode.Default())
    assert Gf.IsClose(before, after, 1e-9)
    ops = [op.GetOpName() for op in UsdGeom.Xformable(stage.GetPrimAtPath(path)).GetOrderedXformOps()]
    assert ops == ["xformOp:translate", "xformOp:orient", "xformOp:scale"]


def test_the_backend_registers_no_xform_view():
    """Only physics views reach the World's scene: nothing resets a marker through USD."""
    for name in ("isaac_physics.py", "compat.py"):
        tree = ast.parse((APP / name).read_text())
        names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        names |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
        assert not names & {"xform_view", "XFormView", "XFormPrim", "XFormPrimView"}, name


# ----------------------------------------------------------------------------------
# 2. Clones are copies; the markers sit outside them
# ----------------------------------------------------------------------------------
def _inherits(stage, path):
    return [spec.inheritPathList.GetAddedOrExplicitItems() for spec in stage.GetPrimAtPath(path).GetPrimStack()]


def test_clones_are_copies_without_inherit_arcs(built):
    stage, _ = built
    for i in range(16):
        assert not any(_inherits(stage, scene.env_path(i))), i
        assert stage.GetPrimAtPath(scene.robot_path(i) + "/" + robot.EE_LINK).IsValid(), i
    # editing env_0 leaves env_1 alone (with inherit arcs it would change every env)
    stage.GetPrimAtPath(scene.robot_path(0)).CreateAttribute("probe", Sdf.ValueTypeNames.Int).Set(1)
    assert not stage.GetPrimAtPath(scene.robot_path(1)).GetAttribute("probe").IsValid()


def test_the_default_cloner_would_inherit_env_0():
    stage, _ = build_scene(4, copy_from_source=False)
    assert list(_inherits(stage, scene.env_path(3))[0]) == [Sdf.Path(scene.env_path(0))]


def test_markers_are_not_under_any_env_and_select_no_robot(built):
    from dofbot_rl.teleop.picking import env_id_from_prim_path

    stage, _ = built
    marker_prims = [str(p.GetPath()) for p in Usd.PrimRange(stage.GetPrimAtPath(scene.MARKERS_PATH))]
    assert len(marker_prims) == 3  # the instancer and its two prototypes
    for path in marker_prims:
        assert env_id_from_prim_path(path) is None
        assert not path.startswith(scene.env_path(0) + "/")
    for i in range(16):
        assert [c.GetName() for c in stage.GetPrimAtPath(scene.env_path(i)).GetChildren()] == [scene.ROBOT_NAME]


# ----------------------------------------------------------------------------------
# 3. One batch per frame, every env's markers in place
# ----------------------------------------------------------------------------------
def test_markers_start_hidden_and_each_env_shows_its_own(built):
    stage, origins = built
    n = origins.shape[0]
    instancer = UsdGeom.PointInstancer(stage.GetPrimAtPath(scene.MARKERS_PATH))
    assert instancer.ComputeVisibility() == UsdGeom.Tokens.invisible  # hidden, not parked under the floor
    assert list(instancer.GetProtoIndicesAttr().Get()) == [0] * n + [1] * n
    rng = np.random.default_rng(0)
    goals, tips = rng.uniform(-0.3, 0.3, (n, 3)), rng.uniform(-0.3, 0.3, (n, 3))
    usd_asset.MarkerWriter(stage).write(np.concatenate((goals + origins, tips + origins)))
    assert instancer.ComputeVisibility() == UsdGeom.Tokens.inherited
    xforms = instancer.ComputeInstanceTransformsAtTime(Usd.TimeCode.Default(), Usd.TimeCode.Default())
    world = UsdGeom.Xformable(instancer.GetPrim()).ComputeLocalToWorldTransform(Usd.TimeCode.Default())
    shown = np.array([(m * world).ExtractTranslation() for m in xforms])
    np.testing.assert_allclose(shown[:n], goals + origins, atol=1e-6)
    np.testing.assert_allclose(shown[n:], tips + origins, atol=1e-6)
    colours = {name: tuple(UsdGeom.Sphere(stage.GetPrimAtPath(f"{scene.MARKERS_PATH}/{name}")).GetDisplayColorAttr().Get()[0])
               for name in scene.MARKER_PROTOTYPES}
    np.testing.assert_allclose(colours["goal"], scene.GOAL_RGB, atol=1e-6)  # green goal, red tip (README)
    np.testing.assert_allclose(colours["tip"], scene.TIP_RGB, atol=1e-6)


def test_one_write_is_one_change_notice_with_one_changed_path():
    stage, origins = build_scene(64)
    writer = usd_asset.MarkerWriter(stage)
    notices = []
    listener = Tf.Notice.Register(Usd.Notice.ObjectsChanged, lambda n, s: notices.append(
        [str(p) for p in n.GetChangedInfoOnlyPaths()] + [str(p) for p in n.GetResyncedPaths()]), stage)
    positions = np.zeros((2 * 64, 3), np.float32)
    writer.write(positions)  # first write also shows the instancer
    notices.clear()
    writer.write(positions + 1.0)
    listener.Revoke()
    assert notices == [[scene.MARKERS_PATH + ".positions"]]


def test_marker_writer_rejects_a_wrong_shape(built):
    stage, _ = built
    writer = usd_asset.MarkerWriter(stage)
    with pytest.raises(ValueError, match=r"\(32, 3\)"):
        writer.write(np.zeros((16, 3)))
    with pytest.raises(ValueError, match="no marker PointInstancer"):
        usd_asset.MarkerWriter(stage, "/World/nothing")
