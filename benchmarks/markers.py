"""The panel's marker update per frame, old versus new, in plain usd-core: figures for docs/extension.md.

Both variants run on an in-memory stage holding the Kit scene of N robots (each env
references ``data/robots/dofbot/dofbot.usda``), with one ``Usd.Notice.ObjectsChanged``
listener that collects the changed paths (Kit's Fabric/Hydra listeners do at least this
much per notice, so the path count is reported too):

* old (before issue 16): a goal and a tip sphere in ``env_0``, clones that *inherit*
  ``env_0`` (GridCloner's default ``copy_from_source=False``); per frame the goals whose
  value changed (``torch.nonzero``) and the first 256 tips written one prim at a time as
  ``XFormPrim.set_local_poses`` does (``tolist()``, then per prim ``GetPropertyNames()``,
  ``GetAttribute("xformOp:translate").Set(...)``). Two frames: a typical one (no goal
  changed) and the one where every env timed out together (all N goals);
* new: full copies (``copy_from_source=True``) and one PointInstancer outside the envs;
  per frame every goal and every tip in one ``positions`` write inside an
  ``Sdf.ChangeBlock`` (:class:`dofbot_rl.usd_asset.MarkerWriter`), plus the task tensors'
  concatenation and the one device-to-host copy.

Kit's own listeners (Fabric population, Hydra) add to both; the ratio is the point.

Usage: python benchmarks/markers.py [--robots 512 4096] [--frames 30]
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "exts", "dofbot.rl_examples"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from pxr import Gf, Sdf, Tf, Usd, UsdGeom  # noqa: E402

from dofbot_rl import scene, usd_asset  # noqa: E402
from dofbot_rl.paths import robot_model_path  # noqa: E402

OLD_MAX_TIP_MARKERS = 256


def _grid(num_envs):
    side = int(np.ceil(np.sqrt(num_envs)))
    return [(float(i % side), float(i // side), 0.0) for i in range(num_envs)]


def _clone(stage, num_envs, copy_from_source):
    """GridCloner.clone's USD branch (isaacsim.core.cloner cloner.py)."""
    layer, source = stage.GetRootLayer(), scene.env_path(0)
    with Sdf.ChangeBlock():
        for i, origin in enumerate(_grid(num_envs)[1:], start=1):
            path = scene.env_path(i)
            spec = Sdf.CreatePrimInLayer(layer, path)
            if copy_from_source:
                Sdf.CopySpec(layer, Sdf.Path(source), layer, Sdf.Path(path))
            else:
                spec.inheritPathList.Prepend(source)
            attr = spec.attributes.get("xformOp:translate") or Sdf.AttributeSpec(spec, "xformOp:translate",
                                                                                 Sdf.ValueTypeNames.Double3)
            attr.default = Gf.Vec3d(*origin)
            order = spec.attributes.get("xformOpOrder") or Sdf.AttributeSpec(spec, "xformOpOrder",
                                                                             Sdf.ValueTypeNames.TokenArray)
            order.default = ["xformOp:translate"]


def _stage(num_envs, old):
    stage = Usd.Stage.CreateInMemory()
    UsdGeom.Xform.Define(stage, scene.ENV_ROOT)
    usd_asset.define_env_source(stage, str(robot_model_path("usd")))
    if old:
        for name, radius in (("goal", 0.015), ("tip", 0.010)):
            sphere = UsdGeom.Sphere.Define(stage, f"{scene.env_path(0)}/{name}")
            sphere.CreateRadiusAttr(radius)
            sphere.AddTranslateOp().Set(Gf.Vec3d(0.0, 0.0, -1.0))
    _clone(stage, num_envs, copy_from_source=not old)
    if not old:
        usd_asset.define_markers(stage, num_envs)
    return stage


class _Counter:
    def __init__(self, stage):
        self.paths = 0
        self.notices = 0
        self._listener = Tf.Notice.Register(Usd.Notice.ObjectsChanged, self._on, stage)

    def _on(self, notice, sender):
        self.notices += 1
        self.paths += len(notice.GetChangedInfoOnlyPaths()) + len(notice.GetResyncedPaths())


