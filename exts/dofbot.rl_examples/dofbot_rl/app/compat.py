"""The one place that knows Isaac Sim's API families and Kit's version differences.

Two core API families exist (``dofbot_rl.isaacsim_versions``):

* ``isaacsim`` (Isaac Sim 4.5-6.x): ``isaacsim.core.api.World``,
  ``isaacsim.core.prims.Articulation`` / ``RigidPrim`` (views),
  ``isaacsim.core.cloner.GridCloner``, ``isaacsim.core.utils.stage``,
  ``isaacsim.core.version``. Deprecated in 6.x in favour of
  ``isaacsim.core.experimental.*`` but still shipped and loadable;
* ``omni.isaac`` (2023.1-4.2): ``omni.isaac.core.World``,
  ``omni.isaac.core.articulations.ArticulationView``,
  ``omni.isaac.core.prims.RigidPrimView``,
  ``omni.isaac.cloner.GridCloner``, ``omni.isaac.core.utils.stage``, ``omni.isaac.version``.

:func:`resolve_core_api` tries ``isaacsim`` first, then ``omni.isaac``: for each it
enables the family's extensions if the app has them (they are *optional* dependencies
in ``extension.toml``, so one folder loads on every version) and imports the names.
The few call differences (view classes, ``update_fabric``, stage-event subscription)
are methods of :class:`CoreApi` or functions here; no other module branches on versions.
"""

import inspect
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, FrozenSet, Optional, Tuple

import carb
import carb.settings
import omni.kit.app

from dofbot_rl.isaacsim_versions import ISAACSIM, OMNI_ISAAC, support_message

log = logging.getLogger(__name__)

#: Extensions each family needs, in the order they are enabled.
FAMILY_EXTENSIONS = {
    ISAACSIM: ("isaacsim.core.version", "isaacsim.core.utils", "isaacsim.core.cloner", "isaacsim.core.prims",
               "isaacsim.core.api"),
    OMNI_ISAAC: ("omni.isaac.version", "omni.isaac.cloner", "omni.isaac.core"),
}


class UnsupportedApp(RuntimeError):
    """The running app offers no usable core API family; the message says what to do."""


@dataclass
class CoreApi:
    """The resolved core API: classes and functions of one family.

    Attributes:
        family: ``isaacsim`` or ``omni.isaac``.
        version: the app's version string (``""`` when unreadable).
        World: the ``World`` class.
        ArticulationView, RigidView: view classes over prim-path expressions.
        GridCloner: the cloner class.
        add_reference_to_stage: ``(usd_path, prim_path) -> Usd.Prim``.
        set_camera_view: ``(eye, target)`` for the active viewport camera.
        step_params: the parameter names of ``World.step`` in this app (``update_fabric``
            arrived with isaacsim.core.api 4.7, Isaac Sim 5.1).
    """

    family: str
    version: str
    World: Any
    ArticulationView: Any
    RigidView: Any
    GridCloner: Any
    add_reference_to_stage: Callable
    set_camera_view: Callable
    step_params: FrozenSet[str] = field(default_factory=frozenset)

    def __post_init__(self):
        if not self.step_params:
            self.step_params = frozenset(inspect.signature(self.World.step).parameters)

    @property
    def description(self) -> str:
        """One line for the start-up log: version and path taken."""
        modules = "isaacsim.core.api / isaacsim.core.prims" if self.family == ISAACSIM else "omni.isaac.core"
        return f"Isaac Sim {self.version or '(unknown version)'}: using {modules} ({self.family} family)"

    def articulation_view(self, prim_paths_expr: str, name: str):
        """An articulation view (``Articulation`` in 4.5+, ``ArticulationView`` before)."""
        return self.ArticulationView(prim_paths_expr=prim_paths_expr, name=name, reset_xform_properties=False)

    def rigid_view(self, prim_paths_expr: str, name: str):
        """A rigid-body view (``RigidPrim`` in 4.5+, ``RigidPrimView`` before); no contact
        sensors (the default ``True`` authors a sleep threshold on every link)."""
        return self.RigidView(prim_paths_expr=prim_paths_expr, name=name, reset_xform_properties=False,
                              prepare_contact_sensors=False)

    @staticmethod
    def push_to_fabric(world) -> bool:
        """Copy the current physics state to Fabric once, as ``World.render`` does before an app
        update (``omni.physxfabric``'s ``force_update``); False where the app has no
        ``omni.physx.fabric`` enabled (physics then writes to USD, nothing to push)."""
        if not omni.kit.app.get_app().get_extension_manager().is_extension_enabled("omni.physx.fabric"):
            return False
        from omni.physxfabric import get_physx_fabric_interface

        get_physx_fabric_interface().force_update(world.get_physics_dt(), world.current_time)
        return True

    def physics_step(self, world, update_fabric: bool) -> bool:
        """One physics step without rendering, only while the timeline plays (``World.step``
        steps nothing otherwise). ``update_fabric`` pushes the result to Fabric for the viewport:
        through ``World.step(update_fabric=)`` where it exists (5.1+), else with
        :func:`sync_fabric` (2023.1 - 5.0, whose World syncs Fabric only in ``render()``).

        Returns:
            False (nothing stepped) when the timeline is paused or stopped.
        """
        if not world.is_playing():
            return False
        if "update_fabric" in self.step_params:
            world.step(render=False, update_fabric=update_fabric)
        else:
            world.step(render=False)
            if update_fabric:
                sync_fabric(world)
        return True


