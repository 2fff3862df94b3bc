"""Click-to-select teleop in Kit: stage selection -> robot, carb.input keys -> the teleop model.

* Subscribes to the stage's selection-changed event (no polling) and hands the selected
  prim paths to :meth:`dofbot_rl.panel.PanelModel.select_robot_paths` (which uses
  ``teleop.picking.first_robot``: a goal marker or the ground selects nothing).
* Highlight: the selection is widened to the robot's root prim, so Kit's selection
  outline covers the whole arm.
* The keyboard is subscribed only while a robot is selected, and keys count only while
  the viewport has focus; ESC (the model's release key) releases the robot and the
  keyboard subscription. The subscription is ``subscribe_to_input_events`` on the app
  window's keyboard with ``SUBSCRIPTION_ORDER_FIRST``: teleop sees a key before the
  viewport's hotkeys, and a key it uses is consumed (Q/W/E/R no longer switch the
  viewport's select/move/rotate/scale tools while a robot is selected). The older
  ``subscribe_to_keyboard_events`` is deprecated since Kit 100.1 and subscribes last.
"""

import asyncio

import carb.input
import omni.appwindow
import omni.usd

from dofbot_rl import scene
from dofbot_rl.app import compat


class RobotPicker:
    """Selection and keyboard subscriptions for teleop (made on :meth:`start`, dropped on :meth:`stop`).

    Args:
        model: the panel model.
    """

    def __init__(self, model):
        self.model = model
        self._selection_sub = None
        self._closing_sub = None
        self._keyboard_sub = None
        self._input = None
        self._pending_clear = None

    def start(self) -> None:
        """Subscribe to selection changes, and to the stage closing (the scene goes with it)."""
        if self._selection_sub is None:
            self._selection_sub = compat.subscribe_stage_event(
                omni.usd.StageEventType.SELECTION_CHANGED, self._on_selection, "dofbot.rl_examples.selection")
            self._closing_sub = compat.subscribe_stage_event(
                omni.usd.StageEventType.CLOSING, self._on_stage_closing, "dofbot.rl_examples.stage_closing")

    def _on_stage_closing(self, event=None) -> None:
        """File > New / Open: drop the scene, whose prims are going away, and end any run at once.

        Never waits for the rl_games worker here (Kit's main thread): the sim loop polls it
        across app updates (``model.poll_worker``)."""
        self._release_keyboard()
        self.model.unload()  # the prims are going: the scene goes, whatever runs

    def stop(self) -> None:
        """Drop both subscriptions."""
        if self._pending_clear is not None:
            self._pending_clear.cancel()
            self._pending_clear = None
        self._release_keyboard()
        self._selection_sub = None
        self._closing_sub = None

    def _on_selection(self, event=None) -> None:
        selection = omni.usd.get_context().get_selection()
        paths = [str(p) for p in selection.get_selected_prim_paths()]
        env_id = self.model.select_robot_paths(paths)
        if env_id is None:
            self._release_keyboard()
            return
        root = scene.robot_path(env_id)
        if paths != [root]:
            selection.set_selected_prim_paths([root], True)  # outline the whole robot
        self._grab_keyboard()

    def _grab_keyboard(self) -> None:
        if self._keyboard_sub is not None:
            return
        self._input = carb.input.acquire_input_interface()
        keyboard = omni.appwindow.get_default_app_window().get_keyboard()
        self._keyboard_sub = self._input.subscribe_to_input_events(self._on_input, device=keyboard,
                                                                   order=carb.input.SUBSCRIPTION_ORDER_FIRST)

    def _release_keyboard(self) -> None:
        if self._keyboard_sub is not None:
            self._input.unsubscribe_to_input_events(self._keyboard_sub)
        self._keyboard_sub = self._input = None

    def _on_input(self, event) -> bool:
        """carb input callback: returns whether later subscribers (the viewport's hotkeys) get the event."""
        if event.deviceType != carb.input.DeviceType.KEYBOARD:
            return True
        return self._on_key(event.event)

    def _on_key(self, event) -> bool:
        if not compat.viewport_has_focus():
            return True
        name = event.input.name if hasattr(event.input, "name") else str(event.input)
        used = False
        if event.type in (carb.input.KeyboardEventType.KEY_PRESS, carb.input.KeyboardEventType.KEY_REPEAT):
            used = self.model.key_down(name)
        elif event.type == carb.input.KeyboardEventType.KEY_RELEASE:
            used = self.model.key_up(name)
        if self.model.session.teleop.selected_env is None and self._pending_clear is None:  # released (ESC)
            # not from inside the keyboard callback: clearing the selection unsubscribes the keyboard
            self._pending_clear = asyncio.get_event_loop().call_soon(self._clear_selection)
        return not used

    def _clear_selection(self) -> None:
        self._pending_clear = None
        omni.usd.get_context().get_selection().clear_selected_prim_paths()