class OldMarkers:
    """The update of ``IsaacPhysicsBackend.update_markers`` before issue 16."""

    def __init__(self, stage, num_envs):
        self.goals = [stage.GetPrimAtPath(f"{scene.env_path(i)}/goal") for i in range(num_envs)]
        self.tips = [stage.GetPrimAtPath(f"{scene.env_path(i)}/tip") for i in range(num_envs)]
        self.shown = None

    @staticmethod
    def _set_local_poses(prims, translations, indices):  # XFormPrim.set_local_poses, translations only
        translations, indices = translations.tolist(), indices.tolist()
        for write_idx, i in enumerate(indices):
            properties = prims[i].GetPropertyNames()
            translation = Gf.Vec3d(*translations[write_idx])
            assert "xformOp:translate" in properties
            prims[i].GetAttribute("xformOp:translate").Set(translation)

    def update(self, goal_pos, tip_pos):
        if self.shown is None:
            changed = torch.arange(goal_pos.shape[0])
        else:
            changed = torch.nonzero((goal_pos != self.shown).any(dim=1)).flatten()
        if changed.numel():
            self._set_local_poses(self.goals, goal_pos[changed], changed)
            self.shown = goal_pos.clone()
        n = min(goal_pos.shape[0], OLD_MAX_TIP_MARKERS)
        self._set_local_poses(self.tips, tip_pos[:n], torch.arange(n))


class NewMarkers:
    """``IsaacPhysicsBackend.update_markers`` now."""

    def __init__(self, stage, num_envs):
        self.writer = usd_asset.MarkerWriter(stage)
        self.origins = torch.tensor(_grid(num_envs), dtype=torch.float32).repeat(2, 1)

    def update(self, goal_pos, tip_pos):
        self.writer.write((torch.cat((goal_pos, tip_pos)) + self.origins).cpu().numpy())


def _frames(markers, counter, num_envs, frames, new_goals):
    gen = torch.Generator().manual_seed(0)
    goal = torch.rand(num_envs, 3, generator=gen)
    markers.update(goal, torch.rand(num_envs, 3, generator=gen))  # first frame: everything shown once
    times, paths, notices = [], [], []
    for _ in range(frames):
        if new_goals:
            goal = torch.rand(num_envs, 3, generator=gen)
        tip = torch.rand(num_envs, 3, generator=gen)
        counter.paths = counter.notices = 0
        start = time.perf_counter()
        markers.update(goal, tip)
        times.append(time.perf_counter() - start)
        paths.append(counter.paths)
        notices.append(counter.notices)
    return statistics.median(times) * 1e3, statistics.median(paths), statistics.median(notices)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--robots", type=int, nargs="+", default=[512, 4096])
    parser.add_argument("--frames", type=int, default=30)
    args = parser.parse_args(argv)
    print(f"usd-core {Usd.GetVersion()}, torch {torch.__version__}, {args.frames} frames each, median ms per frame")
    print(f"{'robots':>7} {'variant':<5} {'frame':<22} {'ms/frame':>9} {'notices':>8} {'changed paths':>14}")
    for num_envs in args.robots:
        for name, cls, old in (("old", OldMarkers, True), ("new", NewMarkers, False)):
            start = time.perf_counter()
            stage = _stage(num_envs, old)
            built = time.perf_counter() - start
            markers, counter = cls(stage, num_envs), _Counter(stage)
            for label, new_goals in (("tips only", False), ("all goals reset", True)):
                ms, paths, notices = _frames(markers, counter, num_envs, args.frames, new_goals)
                print(f"{num_envs:>7} {name:<5} {label:<22} {ms:>9.2f} {notices:>8.0f} {paths:>14.0f}")
            print(f"{num_envs:>7} {name:<5} {'(scene build, s)':<22} {built:>9.2f}")


if __name__ == "__main__":
    main()