def sync_fabric(world) -> None:
    """Push PhysX's results to Fabric as ``World.render()`` does (2023.1 - 5.0).

    With a CUDA device the core API turns ``/physics/updateToUsd`` off and the viewport
    reads Fabric, which these versions update only in ``render()``/``render_async()``.
    Does nothing where ``omni.physx.fabric`` is not enabled (physics then writes USD).
    """
    manager = omni.kit.app.get_app().get_extension_manager()
    if not manager.is_extension_enabled("omni.physx.fabric"):
        return
    from omni.physxfabric import get_physx_fabric_interface

    fabric = get_physx_fabric_interface()
    update = getattr(fabric, "force_update", None) or fabric.update  # force_update: 4.5+; update: before
    update(world.get_physics_dt(), world.current_time)


#: Kit's update loop steps PhysX while the timeline plays unless this is False.
PLAY_SIMULATIONS = "/app/player/playSimulations"


def app_steps_physics(enabled: bool) -> None:
    """Let Kit's update loop step PhysX while the timeline plays (True, Kit's default) or not
    (False: only the backend steps). Every False is restored on every path (AST-checked in
    ``tests/test_isaacsim_contract.py``)."""
    carb.settings.get_settings().set_bool(PLAY_SIMULATIONS, bool(enabled))


def timeline():
    """The default ``omni.timeline`` interface (play state of the toolbar's Play/Pause/Stop)."""
    import omni.timeline

    return omni.timeline.get_timeline_interface()


async def stop_timeline_async() -> None:
    """Stop the timeline (PhysX lets go of the stage) and wait one app update, as
    OmniIsaacGymEnvs does before it rebuilds a scene."""
    tl = timeline()
    if not tl.is_stopped():
        tl.stop()
        await omni.kit.app.get_app().next_update_async()


def unregister_replicator(stage) -> None:
    """Drop the physics replicator a previous ``GridCloner.clone(replicate_physics=True)``
    registered on ``stage`` (a 1-robot clone after an N-robot one leaves it on 4.5+)."""
    from omni.physx import get_physx_replicator_interface
    from pxr import UsdUtils

    get_physx_replicator_interface().unregister_replicator(UsdUtils.StageCache.Get().Insert(stage).ToLongInt())


def _enable(names: Tuple[str, ...]) -> bool:
    """Enable ``names`` when the app has all of them locally; False (nothing enabled) otherwise.

    Only local extensions count: a family the app lacks is skipped without asking the
    online registry.
    """
    manager = omni.kit.app.get_app().get_extension_manager()
    local = {ext.get("name") for ext in manager.get_extensions()}
    if not set(names) <= local:
        return False
    for name in names:
        if not manager.is_extension_enabled(name) and not manager.set_extension_enabled_immediate(name, True):
            return False
    return True


def enable_torch_provider() -> bool:
    """Enable ``omni.isaac.ml_archive`` where the app has it, before anything imports torch;
    True when it is enabled. 2023.1 - 4.2 ship torch only there; 5.0 and 5.1 still ship it
    (and isaacsim.core.api depends on it), 6.0 ships it deprecated; apps without it
    (False) have torch in their Python."""
    return _enable(("omni.isaac.ml_archive",))


