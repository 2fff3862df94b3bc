"""Issue 11 item 11: with a scene loaded and nothing running, the keyboard still moves the
selected robot (the panel's tick steps physics for it), on the real MuJoCo backend."""

from dofbot_rl.panel import DictStore, PanelModel, PanelState


def test_jogging_moves_the_selected_robot_when_nothing_runs(tmp_path):
    model = PanelModel(DictStore({"train_dir": str(tmp_path / "runs"), "num_envs": 4}),
                       base_overrides=["sim_device=cpu"])
    try:
        assert model.press("load") and model.state == PanelState.LOADED
        assert model.tick() == 0  # nothing selected: no physics step
        start = model.session.task.dof_pos.clone()
        assert model.select_robot_paths(["/World/envs/env_1/Dofbot/link3"]) == 1
        assert model.key_down("Q")  # joint1 jogs while Q is held
        steps = sum(model.tick() for _ in range(60))
        model.key_up("Q")
        assert steps == 60
        q = model.session.task.dof_pos
        assert abs(float(q[1, 0] - start[1, 0])) > 0.05, "the selected robot did not move"
        assert float((q[0] - start[0]).abs().max()) < 0.02, "an unselected robot was jogged"
    finally:
        model.shutdown()
