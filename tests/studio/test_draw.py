"""The 3D view sends a frame only when something moved (viser on 127.0.0.1, no browser)."""

import pytest

from dofbot_rl.panel import DictStore, PanelModel


@pytest.fixture
def studio(tmp_path):
    from dofbot_rl.studio.app import Studio
    from dofbot_rl.studio.serve import start_server

    model = PanelModel(DictStore({"train_dir": str(tmp_path / "runs"), "num_envs": 2}), base_overrides=["sim_device=cpu"])
    server, gate = start_server("127.0.0.1", 0)
    s = Studio(model, server)
    yield s
    model.shutdown()
    gate.stop()
    server.stop()


def test_a_frame_only_when_something_moved(studio):
    assert not studio.draw()  # no scene yet
    assert studio.model.press("load")
    assert studio.draw() and studio.frames_drawn == 1
    assert not studio.draw() and studio.frames_drawn == 1  # nothing moved: nothing sent
    studio.model.session.task.dof_pos[1, 0] += 0.1
    assert studio.draw() and studio.frames_drawn == 2
    assert studio.model.select_robot_paths(["/World/envs/env_1/Dofbot"]) == 1  # the selected env
    assert studio.draw()  # the selection changed: the halo moves in


def test_the_learning_curve_has_room_for_negative_rewards(studio):
    """uPlot's default 50 px y axis cut the minus sign off labels like -117.5 (read as 117.5)."""
    y_axis = (studio.curve.axes or ({}, {}))[1]  # None: uPlot's defaults
    assert y_axis.get("size", 50) >= 64, studio.curve.axes
