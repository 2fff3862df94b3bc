"""The RL Examples panel model driven like the Kit window does, on the MuJoCo backend.

The test's main thread plays Kit's sim loop: it calls ``model.tick()`` once per
"app update" while rl_games trains or plays on its worker thread.
"""

import gc
import re
import time
import weakref

import pytest
import torch

from dofbot_rl.panel import DictStore, PanelModel, PanelState
from dofbot_rl.panel.model import parse_max_iterations, parse_num_envs
from dofbot_rl.rl.vecenv import registered_creator


#: CPU, and episodes short enough that a 64-step epoch finishes some (mean reward known).
CPU_SHORT = ["sim_device=cpu", "task.env.episode_length=40"]


def _ticks_until(model, predicate, timeout_s=300.0):  # bounded; generous for busy CI machines
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out in state {model.state}: {model.status}"
        model.tick()


@pytest.fixture
def store(tmp_path):
    return DictStore({"train_dir": str(tmp_path / "runs"), "num_envs": 16, "max_iterations": 2})


@pytest.fixture
def model(store):
    m = PanelModel(store, base_overrides=CPU_SHORT)
    yield m
    m.shutdown()


def _enabled(model):
    return {name: b.enabled for name, b in model.buttons().items()}


def test_empty_panel_only_loads(model):
    assert model.state == PanelState.EMPTY
    assert _enabled(model) == {"load": True, "train": False, "resume": False, "test": False, "stop": False}
    assert model.button("train").tooltip == "press Load first"
    assert model.task_names == ["DofbotReacher"]
    assert not model.press("train") and "not available" in model.status.text


@pytest.mark.parametrize("text, message", [("0", "1..8192"), ("8193", "1..8192"), ("abc", "whole number"), ("-5", "1..8192")])
def test_num_envs_validation_blocks_load(model, text, message):
    assert message in model.set_num_envs(text)
    assert not model.button("load").enabled and message in model.button("load").tooltip
    assert model.set_num_envs(" 8192 ") == ""
    assert model.button("load").enabled and model.num_envs == 8192


def test_parsers():
    assert parse_num_envs(1) == 1 and parse_num_envs("8192") == 8192
    assert parse_max_iterations("0") == 0
    with pytest.raises(ValueError, match=">= 0"):
        parse_max_iterations(-1)


def test_unknown_task_and_render_mode(model):
    assert not model.set_task("Cartpole")
    assert "unknown task" in model.button("load").tooltip
    assert model.set_task("DofbotReacher") and model.button("load").enabled
    with pytest.raises(ValueError, match="full, ui_only, none"):
        model.set_render_mode("fast")
    model.set_render_mode("none")
    assert model.render_mode_names == ["full", "ui_only", "none"]


def test_settings_persist_through_the_store(store, tmp_path):
    m = PanelModel(store)
    m.set_num_envs("32")
    m.set_render_mode("ui_only")
    m.set_max_iterations("7")
    assert store.values["num_envs"] == 32 and store.values["render_mode"] == "ui_only"
    again = PanelModel(store)
    assert (again.settings.num_envs, again.settings.render_mode, again.settings.max_iterations) == (32, "ui_only", 7)
    assert again.train_dir == tmp_path / "runs"


def test_bad_stored_settings_are_ignored_and_reported(tmp_path):
    store = DictStore({"num_envs": 100000, "render_mode": "fast", "task": "Nope", "sim2real_port": "x",
                       "train_dir": str(tmp_path)})
    m = PanelModel(store)
    assert m.settings.num_envs == 0 and m.settings.render_mode == "full" and m.settings.task == "DofbotReacher"
    assert "num_envs" in m.status.text and "render_mode" in m.status.text and "sim2real_port" in m.status.text
    assert m.num_envs == 512  # the config's CPU default


def test_blocked_panel_disables_everything(model):
    model.block("Isaac Sim 2022.2 is not supported")
    assert not any(_enabled(model).values())
    assert model.status.level == "error" and not model.inputs_enabled


