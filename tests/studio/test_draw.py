"""The 3D view sends a frame only when something moved (viser on 127.0.0.1, no browser)."""


def test_a_frame_only_when_something_moved(live_studio):
    assert not live_studio.draw()  # no scene yet
    assert live_studio.model.press("load")
    assert live_studio.draw() and live_studio.frames_drawn == 1
    assert not live_studio.draw() and live_studio.frames_drawn == 1  # nothing moved: nothing sent
    live_studio.model.session.task.dof_pos[1, 0] += 0.1
    assert live_studio.draw() and live_studio.frames_drawn == 2
    assert live_studio.model.select_robot_paths(["/World/envs/env_1/Dofbot"]) == 1  # the selected env
    assert live_studio.draw()  # the selection changed: the halo moves in


def test_the_learning_curve_has_room_for_negative_rewards(live_studio):
    """uPlot's default 50 px y axis cut the minus sign off labels like -117.5 (read as 117.5)."""
    y_axis = (live_studio.curve.axes or ({}, {}))[1]  # None: uPlot's defaults
    assert y_axis.get("size", 50) >= 64, live_studio.curve.axes
