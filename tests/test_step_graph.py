"""The graph-safe control step: the same numbers as the step it replaced, buffers written in
place, no per-step host sync in the PPO rollout, and (on CUDA) replayed graphs equal to the
eager step."""

from pathlib import Path

import numpy as np
import pytest
import torch

from dofbot_rl.config import load_config
from dofbot_rl.tasks import DofbotReacher, make_task

TRACE = Path(__file__).parent / "data" / "reacher_trace_cpu.npz"
#: The variants recorded in TRACE (with the step as it was before it became graph-safe).
VARIANTS = {
    "plain": [],
    "randomized": ["task.randomization.obs_noise_std=0.01", "task.randomization.action_latency_steps=2",
                   "task.randomization.servo_move_time_s=0.5", "task.randomization.pd_gain_scale_range=[0.8,1.2]",
                   "task.randomization.link_mass_scale_range=[0.9,1.1]"],
}

try:
    import mujoco_warp  # noqa: F401

    HAS_WARP = True
except ImportError:
    HAS_WARP = False


def _run(task, steps=45, seed=1, on_step=None):
    """Step ``task`` with seeded random actions; returns ``{name: (steps, ...) array}``."""
    gen = torch.Generator().manual_seed(seed)
    rec = {k: [] for k in ("obs", "rew", "reset", "targets", "goal")}
    for t in range(steps):
        a = 2.0 * torch.rand(task.num_envs, 6, generator=gen) - 1.0
        if on_step is not None:
            on_step(t, task)
        obs, rew, reset, _ = task.step(a.to(task.device))
        for k, v in zip(rec, (obs, rew, reset, task.joint_pos_targets, task.goal_pos_env)):
            rec[k].append(v.detach().cpu().clone())
    return {k: torch.stack(v).numpy() for k, v in rec.items()}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_step_reproduces_the_trace_recorded_before_it_became_graph_safe(variant):
    torch.manual_seed(0)
    task = make_task(load_config(["num_envs=8", "sim_device=cpu", "task.env.episode_length=20", *VARIANTS[variant]]))
    task.reset()
    got, want = _run(task), np.load(TRACE)
    for key, value in got.items():
        np.testing.assert_array_equal(value, want[f"{variant}_{key}"], err_msg=f"{variant} {key}")


def test_step_writes_its_buffers_in_place_and_reports_any_done_without_a_sync():
    task = make_task(load_config(["num_envs=4", "sim_device=cpu", "task.env.episode_length=5"]))
    task.reset()
    names = ("obs_buf", "rew_buf", "reset_buf", "time_out_buf", "actions", "commanded_targets", "joint_pos_targets",
             "goal_pos_env", "goal_rot", "ee_pose", "tip_pos_env", "goal_distance", "progress_buf")
    ptrs = {n: getattr(task, n).data_ptr() for n in names}
    for _ in range(12):
        obs, rew, reset, extras = task.step(torch.zeros(4, 6))
        assert extras["any_done"] is bool(reset.any())
        assert obs.data_ptr() == ptrs["obs_buf"] and rew.data_ptr() == ptrs["rew_buf"]
    assert {n: getattr(task, n).data_ptr() for n in names} == ptrs


def test_ppo_rollout_looks_for_finished_episodes_only_where_one_ended(tmp_path, monkeypatch):
    from dofbot_rl.rl.trainer import Trainer

    calls = []
    original = torch.Tensor.nonzero

    def counting_nonzero(self, *args, **kwargs):
        calls.append(self.dtype)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "nonzero", counting_nonzero)
    cfg = load_config(["num_envs=16", "max_iterations=2", "sim_device=cpu", "task.env.episode_length=50",
                       f"train_dir={tmp_path}", "experiment=nz"])
    result = Trainer(cfg).train()
    # 2 epochs x 64 steps; episodes end at steps 49, 98 (and the task's own time-out checks use
    # torch.nonzero, not Tensor.nonzero): rl_games' rollout looked at dones twice, not 128 times
    assert calls.count(torch.uint8) == 2
    assert result.history[-1].goals_per_episode == result.history[-1].goals_per_episode  # episodes were counted