def test_load_train_test_stop(model, tmp_path):
    errors = []
    model.subscribe_errors(errors.append)
    changes = []
    model.subscribe(lambda: changes.append(model.state))
    assert model.press("load")
    assert model.state == PanelState.LOADED and model.session.task.num_envs == 16
    assert PanelState.LOADING in changes
    assert _enabled(model) == {"load": True, "train": True, "resume": False, "test": False, "stop": False}
    assert model.button("test").tooltip == "choose a checkpoint first"

    assert model.press("train")
    assert model.state == PanelState.TRAINING and not model.inputs_enabled
    assert _enabled(model) == {"load": False, "train": False, "resume": False, "test": False, "stop": True}
    _ticks_until(model, lambda: model.state == PanelState.LOADED)
    assert model.status.level == "ok", model.status
    assert "finished at epoch 2" in model.status.text
    assert (model.figures.epoch, model.figures.max_epochs, model.figures.progress_fraction) == (2, 2, 1.0)
    assert len(model.curve.points) == 2
    assert model.catalogue.valid and model.catalogue.selected.epoch == 2
    assert model.settings.checkpoint.endswith(".pth") and model.store.get("checkpoint") == model.settings.checkpoint
    assert _enabled(model)["test"] and _enabled(model)["resume"]

    assert model.press("test")
    assert model.state == PanelState.TESTING
    _ticks_until(model, lambda: model.session.run.env.steps >= 20)
    assert model.figures.mode == "test" and model.figures.frame >= 20 * 16
    assert model.press("stop") and model.state == PanelState.STOPPING
    _ticks_until(model, lambda: model.state == PanelState.LOADED)
    assert "Test stopped" in model.status.text
    assert errors == []

    # finished runs let go of the scene: a rebuild frees the old physics backend and task
    old_physics, old_task = weakref.ref(model.session.physics), weakref.ref(model.session.task)
    assert model.session.run is None and registered_creator() is None
    assert model.press("load")
    gc.collect()
    assert old_physics() is None and old_task() is None


def test_each_run_is_its_own_experiment_and_resume_adds_epochs(store):
    """Run A finishes at epoch 2; run B, stopped at epoch 1, reports and selects its own checkpoint (not A's
    higher epoch); Resume of B trains the requested epochs more as run C; Test plays the selected entry."""
    model = PanelModel(store, base_overrides=CPU_SHORT)
    try:
        model.press("load")
        model.press("train")
        _ticks_until(model, lambda: model.state == PanelState.LOADED)
        run_a, checkpoint_a = model.run_name, model.selected_checkpoint
        assert re.fullmatch(r"DofbotReacher_\d{8}-\d{6}(_\d+)?", run_a)
        assert checkpoint_a.parent.parent.name == run_a and model.catalogue.selected.epoch == 2

        model.set_max_iterations("30")
        model.press("train")
        assert dict(model.figures.lines())["Run"] == model.run_name != run_a
        _ticks_until(model, lambda: model.session.run.env.steps >= 5)
        model.press("stop")
        assert model.state == PanelState.STOPPING and model.button("stop").label == "Force stop"
        _ticks_until(model, lambda: model.state == PanelState.LOADED)
        run_b = model.run_name
        assert "stopped at epoch 1" in model.status.text and run_b in model.status.text, model.status
        assert model.catalogue.selected.epoch == 1 and model.selected_checkpoint.parent.parent.name == run_b
        choices = model.checkpoint_choices()
        assert choices.labels[choices.index].startswith(run_b)
        assert {label.split()[0] for label in choices.labels[1:]} == {run_a, run_b}  # the list shows the runs

        model.set_max_iterations("2")
        assert model.press("resume")
        assert model.session.run_checkpoint == str(model.selected_checkpoint)
        _ticks_until(model, lambda: model.state == PanelState.LOADED)
        run_c = model.run_name
        assert run_c not in (run_a, run_b) and "epoch 3" in model.status.text, model.status  # 1 + 2 more
        assert model.figures.max_epochs == 3

        # the selection (not the labels) changes: the combo must follow, and Test uses that entry
        before = model.checkpoint_choices()
        index_a = [e.path for e in model.catalogue.entries].index(checkpoint_a)
        assert model.select_checkpoint(index_a)
        after = model.checkpoint_choices()
        assert after.labels == before.labels and after != before and after.index == index_a + 1
        assert model.press("test") and model.session.run_checkpoint == str(checkpoint_a)
        model.press("stop")
        _ticks_until(model, lambda: model.state == PanelState.LOADED)
    finally:
        model.shutdown()


