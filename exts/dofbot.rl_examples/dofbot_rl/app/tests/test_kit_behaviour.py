"""Kit tests for what only a running Isaac Sim shows (issue 11 item 13): undo after a rebuild,
a failed Load, the toolbar's Pause and Stop during training, the menu item, the examples
browser entry, a key press on a selected robot, disable / re-enable, and the window.

Runs are written to a temporary folder (never the repository); every tearDown stops what
the test started, plays nothing, and leaves a new empty stage.
"""

import tempfile
from unittest import mock

import carb.input
import carb.settings
import omni.kit.app
import omni.kit.test
import omni.kit.ui_test as ui_test
import omni.kit.undo
import omni.timeline
import omni.usd

from dofbot_rl.app import compat, isaac_physics
from dofbot_rl.app.tests.kit_case import KitTestCase
from dofbot_rl.app.extension import BROWSER_CATEGORY, BROWSER_NAME, MENU_ITEM, MENU_ROOT, get_instance
from dofbot_rl.app.window import TITLE
from dofbot_rl.panel import PanelState

NUM_ENVS = 8
EXT_NAME = "dofbot.rl_examples"


class _KitCase(KitTestCase):
    async def setUp(self):
        await omni.usd.get_context().new_stage_async()
        self.ext = get_instance()
        self.assertIsNotNone(self.ext, f"{EXT_NAME} is not running")
        self.tmp = tempfile.TemporaryDirectory(prefix="dofbot_rl_kit_")
        self.model.set_train_dir(self.tmp.name)
        self.model.set_num_envs(NUM_ENVS)
        self.model.set_max_iterations(2)
        self.ext.window.visible = True
        await self._updates(2)

    @property
    def model(self):
        return get_instance().model

    async def tearDown(self):
        ext = get_instance()
        if ext is not None and ext.model is not None:
            model = ext.model
            if model.state in (PanelState.TRAINING, PanelState.TESTING, PanelState.STOPPING):
                model.stop()
                model.stop()  # forced: the test is over
                await self._until(lambda: model.state not in (PanelState.TRAINING, PanelState.TESTING, PanelState.STOPPING),
                                  3000)
            model.unload()
        omni.timeline.get_timeline_interface().stop()
        await self._updates(2)
        await omni.usd.get_context().new_stage_async()
        self.tmp.cleanup()

    async def _load(self):
        self.assertTrue(self.model.press("load"), self.model.status.text)
        await self._until(lambda: self.model.state in (PanelState.LOADED, PanelState.EMPTY), 3000)
        self.assertEqual(self.model.state, PanelState.LOADED, self.model.status.text)

    def _stage_paths(self):
        return sorted(str(p.GetPath()) for p in omni.usd.get_context().get_stage().Traverse())


class TestSceneLifecycle(_KitCase):
    async def test_rebuild_then_undo_brings_the_robots_back(self):
        await self._load()
        stage = omni.usd.get_context().get_stage()
        first = f"/World/envs/env_{NUM_ENVS - 1}/Dofbot/link5"
        self.assertTrue(stage.GetPrimAtPath(first).IsValid())
        self.model.set_num_envs(2)
        await self._load()  # rebuild: fewer robots (the old replicator is dropped)
        self.assertFalse(stage.GetPrimAtPath(first).IsValid())
        omni.kit.undo.undo()  # the rebuild's undo group: the first scene comes back, robots and all
        await self._updates(3)
        self.assertTrue(stage.GetPrimAtPath(first).IsValid(), "undo after a rebuild lost the robots")
        self.assertTrue(stage.GetPrimAtPath("/World/envs/env_0/Dofbot/link5").IsValid())

    async def test_failed_load_leaves_kit_stepping_physics(self):
        settings = carb.settings.get_settings()
        with mock.patch.object(isaac_physics.robot, "JOINT_NAMES", isaac_physics.robot.JOINT_NAMES + ("no_such_joint",)):
            self.assertTrue(self.model.press("load"))
            await self._until(lambda: self.model.state in (PanelState.LOADED, PanelState.EMPTY), 3000)
        self.assertEqual(self.model.state, PanelState.EMPTY)
        self.assertEqual(self.model.status.level, "error")
        self.assertTrue(settings.get(compat.PLAY_SIMULATIONS), "a failed Load left /app/player/playSimulations off")

    async def test_disable_and_enable_leave_the_stage_unchanged(self):
        await self._load()
        before = self._stage_paths()
        manager = omni.kit.app.get_app().get_extension_manager()
        manager.set_extension_enabled_immediate(EXT_NAME, False)
        await self._updates(3)
        self.assertEqual(self._stage_paths(), before, "disabling the extension changed the stage")
        self.assertTrue(carb.settings.get_settings().get(compat.PLAY_SIMULATIONS))
        manager.set_extension_enabled_immediate(EXT_NAME, True)
        await self._updates(3)
        self.assertIsNotNone(get_instance())
        self.assertEqual(self._stage_paths(), before, "re-enabling the extension changed the stage")
        self.model.set_train_dir(self.tmp.name)