def test_host_sync_free_agent_trains_like_the_stock_agent(tmp_path):
    """Same seed, same 2 epochs: identical weights with rl_games' agent and with ours."""
    from rl_games.algos_torch import a2c_continuous

    from dofbot_rl.rl import trainer as trainer_mod
    from dofbot_rl.rl.trainer import Trainer

    def train(name, stock):
        cfg = load_config(["num_envs=16", "max_iterations=2", "sim_device=cpu", "task.env.episode_length=40",
                           f"train_dir={tmp_path}", f"experiment={name}", "seed=3"])
        if stock:
            register = trainer_mod.register_agent
            trainer_mod.register_agent = lambda runner: runner.algo_factory.register_builder(
                "a2c_continuous", lambda **kw: a2c_continuous.A2CAgent(**kw))
        try:
            result = Trainer(cfg).train()
        finally:
            if stock:
                trainer_mod.register_agent = register
        return torch.load(result.checkpoint, weights_only=True)["model"], result.history

    (ours, hist_ours), (stock, hist_stock) = train("ours", False), train("stock", True)
    for key in stock:
        assert torch.equal(ours[key], stock[key]), key
    assert [p.mean_reward for p in hist_ours] == [p.mean_reward for p in hist_stock]


@pytest.mark.skipif(not (torch.cuda.is_available() and HAS_WARP), reason="needs CUDA and mujoco_warp")
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_cuda_graph_step_equals_the_eager_step(variant):
    from dofbot_rl.paths import robot_model_path
    from dofbot_rl.physics.mujoco_warp import MujocoWarpBackend

    cfg = load_config(["num_envs=64", "sim_device=cuda:0", "task.env.episode_length=20", *VARIANTS[variant]])

    def teleop(t, task):  # a human drives env 3 for a while: eager steps in between
        if t == 25:
            task.set_manual_targets(3, torch.zeros(6))
        if t == 30:
            task.set_manual_targets(3, None)

    traces = []
    for graphs in (False, True):
        torch.manual_seed(0)
        physics = MujocoWarpBackend(robot_model_path("mjcf"), 64, device="cuda:0")
        task = DofbotReacher(cfg.task.env, physics, cfg.task.randomization, cuda_graph=graphs)
        task.reset()
        traces.append(_run(task, on_step=teleop))
        assert (task._graphs is not None) == graphs
        physics.close()
    for key in traces[0]:
        np.testing.assert_allclose(traces[1][key], traces[0][key], atol=2e-5, err_msg=key)


@pytest.mark.skipif(not (torch.cuda.is_available() and HAS_WARP), reason="needs CUDA and mujoco_warp")
def test_cuda_rollout_graphs_store_what_the_policy_computes(tmp_path):
    """The graphed rollout (dofbot_rl.rl.learner_graphs) leaves in rl_games' buffers what the eager
    model computes from the stored observations, and the GAE returns of the eager loop."""
    from rl_games.common.a2c_common import swap_and_flatten01

    from dofbot_rl.rl.trainer import Trainer

    cfg = load_config(["num_envs=512", "max_iterations=3", "sim_device=cuda:0", "rl_device=cuda:0",
                       "task.env.episode_length=100", f"train_dir={tmp_path}", "experiment=rg"])
    checked = []

    def check(progress):  # inside training, after epoch 2's update: one more rollout, then compare
        if progress.epoch != 2:
            return
        agent = trainer._algo
        graphs = agent._graphs
        assert graphs is not None and not graphs.eager and set(graphs.graphs) == {"policy", "post", "returns"}
        batch = agent.play_steps()  # every step replayed (an episode ends inside it)
        buf = agent.experience_buffer.tensor_dict
        agent.model.eval()
        with torch.no_grad():
            res = agent.model({"is_train": True, "prev_actions": batch["actions"],
                               "obs": agent._preproc_obs(batch["obses"]), "rnn_states": None})
            last_values = agent.model.denorm_value(agent.model({"is_train": True, "prev_actions": batch["actions"][:512],
                                                                "obs": agent.obs["obs"], "rnn_states": None})["values"])
            advs = agent.discount_values(agent.dones.float(), last_values, buf["dones"].float(), buf["values"],
                                         buf["rewards"])
        # rl_games switches TF32 matmuls on: a (512, 29) and a (32768, 29) batch round differently
        # (seen: 2.7e-4). A wrong slot or stale normaliser statistics differ by O(1).
        tol = dict(atol=2e-3, rtol=2e-3)
        torch.testing.assert_close(batch["mus"], res["mus"], **tol)
        torch.testing.assert_close(batch["sigmas"], res["sigmas"], **tol)
        torch.testing.assert_close(batch["neglogpacs"], res["prev_neglogp"], **tol)
        torch.testing.assert_close(batch["values"], agent.model.denorm_value(res["values"]), **tol)
        torch.testing.assert_close(batch["returns"], swap_and_flatten01(advs + buf["values"]), **tol)
        assert int(graphs.slot) == agent.horizon_length
        checked.append(progress.epoch)

    trainer = Trainer(cfg, on_progress=check)
    trainer.train()
    assert checked == [2]