def test_unloading_a_training_scene_is_refused_on_request_and_never_blocks(store):
    store.set("max_iterations", 100000)
    model = PanelModel(store, base_overrides=CPU_SHORT)
    try:
        model.press("load")
        model.press("train")
        _ticks_until(model, lambda: model.session.run.env.steps >= 3)
        assert "is running" in model.unload_guard()
        assert not model.unload(refuse_if_training=True)  # e.g. Ctrl+Z on the Load step
        assert model.state == PanelState.TRAINING and "The scene was kept" in model.status.text
        physics = model.session.physics
        assert model.unload()  # the stage is closing: returns without joining the worker
        assert model.state == PanelState.EMPTY and model.session.physics is None and physics is not None
        _ticks_until(model, model.poll_worker)  # the worker ends across app updates
        assert not model.session.worker_alive
        assert model.unload_guard() == "" and model.unload(refuse_if_training=True)  # nothing to lose any more
    finally:
        model.shutdown()


def test_slow_graceful_stop_is_forced_after_the_timeout(store):
    now = [0.0]
    store.set("max_iterations", 30)
    model = PanelModel(store, base_overrides=CPU_SHORT, clock=lambda: now[0], stop_timeout_s=5.0)
    try:
        model.press("load")
        model.press("train")
        _ticks_until(model, lambda: model.session.run.env.steps >= 3)
        model.session.run._graceful_stop = lambda: None  # a stop that never completes on its own
        model.session.run.stop_requested_at = None
        model.press("stop")
        now[0] = model.session.run.stop_requested_at + 6.0
        _ticks_until(model, lambda: model.state == PanelState.LOADED, timeout_s=20)
        assert model.status.level == "ok" and "forced" in model.status.text, model.status
    finally:
        model.shutdown()


def test_simulation_failure_is_shown_and_the_worker_ends(model):
    errors = []
    model.subscribe_errors(errors.append)
    model.press("load")

    def explode(task, actions, result):
        raise RuntimeError("PhysX lost the articulation")

    model.session.step_hooks.append(explode)
    model.press("train")
    _ticks_until(model, lambda: model.state == PanelState.LOADED)
    assert model.status.level == "error" and "PhysX lost the articulation" in model.status.last_error
    assert errors and errors[0].startswith("Simulation failed")
    assert not model.session.running


def test_worker_error_is_shown(model, tmp_path):
    bad = tmp_path / "runs" / "Other" / "nn" / "Other.pth"
    bad.parent.mkdir(parents=True)
    torch.save({"model": {"running_mean_std.running_mean": torch.zeros(29), "a2c_network.mu.weight": torch.zeros(6, 64)}}, bad)
    model.press("load")
    assert model.pick_checkpoint_file(bad)  # the sizes fit, the weights are incomplete
    model.press("test")
    _ticks_until(model, lambda: model.state == PanelState.LOADED)
    assert model.status.level == "error" and model.status.text.startswith("Test failed"), model.status


def test_checkpoints_are_validated_before_use(model, tmp_path):
    wrong = tmp_path / "runs" / "Wrong" / "nn" / "last_Wrong_ep_5_rew_1.5.pth"
    wrong.parent.mkdir(parents=True)
    torch.save({"model": {"running_mean_std.running_mean": torch.zeros(27), "a2c_network.mu.weight": torch.zeros(6, 64)}}, wrong)
    junk = tmp_path / "junk.pth"
    junk.write_text("not a checkpoint")
    model.press("load")
    model.refresh_checkpoints()
    assert model.catalogue.labels() == ["Wrong  ep 5  rew 1.50"]
    assert not model.select_checkpoint(0)
    assert not model.button("test").enabled and "27 observations" in model.button("test").tooltip
    assert model.status.level == "error" and "Checkpoint rejected" in model.status.text
    assert not model.pick_checkpoint_file(junk)
    assert model.catalogue.labels()[0].endswith("(picked)") and "not a loadable" in model.catalogue.message
    model.select_checkpoint(-1)
    assert model.catalogue.selected is None and model.settings.checkpoint == ""