def _import_family(family: str) -> Optional[CoreApi]:
    if family == ISAACSIM:
        from isaacsim.core.api import World
        from isaacsim.core.cloner import GridCloner
        from isaacsim.core.prims import Articulation, RigidPrim
        from isaacsim.core.utils.stage import add_reference_to_stage
        from isaacsim.core.utils.viewports import set_camera_view
        from isaacsim.core.version import get_version

        return CoreApi(family, get_version()[0], World, Articulation, RigidPrim, GridCloner, add_reference_to_stage,
                       set_camera_view)
    from omni.isaac.cloner import GridCloner
    from omni.isaac.core import World
    from omni.isaac.core.articulations import ArticulationView
    from omni.isaac.core.prims import RigidPrimView
    from omni.isaac.core.utils.stage import add_reference_to_stage
    from omni.isaac.core.utils.viewports import set_camera_view
    from omni.isaac.version import get_version

    return CoreApi(family, get_version()[0], World, ArticulationView, RigidPrimView, GridCloner,
                   add_reference_to_stage, set_camera_view)


def resolve_core_api() -> CoreApi:
    """Find the core API of the running app (``isaacsim`` first, then ``omni.isaac``).

    Logs the version and the path taken (carb ``info``; the failures of a family it
    skipped at ``verbose``).

    Raises:
        UnsupportedApp: when no family can be enabled and imported, or the version is
            older than 2023.1; the message is meant for the panel.
    """
    tried = []
    for family in (ISAACSIM, OMNI_ISAAC):
        if not _enable(FAMILY_EXTENSIONS[family]):
            tried.append(f"{family}: extensions not in this app")
            continue
        try:
            api = _import_family(family)
        except ImportError as exc:
            tried.append(f"{family}: {exc}")
            carb.log_verbose(f"dofbot.rl_examples: {family} family not importable: {exc}")
            continue
        problem = support_message(api.version, api.family)
        if problem:
            raise UnsupportedApp(problem)
        carb.log_info(f"dofbot.rl_examples: {api.description}")
        return api
    raise UnsupportedApp(support_message("", None) + f" [Kit {kit_version()}; " + "; ".join(tried) + "]")


def kit_version() -> str:
    """Kit's build version (``omni.kit.app``), for messages."""
    try:
        return omni.kit.app.get_app().get_build_version()
    except Exception:  # noqa: BLE001 - only used in an error message
        return ""


# ----------------------------------------------------------------------------------
# Kit differences outside the core API
# ----------------------------------------------------------------------------------
def subscribe_stage_event(event_type, callback: Callable[[Any], None], observer_name: str):
    """Subscribe ``callback(event)`` to a stage event of the default USD context.

    Kit 106.5+ (Isaac Sim 4.5+) dispatches stage events by name through
    ``carb.eventdispatcher``; older Kit through the context's event stream (filtered here).

    Returns:
        The subscription; keep it, drop it (``None``) to unsubscribe.
    """
    import omni.usd

    context = omni.usd.get_context()
    if hasattr(context, "stage_event_name"):
        import carb.eventdispatcher

        return carb.eventdispatcher.get_eventdispatcher().observe_event(
            event_name=context.stage_event_name(event_type), on_event=callback, observer_name=observer_name)
    wanted = int(event_type)
    return context.get_stage_event_stream().create_subscription_to_pop(
        lambda event: callback(event) if event.type == wanted else None, name=observer_name)


def examples_browser():
    """The Robotics Examples browser extension (4.5+), or ``None`` where the app has none."""
    manager = omni.kit.app.get_app().get_extension_manager()
    if not manager.is_extension_enabled("isaacsim.examples.browser"):
        return None
    from isaacsim.examples.browser import get_instance

    return get_instance()


def set_viewport_updates(enabled: bool) -> None:
    """Freeze or resume the active viewport's rendering (render modes ``ui_only`` / ``none``)."""
    try:
        from omni.kit.viewport.utility import get_active_viewport
    except ImportError:  # no viewport in this app (headless tests)
        return
    viewport = get_active_viewport()
    if viewport is not None and hasattr(viewport, "updates_enabled"):
        viewport.updates_enabled = bool(enabled)


def viewport_has_focus() -> bool:
    """True when the active viewport window has keyboard focus (True where unknown)."""
    try:
        from omni.kit.viewport.utility import get_active_viewport_window
    except ImportError:
        return True
    window = get_active_viewport_window()
    return True if window is None else bool(getattr(window, "focused", True))
