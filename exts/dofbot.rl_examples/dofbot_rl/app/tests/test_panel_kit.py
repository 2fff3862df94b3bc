"""Load / Train (2 epochs) / Stop / Test through the omni.ui panel in a running Isaac Sim.

Each test drives the window's buttons (``omni.ui.Button.call_clicked_fn``), waits on app
updates for the panel model to reach a state, and checks the stage and the files.
"""

import tempfile
from pathlib import Path

import omni.kit.app
import omni.kit.commands
import omni.kit.test
import omni.kit.undo
import omni.usd

from dofbot_rl.app.tests.kit_case import KitTestCase
from dofbot_rl.app.extension import get_instance
from dofbot_rl.panel import PanelState

NUM_ENVS = 16


class TestRlExamplesPanel(KitTestCase):
    """The panel end to end on PhysX."""

    async def setUp(self):
        await omni.usd.get_context().new_stage_async()
        self.ext = get_instance()
        self.assertIsNotNone(self.ext, "dofbot.rl_examples is not running")
        self.assertIsNone(self.ext.model.blocked or None, self.ext.model.blocked)
        self.tmp = tempfile.TemporaryDirectory()
        model = self.ext.model
        model.set_train_dir(self.tmp.name)
        model.set_num_envs(NUM_ENVS)
        model.set_max_iterations(2)
        self.ext.window.visible = True
        await self._updates(2)

    async def tearDown(self):
        model = self.ext.model
        if model.state in (PanelState.TRAINING, PanelState.TESTING, PanelState.STOPPING):
            model.stop()
            await self._until(lambda: model.state == PanelState.LOADED, 600)
        self.tmp.cleanup()

    def _click(self, name):
        button = self.ext.window.buttons[name]
        self.assertTrue(button.enabled, f"{name} is disabled: {button.tooltip}")
        button.call_clicked_fn()

    async def _load(self):
        self._click("load")
        await self._until(lambda: self.ext.model.state == PanelState.LOADED, 3000)
        self.assertEqual(self.ext.model.status.level, "ok", self.ext.model.status.text)

    async def test_load_builds_the_scene_and_undo_removes_it(self):
        await self._load()
        stage = omni.usd.get_context().get_stage()
        self.assertTrue(stage.GetPrimAtPath(f"/World/envs/env_{NUM_ENVS - 1}/Dofbot/link5").IsValid())
        self.assertEqual(self.ext.model.session.task.num_envs, NUM_ENVS)
        self.assertEqual(tuple(self.ext.model.session.physics.dof_pos.shape), (NUM_ENVS, 6))
        omni.kit.undo.undo()
        await self._updates(2)
        self.assertFalse(stage.GetPrimAtPath("/World/envs").IsValid())
        self.assertEqual(self.ext.model.state, PanelState.EMPTY)

    async def test_train_two_epochs_then_test_then_stop(self):
        model = self.ext.model
        await self._load()
        self._click("train")
        self.assertEqual(model.state, PanelState.TRAINING)
        await self._until(lambda: model.state == PanelState.LOADED, 20000)
        self.assertEqual(model.status.level, "ok", model.status.text)
        self.assertEqual(model.figures.epoch, 2)
        checkpoint = Path(model.settings.checkpoint)
        self.assertTrue(checkpoint.is_file(), checkpoint)
        self.assertTrue(model.catalogue.valid, model.catalogue.message)

        self._click("test")
        self.assertEqual(model.state, PanelState.TESTING)
        await self._until(lambda: model.session.run.env.steps >= 30, 3000)
        self._click("stop")
        await self._until(lambda: model.state == PanelState.LOADED, 3000)
        self.assertIn("Test stopped", model.status.text)

    async def test_resume_adds_epochs_in_a_run_of_its_own(self):
        """Issue 16: Resume trains *Epochs* more epochs (2 + 2 = 4), as a new experiment."""
        model = self.ext.model
        await self._load()
        self._click("train")
        await self._until(lambda: model.state == PanelState.LOADED, 20000)
        first_run, first_checkpoint = model.run_name, Path(model.settings.checkpoint)
        self.assertEqual(model.figures.epoch, 2)
        self.assertEqual(model.selected_checkpoint, first_checkpoint)
        self._click("resume")
        self.assertEqual(model.state, PanelState.TRAINING)
        await self._until(lambda: model.state == PanelState.LOADED, 20000)
        self.assertEqual(model.status.level, "ok", model.status.text)
        self.assertEqual(model.figures.epoch, 4)
        self.assertNotEqual(model.run_name, first_run)
        self.assertTrue(first_checkpoint.is_file())  # the first run's checkpoint is untouched

    async def test_stop_during_training_leaves_a_checkpoint(self):
        model = self.ext.model
        model.set_max_iterations(50)
        await self._load()
        self._click("train")
        await self._until(lambda: model.session.run.env.steps >= 10, 3000)
        self._click("stop")
        self.assertEqual(model.state, PanelState.STOPPING)
        await self._until(lambda: model.state == PanelState.LOADED, 20000)
        self.assertIn("stopped at epoch", model.status.text)
        self.assertTrue(Path(model.settings.checkpoint).is_file())

    async def test_commands_drive_the_panel(self):
        ok, _ = omni.kit.commands.execute("DofbotLoadScene")
        self.assertTrue(ok)
        await self._until(lambda: self.ext.model.state == PanelState.LOADED, 3000)
        ok, result = omni.kit.commands.execute("DofbotStop")
        self.assertFalse(result)  # nothing runs: the panel refuses and says why


class TestIsaacBackendSeam(omni.kit.test.AsyncTestCase):
    """The Isaac Sim backend keeps the physics seam's promises (as the MuJoCo backends do)."""

    async def setUp(self):
        await omni.usd.get_context().new_stage_async()
        self.ext = get_instance()
        self.model = self.ext.model
        self.model.set_num_envs(NUM_ENVS)
        self.ext.window.visible = True
        self.model.press("load")
        for _ in range(3000):
            if self.model.state == PanelState.LOADED:
                break
            await omni.kit.app.get_app().next_update_async()
        self.assertEqual(self.model.state, PanelState.LOADED, self.model.status.text)
        self.physics = self.model.session.physics

    async def test_reset_targets_and_forward_kinematics(self):
        import torch

        from dofbot_rl import robot

        p = self.physics
        self.assertEqual((p.num_envs, p.num_dof), (NUM_ENVS, 6))
        self.assertEqual(tuple(p.env_origins.shape), (NUM_ENVS, 3))
        ids = torch.arange(NUM_ENVS, device=p.device)
        q = torch.tensor([0.3, 0.2, -0.3, 0.4, -0.2, 0.0], device=p.device).repeat(NUM_ENVS, 1)
        p.write_joint_state(ids, q, torch.zeros_like(q))
        p.step(1)
        self.assertLess(float((p.dof_pos - q).abs().max()), 2e-2)
        # PD targets are tracked
        target = q.clone()
        target[:, 0] = -0.4
        p.set_joint_position_targets(target)
        for _ in range(240):  # 2 s at 120 Hz
            p.step(1)
        self.assertLess(float((p.dof_pos[:, 0] + 0.4).abs().max()), 3e-2)
        # link5 position (env frame) matches the robot facts' forward kinematics
        expected = torch.tensor(robot.link_frames(p.dof_pos[0, :5].tolist())[-1][0], device=p.device)
        self.assertLess(float((p.ee_pose[0, :3] - expected).norm()), 5e-3)
        norms = p.ee_pose[:, 3:7].norm(dim=1)
        self.assertLess(float((norms - 1).abs().max()), 1e-3)