def test_teleop_selection_and_keys(model):
    assert model.select_robot_paths(["/World/envs/env_3/Dofbot/link2"]) is None  # no scene yet
    model.press("load")
    assert model.select_robot_paths(["/World/envs/env_3/Dofbot/link2/visuals"]) == 3
    assert model.teleop_line().startswith("env 3: ")
    assert model.key_down("Q") and model.key_up("Q")
    assert model.select_robot_paths(["/World/envs/env_3/goal"]) is None
    assert "not a Dofbot" in model.status.text and model.session.teleop.selected_env is None
    assert model.select_robot_paths(["/World/envs/env_99/Dofbot"]) is None  # outside the 16-robot scene
    assert model.teleop_line().startswith("Click a robot")


def test_teleop_drives_the_selected_robot_while_training(model):
    model.press("load")
    model.select_robot_paths(["/World/envs/env_2/Dofbot"])
    model.key_down("A")  # joint1 +
    model.press("train")
    _ticks_until(model, lambda: model.session.run.env.steps >= 30)
    assert model.session.task.manual_env_ids == [2]
    assert model.session.teleop.targets[0] > 0.3
    model.key_down("ESCAPE")
    assert model.session.teleop.selected_env is None
    model.stop()
    _ticks_until(model, lambda: model.state == PanelState.LOADED)
    assert model.session.task.manual_env_ids == []


class FakeClient:
    def __init__(self, mapping):
        self.mapping, self.sent, self.state, self.latency_ms, self.last_error = mapping, [], "connecting", None, None
        self.goals = []

    def start(self):
        return self

    def stop(self):
        self.state = "stopped"

    def send_joint_positions(self, q):
        self.sent.append(list(q))

    def send_goal(self, xyz):
        self.goals.append(list(xyz))

    def readback(self):
        from types import SimpleNamespace

        return SimpleNamespace(q=(0.5, 0.2, -0.1, 0.3, 0.0, 0.4))


def test_sim2real_toggle_mirrors_the_selected_robot(model):
    from dofbot_rl.sim2real.link import Sim2RealLink

    clients = []
    model.sim2real._factory = lambda mapping: clients.append(FakeClient(mapping)) or clients[-1]
    assert model.set_sim2real(True, "10.0.0.7", "6000")
    assert clients[0].mapping == {"host": "10.0.0.7", "port": 6000, "fail_quietly": True, "mode": "sim2real"}
    assert model.store.get("sim2real_host") == "10.0.0.7" and model.sim2real.status() == "connecting"
    model.press("load")
    model.press("train")
    _ticks_until(model, lambda: model.session.run.env.steps >= 3)
    assert len(clients[0].sent) >= 3 and len(clients[0].sent[0]) == 6
    assert not model.set_sim2real(False) and model.sim2real.status() == "off"
    assert not model.set_sim2real(True, port="http")
    link = Sim2RealLink()
    assert not link.switch_on("127.0.0.1", 0) and "port" in link.error


def test_sim2real_status_drops_an_error_once_connected():
    """A link that failed once (a peer still starting) and then connected reads "connected",
    not "connected, 0.2 ms (... Connection refused)"; the error shows while it is not connected."""
    from dofbot_rl.sim2real.link import Sim2RealLink

    link = Sim2RealLink(client_factory=FakeClient)
    assert link.switch_on("127.0.0.1", 6000)
    link.client.state, link.client.last_error = "disconnected", OSError("Connection refused")
    assert link.status() == "disconnected (Connection refused)"
    link.client.state, link.client.latency_ms = "connected", 0.2  # the client keeps its last error
    assert link.status() == "connected, 0.2 ms"
    link.switch_off()


