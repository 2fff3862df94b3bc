"""Jogging moves the selected robot while a scene is loaded and nothing runs (issue 11 item 11,
which the studio needs too): ``PanelModel.tick()`` runs one idle control step per call."""

import pytest

from dofbot_rl.panel import DictStore, PanelModel, PanelState


@pytest.fixture
def model(tmp_path):
    m = PanelModel(DictStore({"train_dir": str(tmp_path / "runs"), "num_envs": 3}), base_overrides=["sim_device=cpu"])
    yield m
    m.shutdown()


def test_jog_moves_the_selected_robot_with_no_run(model):
    assert model.press("load") and model.state == PanelState.LOADED
    assert model.tick() == 0  # nothing selected: the scene stays still
    assert model.select_robot_paths(["/World/envs/env_1/Dofbot"]) == 1
    task = model.session.task
    before = task.dof_pos.clone()
    assert model.key_down("A")  # joint1 +
    steps = sum(model.tick() for _ in range(30))
    model.key_up("A")
    assert steps == 30
    after = task.dof_pos
    assert after[1, 0] > before[1, 0] + 0.2  # 30 steps of 1/60 s at 1 rad/s: ~0.5 rad of target
    assert float((after[[0, 2]] - before[[0, 2]]).abs().max()) < 0.05  # the others hold their pose
    model.select_robot_paths([])  # release: idle steps stop
    assert model.tick() == 0
