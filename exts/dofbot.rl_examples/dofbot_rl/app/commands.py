"""The panel's actions as ``omni.kit.commands`` (scripts and the Script Editor can drive them).

``DofbotBuildScene`` builds the vectorized scene and is undoable (undo unloads the panel's
scene, then removes what it built; refused while a training run is active). A rebuild
deletes the old scene first with ``DeletePrims`` in the same undo group (see
``controller.py``), so undoing the group brings the old scene back. The other commands
forward to the panel of the running extension; they change runtime state (threads,
files), not the stage, so they have no ``undo`` and never enter the undo stack::

    import omni.kit.commands
    omni.kit.commands.execute("DofbotLoadScene")           # = Load
    omni.kit.commands.execute("DofbotTrain", resume=False)  # = Train (Resume with resume=True)
    omni.kit.commands.execute("DofbotStop")
    omni.kit.commands.execute("DofbotLoadCheckpoint", path="runs/DofbotReacher/nn/DofbotReacher.pth")
    omni.kit.commands.execute("DofbotTest")
"""

from typing import Any, Callable

import omni.kit.commands
import omni.usd

from dofbot_rl import scene


class DofbotBuildSceneCommand(omni.kit.commands.Command):
    """Build ``/World/envs/env_<i>/Dofbot`` for ``num_envs`` robots, and their goal/tip markers.

    Args:
        usd_path: the robot USD (``data/robots/dofbot/dofbot.usda``).
        num_envs: robots to build (>= 1).
        spacing: grid spacing (m).

    ``env_0`` is defined once and copied by the running extension's core API ``GridCloner``
    with ``copy_from_source=True``: every env is a full copy (no inherit arc to ``env_0``,
    so editing ``env_0`` notifies no other env). The markers are one PointInstancer at
    :data:`dofbot_rl.scene.MARKERS_PATH`, outside the cloned envs, with a full xform-op
    stack and no XForm view over it (a World reset does not touch it); see
    :func:`dofbot_rl.usd_asset.define_markers`.

    After ``do()``, :attr:`env_origins` holds the ``(num_envs, 3)`` env positions (m).
    """

    def __init__(self, usd_path: str, num_envs: int, spacing: float):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.usd_path, self.num_envs, self.spacing = str(usd_path), int(num_envs), float(spacing)
        self.env_origins = None
        self._created = []

    def do(self):
        """Build the scene; returns the env origins."""
        from pxr import UsdGeom, UsdLux

        from dofbot_rl import usd_asset
        ext = get_instance()
        if ext is None or ext.api is None:
            raise RuntimeError("DofbotBuildScene needs the running dofbot.rl_examples extension and a supported Isaac Sim")
        guard = ext.model.unload_guard() if ext.model is not None else ""
        if guard:  # e.g. a redo while training: the scene being trained on stays
            raise RuntimeError(f"DofbotBuildScene refused: {guard}")
        api = ext.api
        stage = omni.usd.get_context().get_stage()
        if stage.GetPrimAtPath(scene.ENV_ROOT).IsValid():
            raise RuntimeError(f"{scene.ENV_ROOT} exists: delete it first (DeletePrims, in the same undo group)")
        self._created = []
        for path, define in ((scene.WORLD, UsdGeom.Xform.Define),
                             (scene.WORLD + "/light", lambda s, p: UsdLux.DomeLight.Define(s, p).CreateIntensityAttr(1000.0))):
            if not stage.GetPrimAtPath(path).IsValid():
                define(stage, path)
                self._created.append(path)
        usd_asset.define_env_source(stage, self.usd_path)
        cloner = api.GridCloner(spacing=self.spacing)
        cloner.define_base_env(scene.ENV_ROOT)
        paths = cloner.generate_paths(scene.CLONER_ROOT, self.num_envs)
        self.env_origins = cloner.clone(source_prim_path=scene.env_path(0), prim_paths=paths, replicate_physics=True,
                                        copy_from_source=True)
        usd_asset.define_markers(stage, self.num_envs)
        self._created.append(scene.ENV_ROOT)
        return self.env_origins

    def undo(self):
        """Unload the panel's scene (physics lets go of the prims), then remove what :meth:`do` built.

        Refused while a training run is active (Stop first: it saves a checkpoint): raises
        before anything changes, and the panel's status says why. Never waits for the
        worker thread (the sim loop polls it across app updates).

        Raises:
            RuntimeError: a training run is active.
        """
        ext = get_instance()
        if ext is not None and ext.model is not None and not ext.model.unload(refuse_if_training=True):
            raise RuntimeError(f"undo of Load refused: {ext.model.unload_guard()}")
        stage = omni.usd.get_context().get_stage()
        for path in reversed(self._created):
            if stage.GetPrimAtPath(path).IsValid():
                stage.RemovePrim(path)
        self._created = []


class _PanelCommand(omni.kit.commands.Command):
    """Base: forwards to the running extension's panel model (no ``undo``: not on the undo stack)."""

    def _model(self):
        ext = get_instance()
        if ext is None or ext.model is None:
            raise RuntimeError("the dofbot.rl_examples extension is not running")
        return ext


class DofbotLoadSceneCommand(_PanelCommand):
    """Press Load (the scene is built asynchronously; its building is undoable)."""

    def do(self):
        """Returns False when Load is disabled (the panel's status says why)."""
        return self._model().model.press("load")


class DofbotTrainCommand(_PanelCommand):
    """Press Train, or Resume with ``resume=True``."""

    def __init__(self, resume: bool = False):
        self.resume = bool(resume)

    def do(self):
        """Returns False when the button is disabled."""
        return self._model().model.press("resume" if self.resume else "train")


class DofbotStopCommand(_PanelCommand):
    """Press Stop."""

    def do(self):
        """Returns False when nothing runs."""
        return self._model().model.press("stop")


class DofbotTestCommand(_PanelCommand):
    """Press Test (plays the selected checkpoint)."""

    def do(self):
        """Returns False when Test is disabled."""
        return self._model().model.press("test")


class DofbotLoadCheckpointCommand(_PanelCommand):
    """Select a checkpoint file; returns whether it fits the task."""

    def __init__(self, path: str):
        self.path = str(path)

    def do(self):
        """Returns the validation result."""
        return self._model().model.pick_checkpoint_file(self.path)


COMMANDS = (DofbotBuildSceneCommand, DofbotLoadSceneCommand, DofbotTrainCommand, DofbotStopCommand, DofbotTestCommand,
            DofbotLoadCheckpointCommand)


_extension_getter: Callable[[], Any] = lambda: None  # noqa: E731 - set by register()


def get_instance():
    """The running extension (the one that registered the commands), or None."""
    return _extension_getter()


def register(extension_getter: Callable[[], Any]) -> None:
    """Register the commands (extension start-up).

    Args:
        extension_getter: returns the running extension (its ``model``), so that this module
            needs no import of the extension module (no import cycle).
    """
    global _extension_getter
    _extension_getter = extension_getter
    for command in COMMANDS:
        omni.kit.commands.register(command)


def unregister() -> None:
    """Unregister them (extension shutdown)."""
    global _extension_getter
    for command in reversed(COMMANDS):
        omni.kit.commands.unregister(command)
    _extension_getter = lambda: None  # noqa: E731