@pytest.mark.skipif(not (torch.cuda.is_available() and HAS_WARP), reason="needs CUDA and mujoco_warp")
def test_cuda_update_graphs_step_like_rl_games(tmp_path):
    """A replayed PPO minibatch update (UpdateGraphs, from epoch 2) changes the weights and Adam's
    state exactly as rl_games' own eager ``calc_gradients`` does from the same state and minibatch;
    the checkpoint it leaves loads anywhere (a float learning rate, not capturable).

    (Two whole runs cannot be compared: the GPU physics is not bit-reproducible run to run.)
    """
    from dofbot_rl.rl.trainer import Trainer

    cfg = load_config(["num_envs=512", "max_iterations=3", "sim_device=cuda:0", "rl_device=cuda:0", "seed=5",
                       f"train_dir={tmp_path}", "experiment=upd"])
    checked = []

    def check(progress):
        if progress.epoch != 2:
            return
        agent = trainer._algo
        updates = agent._update_graphs
        assert updates is not None and len(updates.graphs) == len(agent.dataset)
        params = list(agent.model.parameters())
        state = [agent.optimizer.state[p] for p in params]
        agent.dataset.update_values_dict(dict(updates.inputs))  # rl_games drops it after each epoch
        values = agent.dataset.values_dict
        saved = ([p.detach().clone() for p in params], [{k: v.clone() for k, v in s.items()} for s in state],
                 values["mu"].clone(), values["sigma"].clone())

        def restore():
            for p, v in zip(params, saved[0]):
                p.data.copy_(v)
            for s, v in zip(state, saved[1]):
                for k in s:
                    s[k].copy_(v[k])
            values["mu"].copy_(saved[2])
            values["sigma"].copy_(saved[3])

        def snapshot():
            return [p.detach().clone() for p in params] + [t.clone() for s in state for t in s.values()]

        updates.step(1, update_normaliser=False)
        graphed = snapshot()
        restore()
        agent.model.train()
        agent.model.running_mean_std.eval()
        agent.calc_gradients(agent.dataset[1])  # rl_games' eager step (the lr tensor stays in place)
        eager = snapshot()
        for a, b in zip(graphed, eager):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
        assert any(not torch.equal(a, b) for a, b in zip(saved[0], graphed[: len(params)]))  # it did train
        checked.append(progress.epoch)

    trainer = Trainer(cfg, on_progress=check)
    result = trainer.train()
    assert checked == [2]
    for group in torch.load(result.checkpoint, weights_only=True)["optimizer"]["param_groups"]:
        assert isinstance(group["lr"], float) and group["capturable"] is False


def test_learner_graphs_stay_off_on_the_cpu_and_checkpoints_stay_portable(tmp_path):
    """On the CPU rl_games' eager code runs (no graphs); a checkpoint written while the optimizer
    holds a device learning rate (what UpdateGraphs sets) has a float one and is not capturable."""
    from dofbot_rl.rl.learner_graphs import graphable, update_graphable
    from dofbot_rl.rl.trainer import Trainer

    cfg = load_config(["num_envs=16", "max_iterations=2", "sim_device=cpu", f"train_dir={tmp_path}", "experiment=cpu"])
    seen = []

    def check(progress):
        agent = trainer._algo
        assert graphable(agent) == update_graphable(agent) == "not on a CUDA device"
        assert agent._graphs is None and agent._update_graphs is None
        group = agent.optimizer.param_groups[0]
        live_lr = group["lr"]
        group["lr"], group["capturable"] = torch.tensor(float(live_lr)), True
        saved = agent.get_full_state_weights()["optimizer"]["param_groups"][0]
        assert saved["lr"] == pytest.approx(float(live_lr)) and isinstance(saved["lr"], float) and saved["capturable"] is False
        assert torch.is_tensor(group["lr"])  # the live optimizer keeps its tensor
        group["lr"], group["capturable"] = live_lr, False
        seen.append(progress.epoch)

    trainer = Trainer(cfg, on_progress=check)
    trainer.train()
    assert seen == [1, 2]
