"""The Kit entry of ``dofbot.rl_examples``: lifecycle only.

Start-up, in order (shutdown undoes each step in reverse):

1. the panel model (settings from carb.settings) - if the Python packages the model needs
   (torch, rl_games, hydra) are missing, the window only shows how to install them;
2. the core API of the running Isaac Sim (:mod:`dofbot_rl.app.compat`; version and path
   logged) - an unsupported app disables the panel with the reason shown in it;
3. the Load controller, the ``omni.kit.commands``, the window;
4. the action ``dofbot.rl_examples: toggle_window`` (``omni.kit.actions.core``), the menu
   item *Isaac Examples > Dofbot RL Examples* that runs it and, where
   ``isaacsim.examples.browser`` is enabled, the browser entry (category "RL Examples").
   Not "RL Examples": OmniIsaacGymEnvs registers that item and window title, and both
   extensions can be enabled together (the 2023.1 gym app);
5. the sim loop coroutine and the robot picker (selection + keyboard).

Any other start-up error is logged with ``carb.log_error`` and re-raised, so Kit reports the
extension as failed instead of running half set up. Kit modules are imported where each
step needs them, so a bare Kit kernel runs the steps its extensions allow before the
first missing one fails loudly (``tests/test_kit_kernel.py``).
"""

import traceback
from pathlib import Path
from typing import Callable, List, Optional

import carb
import omni.ext

MENU_ROOT = "Isaac Examples"
MENU_ITEM = "Dofbot RL Examples"
TOGGLE_ACTION = "toggle_window"
BROWSER_CATEGORY = "RL Examples"
BROWSER_NAME = "Dofbot Reacher (RL Examples)"

_instance: Optional["DofbotRlExtension"] = None


def get_instance() -> Optional["DofbotRlExtension"]:
    """The running extension (for commands, scripts and the Kit tests), or ``None``."""
    return _instance


