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

import logging
from dataclasses import dataclass
from typing import Any, Callable, Optional, Tuple

import carb
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
    """

    family: str
    version: str
    World: Any
    ArticulationView: Any
    RigidView: Any
    GridCloner: Any
    add_reference_to_stage: Callable
    set_camera_view: Callable

    @property
    def description(self) -> str:
        """One line for the start-up log: version and path taken."""
        modules = "isaacsim.core.api / isaacsim.core.prims" if self.family == ISAACSIM else "omni.isaac.core"
        return f"Isaac Sim {self.version or '(unknown version)'}: using {modules} ({self.family} family)"

    def articulation_view(self, prim_paths_expr: str, name: str):
        """An articulation view (``Articulation`` in 4.5+, ``ArticulationView`` before)."""
        return self.ArticulationView(prim_paths_expr=prim_paths_expr, name=name, reset_xform_properties=False)

    def rigid_view(self, prim_paths_expr: str, name: str):
        """A rigid-body view (``RigidPrim`` in 4.5+, ``RigidPrimView`` before)."""
        return self.RigidView(prim_paths_expr=prim_paths_expr, name=name, reset_xform_properties=False)

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

    def physics_step(self, world, update_fabric: bool) -> None:
        """One physics step without rendering; ``update_fabric`` pushes the result to Fabric
        for the viewport (4.5+ only: 2023.1-4.2 write physics results to USD)."""
        if self.family == ISAACSIM:
            world.step(render=False, update_fabric=update_fabric)
        else:
            world.step(render=False)


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
    """Enable ``omni.isaac.ml_archive`` where the app has it (Isaac Sim 2023.1 - 4.2 ship torch
    there), before anything imports torch; True when it is enabled. Later apps ship torch in
    their Python and lack the extension (False, nothing to do)."""
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
