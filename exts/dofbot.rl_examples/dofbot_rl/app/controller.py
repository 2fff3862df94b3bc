"""Kit side of Load: stop the timeline, build the scene (undoable command), start PhysX, hand
the backend to the model.

The panel model calls :meth:`PanelController.loader` with a validated config; loading is
asynchronous in Kit (the World resets over app updates), so the coroutine is kept in
:attr:`PanelController.load_task` and cancelled on shutdown, never left to run alone.
"""

import asyncio
import logging
import math
from typing import Optional

import carb
import omni.kit.commands

from dofbot_rl.paths import robot_model_path

log = logging.getLogger(__name__)


class PanelController:
    """Builds scenes for a :class:`dofbot_rl.panel.PanelModel` with the resolved core API.

    Args:
        api: :class:`dofbot_rl.app.compat.CoreApi`.
        model: the panel model (its ``loader`` is set to :meth:`loader`).
    """

    def __init__(self, api, model):
        self.api = api
        self.model = model
        self.load_task: Optional[asyncio.Future] = None
        model.loader = self.loader

    def loader(self, cfg) -> None:
        """Start building the scene for ``cfg`` (returns at once)."""
        if self.load_task is not None and not self.load_task.done():
            raise RuntimeError("a scene is already being loaded")
        self.load_task = asyncio.ensure_future(self.load_async(cfg))

    async def load_async(self, cfg) -> None:
        """Build ``cfg.num_envs`` robots, start the simulation, and report to the model."""
        from dofbot_rl.app.isaac_physics import IsaacPhysicsBackend, create_world_async, grid_spacing

        try:
            self.model.session.detach()  # the old backend lets go of the physics first
            usd_path = robot_model_path("usd")
            if not usd_path.is_file():
                raise FileNotFoundError(f"no robot USD at {usd_path}: run `python -m dofbot_rl.usd_asset`")
            import omni.kit.undo
            import omni.usd

            from dofbot_rl.app import compat
            from dofbot_rl.scene import ENV_ROOT

            await compat.stop_timeline_async()  # PhysX lets go of the old scene before it changes
            compat.unregister_replicator(omni.usd.get_context().get_stage())  # the old clones' replicator
            with omni.kit.undo.group():  # one undo step: the rebuild, and the old scene back on undo
                if omni.usd.get_context().get_stage().GetPrimAtPath(ENV_ROOT).IsValid():
                    omni.kit.commands.execute("DeletePrims", paths=[ENV_ROOT])
                ok, origins = omni.kit.commands.execute("DofbotBuildScene", usd_path=str(usd_path),
                                                        num_envs=int(cfg.num_envs),
                                                        spacing=grid_spacing(cfg.task.env.env_spacing))
            if not ok:
                raise RuntimeError("building the scene failed (see the console)")
            world = await create_world_async(self.api, float(cfg.task.sim.dt), cfg.sim_device)
            backend = await IsaacPhysicsBackend.create_async(self.api, world, origins, cfg.sim_device)
            if self.model.finish_load(backend):
                extent = max(1.0, math.sqrt(cfg.num_envs) * cfg.task.env.env_spacing / 2 + 0.5)
                self.api.set_camera_view(eye=[extent, extent, 0.6 * extent], target=[0.0, 0.0, 0.1])
        except asyncio.CancelledError:
            self.model.fail_load(RuntimeError("loading was cancelled"))
            raise
        except Exception as exc:  # shown in the panel and logged, never swallowed
            carb.log_error(f"dofbot.rl_examples: Load failed: {type(exc).__name__}: {exc}")
            self.model.fail_load(exc)

    def cancel(self) -> None:
        """Cancel a load in progress (extension shutdown)."""
        if self.load_task is not None and not self.load_task.done():
            self.load_task.cancel()
        self.load_task = None