class DofbotRlExtension(omni.ext.IExt):
    """Registers the RL Examples panel with Isaac Sim and tears it down symmetrically.

    Attributes (``None`` when not available): ``model`` (:class:`dofbot_rl.panel.PanelModel`),
    ``api`` (:class:`dofbot_rl.app.compat.CoreApi`), ``window``, ``controller``, ``sim_loop``, ``picker``.
    """

    def on_startup(self, ext_id: str) -> None:
        """Build and register everything (see the module docstring)."""
        global _instance
        self.ext_id = ext_id
        self.model = self.api = self.window = self.controller = self.sim_loop = self.picker = None
        self._teardown: List[Callable[[], None]] = []
        try:
            self._startup()
        except Exception:
            carb.log_error(f"dofbot.rl_examples failed to start:\n{traceback.format_exc()}")
            self._shutdown()
            raise
        _instance = self
        self._teardown.append(_clear_instance)

    def on_shutdown(self) -> None:
        """Undo every start-up step in reverse order."""
        self._shutdown()

    # -- start-up ----------------------------------------------------------------------
    def _startup(self) -> None:
        from dofbot_rl.app.compat import enable_torch_provider

        enable_torch_provider()  # 2023.1 - 4.2: torch comes from omni.isaac.ml_archive
        self.model, problem = _make_model()
        if self.model is not None:
            self._teardown.append(lambda: self.model.shutdown(wait_s=0.0))  # never joins the worker on Kit's thread
            self._teardown.append(self.model.subscribe_errors(
                lambda message: carb.log_error(f"dofbot.rl_examples: {message}")))
            self.api = self._resolve_api()
        from dofbot_rl.app.window import RlExamplesWindow

        self.window = RlExamplesWindow(self.model, message=problem, on_visibility_changed=self._refresh_menu)
        self._teardown.append(self.window.destroy)
        if self.api is not None:
            from dofbot_rl.app import commands
            from dofbot_rl.app.controller import PanelController
            from dofbot_rl.app.selection import RobotPicker
            from dofbot_rl.app.sim_loop import SimLoop

            self.controller = PanelController(self.api, self.model)
            self._teardown.append(self.controller.cancel)
            commands.register(get_instance)
            self._teardown.append(commands.unregister)
        self._add_menu()
        self._add_browser_entry()
        if self.api is not None:
            self.sim_loop = SimLoop(self.model)
            self.sim_loop.start()
            self._teardown.append(self.sim_loop.stop)
            self.picker = RobotPicker(self.model)
            self.picker.start()
            self._teardown.append(self.picker.stop)

    def _resolve_api(self):
        from dofbot_rl.app.compat import UnsupportedApp, resolve_core_api

        try:
            api = resolve_core_api()
        except UnsupportedApp as exc:
            carb.log_warn(f"dofbot.rl_examples: {exc}")
            self.model.block(str(exc))
            return None
        self.model._info(f"{api.description}. Choose a task and the number of robots, then press Load.")
        return api

    def _add_menu(self) -> None:
        import omni.kit.actions.core
        import omni.kit.menu.utils
        from omni.kit.menu.utils import MenuItemDescription

        ext_name = omni.ext.get_extension_name(self.ext_id)
        registry = omni.kit.actions.core.get_action_registry()
        registry.register_action(ext_name, TOGGLE_ACTION, self.toggle_window, display_name="Dofbot RL Examples",
                                 description="Show or hide the Dofbot RL Examples panel")
        self._teardown.append(lambda: registry.deregister_action(ext_name, TOGGLE_ACTION))
        items = [MenuItemDescription(name=MENU_ITEM, onclick_action=(ext_name, TOGGLE_ACTION), ticked=True,
                                     ticked_fn=lambda: self.window is not None and self.window.visible)]
        omni.kit.menu.utils.add_menu_items(items, MENU_ROOT)
        self._teardown.append(lambda: omni.kit.menu.utils.remove_menu_items(items, MENU_ROOT))

    def _refresh_menu(self, visible: bool) -> None:
        import omni.kit.menu.utils

        omni.kit.menu.utils.refresh_menu_items(MENU_ROOT)

    def _add_browser_entry(self) -> None:
        from dofbot_rl.app.compat import examples_browser

        browser = examples_browser()
        if browser is None:
            carb.log_info("dofbot.rl_examples: no isaacsim.examples.browser in this app; menu entry only")
            return
        thumbnail = str(Path(__file__).resolve().parents[2] / "data" / "preview.png")
        browser.register_example(name=BROWSER_NAME, execute_entrypoint=self.show_window, ui_hook=self.window.build_browser_ui,
                                 category=BROWSER_CATEGORY, thumbnail=thumbnail)
        self._teardown.append(lambda: browser.deregister_example(name=BROWSER_NAME, category=BROWSER_CATEGORY))

    # -- actions -----------------------------------------------------------------------
    def show_window(self) -> None:
        """Show the panel."""
        if self.window is not None:
            self.window.visible = True

    def toggle_window(self) -> None:
        """Show or hide the panel (the menu item)."""
        if self.window is not None:
            self.window.visible = not self.window.visible

    # -- shutdown ----------------------------------------------------------------------
    def _shutdown(self) -> None:
        errors = []
        while self._teardown:
            step = self._teardown.pop()
            try:
                step()
            except Exception:  # keep tearing down; report every failure
                errors.append(traceback.format_exc())
        self.model = self.api = self.window = self.controller = self.sim_loop = self.picker = None
        for error in errors:
            carb.log_error(f"dofbot.rl_examples shutdown: {error}")


def _clear_instance() -> None:
    global _instance
    _instance = None


def _make_model():
    """The panel model, or ``(None, message)`` when its Python packages are missing."""
    try:
        import torch

        from dofbot_rl.app.carb_store import CarbSettingsStore
        from dofbot_rl.panel import PanelModel
    except ImportError as exc:
        message = (f"The RL Examples panel needs the Python package {exc.name!r}, which this Isaac Sim does not have. "
                   "Install the project into Isaac Sim's Python with the app's own torch: "
                   "./python.sh -m pip install --no-deps -e <clone> 'rl-games>=1.6.1,<1.7' && "
                   "./python.sh -m pip install -r <clone>/tools/app-requirements.txt (docs/extension.md), then restart.")
        carb.log_error(f"dofbot.rl_examples: {message}")
        return None, message
    device = "cuda:0" if torch.cuda.is_available() else "cpu"
    return PanelModel(CarbSettingsStore(), base_overrides=[f"sim_device={device}"]), ""