class TestTimelineRulesTraining(_KitCase):
    async def test_pause_pauses_and_stop_ends_training(self):
        model = self.model
        model.set_max_iterations(50)
        await self._load()
        self.assertTrue(model.press("train"))
        await self._until(lambda: model.session.run.env.steps >= 10, 3000)
        timeline = omni.timeline.get_timeline_interface()
        timeline.pause()
        await self._updates(2)
        paused_at = model.session.run.env.steps
        await self._updates(30)
        self.assertEqual(model.session.run.env.steps, paused_at, "training stepped while the timeline was paused")
        self.assertEqual(model.state, PanelState.TRAINING)
        timeline.play()
        await self._until(lambda: model.session.run.env.steps > paused_at + 5, 600)
        timeline.stop()
        await self._until(lambda: model.state == PanelState.EMPTY, 3000)
        self.assertIsNone(model.session.physics)
        self.assertTrue(carb.settings.get_settings().get(compat.PLAY_SIMULATIONS))


class TestUiEntryPoints(_KitCase):
    async def test_menu_item_toggles_the_window(self):
        self.ext.window.visible = False
        await self._updates(2)
        await ui_test.menu_click(f"{MENU_ROOT}/{MENU_ITEM}")
        await self._updates(2)
        self.assertTrue(self.ext.window.visible)

    async def test_examples_browser_entry_opens_the_window(self):
        browser = compat.examples_browser()
        if browser is None:
            self.skipTest("no isaacsim.examples.browser in this app (before 4.5)")
        items = browser._browser_model._examples.get(BROWSER_CATEGORY, [])  # the browser keeps its entries there
        entry = next((i for i in items if i.example.name == BROWSER_NAME), None)
        self.assertIsNotNone(entry, f"no {BROWSER_NAME!r} in category {BROWSER_CATEGORY!r}")
        self.ext.window.visible = False
        entry.example.execute_entrypoint()
        await self._updates(2)
        self.assertTrue(self.ext.window.visible)

    async def test_window_load_button(self):
        buttons = [ref for ref in ui_test.find_all(f"{TITLE}//Frame/**/Button[*]") if ref.widget.text == "Load"]
        self.assertEqual(len(buttons), 1)
        await buttons[0].click()
        await self._until(lambda: self.model.state in (PanelState.LOADED, PanelState.EMPTY), 3000)
        self.assertEqual(self.model.state, PanelState.LOADED, self.model.status.text)

    async def test_select_a_robot_then_press_a_key(self):
        await self._load()
        omni.usd.get_context().get_selection().set_selected_prim_paths(["/World/envs/env_1/Dofbot/link2"], True)
        await self._updates(3)
        self.assertEqual(self.model.session.teleop.selected_env, 1)
        start = float(self.model.session.task.dof_pos[1, 0])
        with mock.patch.object(compat, "viewport_has_focus", return_value=True):  # no focused viewport in --no-window
            await ui_test.emulate_keyboard_press(carb.input.KeyboardInput.Q)
            await self._updates(20)
        self.assertNotAlmostEqual(float(self.model.session.task.dof_pos[1, 0]), start, places=3)