def test_sim2real_status_says_when_the_server_holds_the_arm():
    """The issue's link status: connected, latency, and "held" while the server holds the arm
    (its last ACK has the HOLDING flag: no live target), e.g. when nothing runs in the panel."""
    from types import SimpleNamespace

    from dofbot_rl.sim2real.link import Sim2RealLink
    from dofbot_rl.sim2real.protocol import ACK_HOLDING, ACK_RAMPING

    flags = []
    link = Sim2RealLink(client_factory=FakeClient)
    assert link.switch_on("127.0.0.1", 6000)
    link.client.readback = lambda: SimpleNamespace(q=(0.0,) * 6, flags=flags[-1]) if flags else None
    link.client.state, link.client.latency_ms = "connected", 0.3
    assert link.status() == "connected, 0.3 ms"  # no ACK yet
    flags.append(ACK_HOLDING)
    assert link.status() == "connected, 0.3 ms, held"
    flags.append(ACK_RAMPING)
    assert link.status() == "connected, 0.3 ms"
    link.switch_off()


def test_sim2real_goal_and_real2sim_modes(model, tmp_path):
    """goal: the selected robot's goal goes to a policy-running server; real2sim: the robot follows the read-back."""
    clients = []
    model.sim2real._factory = lambda mapping: clients.append(FakeClient(mapping)) or clients[-1]
    token = tmp_path / "token"
    token.write_text("secret")
    assert model.set_sim2real(True, "10.0.0.7", 6000, token_file=str(token), mode="goal")
    assert clients[0].mapping["token_file"] == str(token) and clients[0].mapping["mode"] == "goal"
    assert model.store.get("sim2real_mode") == "goal"
    model.press("load")
    model.press("train")
    _ticks_until(model, lambda: model.session.run.env.steps >= 3)
    assert clients[0].goals and len(clients[0].goals[0]) == 3 and clients[0].sent == []
    assert model.set_sim2real(True, mode="real2sim")
    _ticks_until(model, lambda: model.session.task.manual_env_ids == [0])
    _ticks_until(model, lambda: abs(model.session.task.joint_pos_targets[0, 0].item() - 0.5) < 1e-6)
    assert model.session.task.joint_pos_targets[0, 5].item() == pytest.approx(0.4)  # the gripper follows too
    model.set_sim2real(False)
    _ticks_until(model, lambda: model.session.task.manual_env_ids == [])
    model.stop()
    _ticks_until(model, lambda: model.state == PanelState.LOADED)


def test_render_modes_change_steps_per_update(model):
    """"None" runs many control steps per app update, "Full render" exactly one (timing-free checks)."""

    def ticks_while(steps_more):
        target, served = model.session.run.env.steps + steps_more, []
        _ticks_until(model, lambda: served.append(model.tick()) or model.session.run.env.steps >= target)
        return served

    model.set_render_mode("none")
    model.set_max_iterations("100000")  # never finishes on its own during the test
    model.press("load")
    model.press("train")
    assert max(ticks_while(70)) > 1  # many of a rollout's steps in one app update
    model.set_render_mode("full")
    assert max(ticks_while(20)) == 1  # one control step per app update
    assert model.state == PanelState.TRAINING
    model.stop()
    model.stop()  # Force stop: no need to finish the epoch here
    _ticks_until(model, lambda: model.state == PanelState.LOADED)


def test_teleop_max_robots_caps_the_loaded_scene_only_when_set(tmp_path):
    """task.teleop.max_robots (0 = no cap) limits the scene Load builds, for teleop demos."""
    store = DictStore({"train_dir": str(tmp_path / "runs"), "num_envs": 300, "max_iterations": 2})
    capped = PanelModel(store, base_overrides=CPU_SHORT + ["task.teleop.max_robots=128"])
    plain = PanelModel(DictStore(dict(store.values)), base_overrides=CPU_SHORT)
    try:
        assert capped.begin_load().num_envs == 128 and "capped by task.teleop.max_robots" in capped.status.text
        assert plain.begin_load().num_envs == 300
    finally:
        capped.shutdown()
        plain.shutdown()
