"""Training for transfer (``task.randomization``): each knob does what its doc says, defaults change nothing.

The task runs on the real MuJoCo C backend; the backend hook ``set_dynamics_scales`` is checked
on MuJoCo C here and on MuJoCo Warp (warp's CPU device, ``slow``) against it.
"""

import importlib.util

import pytest
import torch

from dofbot_rl.config import ConfigError, RandomizationConfig, load_config
from dofbot_rl.paths import robot_model_path
from dofbot_rl.physics import make_physics
from dofbot_rl.physics.base import SupportsDynamicsScales
from dofbot_rl.physics.mujoco_cpu import MujocoCpuBackend
from dofbot_rl.tasks import make_task
from dofbot_rl.tasks import reacher_math as rm
from dofbot_rl.tasks.dofbot_reacher import DofbotReacher

HAS_WARP = importlib.util.find_spec("mujoco_warp") is not None


class RecordingBackend(MujocoCpuBackend):
    """MuJoCo C backend that records the targets and dynamics scales the task sends."""

    def __init__(self, num_envs):
        super().__init__(robot_model_path("mjcf"), num_envs, nthread=1)
        self.sent_targets = []
        self.scale_calls = []

    def set_joint_position_targets(self, targets, env_ids=None):
        self.sent_targets.append(targets.clone())
        super().set_joint_position_targets(targets, env_ids)

    def set_dynamics_scales(self, env_ids, pd_gain_scale, mass_scale):
        self.scale_calls.append((env_ids.clone(), pd_gain_scale.clone(), mass_scale.clone()))
        super().set_dynamics_scales(env_ids, pd_gain_scale, mass_scale)


class NoHookBackend:
    """A backend with only the required part of the seam (no ``set_dynamics_scales``)."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        if name == "set_dynamics_scales":
            raise AttributeError(name)
        return getattr(self._inner, name)


def make(num_envs=8, *overrides, physics=None, seed=0):
    cfg = load_config([f"num_envs={num_envs}", "sim_device=cpu", *overrides])
    torch.manual_seed(seed)
    physics = physics if physics is not None else RecordingBackend(num_envs)
    return DofbotReacher(cfg.task.env, physics, cfg.task.randomization)


def random_actions(steps, num_envs, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [2.0 * torch.rand(num_envs, 6, generator=g) - 1.0 for _ in range(steps)]


def clean_observations(task):
    obs = rm.compute_observations(task.dof_pos, task.dof_vel, task.goal_pos_env, task.goal_rot, task.ee_pose[:, 3:7],
                                  task.actions, task.dof_lower, task.dof_upper, task.cfg.dof_vel_scale)
    return torch.clamp(obs, -task.cfg.clip_observations, task.cfg.clip_observations)


# ----------------------------------------------------------------------------------
# Defaults: off, and exactly the task without randomisation
# ----------------------------------------------------------------------------------
def test_defaults_are_off_and_bit_identical_to_no_randomization():
    n, steps = 6, 40
    cfg = load_config([f"num_envs={n}", "sim_device=cpu"])
    assert cfg.task.randomization == RandomizationConfig()
    runs = []
    for rnd in (None, cfg.task.randomization):
        torch.manual_seed(0)
        physics = RecordingBackend(n)
        # a backend without the hook is fine while gains and masses are not randomised
        task = DofbotReacher(cfg.task.env, NoHookBackend(physics) if rnd is None else physics, rnd)
        trace = [task.reset().clone()]
        for actions in random_actions(steps, n):
            obs, rew, _, _ = task.step(actions)
            assert torch.equal(task.joint_pos_targets, rm.actions_to_joint_targets(task.actions, task.dof_lower,
                                                                                  task.dof_upper))
            assert torch.equal(obs, clean_observations(task))
            trace += [obs.clone(), rew.clone(), task.joint_pos_targets.clone()]
        assert physics.scale_calls == []
        assert torch.equal(task.pd_gain_scale, torch.ones(n, 6)) and torch.equal(task.link_mass_scale, torch.ones(n))
        runs.append(trace)
    assert all(torch.equal(a, b) for a, b in zip(*runs))


# ----------------------------------------------------------------------------------
# Action latency
# ----------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 3])
def test_latency_delays_the_targets_by_exactly_k_steps(k):
    n = 4
    task = make(n, f"task.randomization.action_latency_steps={k}")
    task.reset()
    reset_pose = task.joint_pos_targets.clone()
    commanded, applied = [], []
    for actions in random_actions(12, n):
        task.step(actions)
        commanded.append(task.commanded_targets.clone())
        applied.append(task.joint_pos_targets.clone())
        assert torch.equal(task.physics.sent_targets[-1], task.joint_pos_targets)  # what reaches the simulator
    for t in range(12):
        expected = reset_pose if t < k else commanded[t - k]
        assert torch.equal(applied[t], expected), f"step {t}"

    # a reset restarts the delay line at the new reset pose, for the reset env only
    task.reset_idx(torch.tensor([1]))
    new_pose = task.joint_pos_targets[1].clone()
    before = list(commanded)
    for t, actions in enumerate(random_actions(k + 1, n, seed=2)):
        task.step(actions)
        commanded.append(task.commanded_targets.clone())
        if t < k:
            assert torch.equal(task.joint_pos_targets[1], new_pose)
            assert torch.equal(task.joint_pos_targets[[0, 2, 3]], before[len(before) - k + t][[0, 2, 3]])
        else:
            assert torch.equal(task.joint_pos_targets, commanded[-1 - k])


def test_latency_makes_the_arm_answer_late():
    def joint1_travel(*overrides):
        task = make(2, *overrides)
        task.reset()
        start = task.dof_pos[:, 0].clone()
        moved = []
        for _ in range(8):
            task.step(torch.tensor([[1.0, 0, 0, 0, 0, 0]] * 2))
            moved.append((task.dof_pos[:, 0] - start).abs().max().item())
        return moved

    fast, slow = joint1_travel(), joint1_travel("task.randomization.action_latency_steps=4")
    assert fast[0] > 1e-3
    assert max(slow[:4]) < 1e-5 and slow[5] > 1e-3


# ----------------------------------------------------------------------------------
# Servo move time
# ----------------------------------------------------------------------------------
def test_move_time_limits_the_per_step_target_change():
    n, move_time = 3, 0.5
    task = make(n, f"task.randomization.servo_move_time_s={move_time}")
    task.reset()
    max_step = (task.dof_upper - task.dof_lower) * task.control_dt / move_time
    assert torch.allclose(max_step[0], torch.tensor(torch.pi / 30))  # joint1: pi rad in 0.5 s at 60 Hz
    previous = task.joint_pos_targets.clone()
    full_speed = 0
    for t in range(40):
        sign = 1.0 if t < 20 else -1.0  # full scale one way, then the other
        task.step(torch.full((n, 6), sign))
        change = (task.joint_pos_targets - previous).abs()
        assert (change <= max_step + 1e-6).all(), f"step {t}: {change.max().item()}"
        full_speed += int(torch.isclose(change[:, 0], max_step[0].expand(n), atol=1e-6).all())
        previous = task.joint_pos_targets.clone()
        if t == 19:  # 20 steps > the 15 steps that a whole range takes: the commanded target is reached
            assert torch.allclose(task.joint_pos_targets, task.commanded_targets)
    assert full_speed >= 2 * 14  # linear slew: at the limit while far from the target, both ways


def test_latency_then_move_time():
    n, k = 2, 2
    task = make(n, f"task.randomization.action_latency_steps={k}", "task.randomization.servo_move_time_s=0.5")
    task.reset()
    start = task.joint_pos_targets.clone()
    for t in range(k + 1):
        task.step(torch.ones(n, 6))
        if t < k:
            assert torch.equal(task.joint_pos_targets, start)
    step = (task.joint_pos_targets - start)[:, :5]
    assert torch.allclose(step, ((task.dof_upper - task.dof_lower) * task.control_dt / 0.5)[:5].expand(n, 5), atol=1e-6)


# ----------------------------------------------------------------------------------
# Observation noise
# ----------------------------------------------------------------------------------
def test_obs_noise_only_touches_the_joint_entries_with_the_right_std():
    n, std = 256, 0.05
    task = make(n, f"task.randomization.obs_noise_std={std}")
    diffs = [task.reset() - clean_observations(task)]
    for actions in random_actions(5, n):
        obs, _, _, _ = task.step(actions)
        diffs.append(obs - clean_observations(task))
    diff = torch.stack(diffs)  # (6, n, 29)
    assert torch.equal(diff[..., 12:], torch.zeros_like(diff[..., 12:]))
    joint = diff[..., :12]
    assert joint.std().item() == pytest.approx(std, rel=0.05)
    assert abs(joint.mean().item()) < 0.05 * std * 5
    for col in range(12):  # every joint slot, position and velocity, is noisy
        assert joint[..., col].std().item() == pytest.approx(std, rel=0.2)
    assert not torch.allclose(diff[1], diff[2])  # fresh noise each step


def test_obs_noise_does_not_change_the_motion():
    n = 4
    runs = []
    for std in (0.0, 0.1):
        task = make(n, f"task.randomization.obs_noise_std={std}")
        task.reset()
        for actions in random_actions(10, n):
            task.step(actions)
        runs.append(task.dof_pos.clone())
    assert torch.equal(runs[0], runs[1])


# ----------------------------------------------------------------------------------
# PD gains and link masses
# ----------------------------------------------------------------------------------
def _sag(backend, pd_gain_scale, mass_scale):
    """Steady-state error (rad) of joints 2-4 holding a pose against gravity after 1 s, per env."""
    n = backend.num_envs
    ids = torch.arange(n)
    backend.set_dynamics_scales(ids, pd_gain_scale, mass_scale)
    q = torch.zeros(n, 6)
    q[:, 1], q[:, 2] = 0.6, 0.5
    backend.write_joint_state(ids, q, torch.zeros(n, 6))
    for _ in range(60):
        backend.step(2)
    return (backend.dof_pos.cpu() - q)[:, 1:4]


def test_backend_gain_scale_scales_stiffness_and_mass_scale_scales_the_load():
    b = MujocoCpuBackend(robot_model_path("mjcf"), 4, nthread=1)
    assert isinstance(b, SupportsDynamicsScales)
    kp = torch.ones(4, 6)
    kp[1] = 0.5
    sag = _sag(b, kp, torch.tensor([1.0, 1.0, 2.0, 1.0]))
    assert (sag[0] > 0.01).all()
    # a P controller against gravity: half the stiffness or twice the mass -> about twice the sag
    assert torch.allclose(sag[1] / sag[0], torch.full((3,), 2.0), rtol=0.1)
    assert torch.allclose(sag[2] / sag[0], torch.full((3,), 2.0), rtol=0.1)
    # scales are relative to the model: ones give back exactly the nominal robot
    nominal = _sag(MujocoCpuBackend(robot_model_path("mjcf"), 4, nthread=1), torch.ones(4, 6), torch.ones(4))
    assert torch.equal(_sag(b, torch.ones(4, 6), torch.ones(4)), nominal)


def test_backend_scales_are_the_models_kp_kv_mass_and_inertia():
    """Each env runs exactly as a MuJoCo model with kp, kv (gainprm / biasprm), masses and inertias scaled by hand."""
    import mujoco

    kp = torch.tensor([[0.5, 1.5, 0.7, 1.2, 0.9, 1.0], [1.0] * 6])
    mass = torch.tensor([1.3, 0.6])
    b = MujocoCpuBackend(robot_model_path("mjcf"), 2, nthread=1)
    b.set_dynamics_scales(torch.arange(2), kp, mass)
    q0, target = torch.tensor([0.1, 0.4, -0.3, 0.2, 0.0, 0.0]), torch.tensor([0.5, -0.2, 0.3, 0.1, 0.3, 0.0])
    b.write_joint_state(torch.arange(2), q0.expand(2, 6), torch.zeros(2, 6))
    b.set_joint_position_targets(target.expand(2, 6))
    for _ in range(30):
        b.step(2)
    for env in range(2):
        m = mujoco.MjModel.from_xml_path(str(robot_model_path("mjcf")))
        s = kp[env].double().numpy()
        m.actuator_gainprm[:6, 0] *= s
        m.actuator_biasprm[:6, 1] *= s  # -kp
        m.actuator_biasprm[:6, 2] *= s  # -kv
        m.body_mass[:] *= float(mass[env])
        m.body_inertia[:] *= float(mass[env])
        d = mujoco.MjData(m)
        mujoco.mj_setConst(m, d)
        d.qpos[:6], d.ctrl[:6] = q0.double().numpy(), target.double().numpy()
        mujoco.mj_step(m, d, 60)
        assert torch.allclose(b.dof_pos[env].double(), torch.from_numpy(d.qpos[:6].copy()), atol=1e-9), env


def test_task_draws_gain_and_mass_scales_per_env_at_reset():
    n = 64
    task = make(n, "task.randomization.pd_gain_scale_range=[0.5,2.0]", "task.randomization.link_mass_scale_range=[0.8,1.25]")
    task.reset()
    calls = task.physics.scale_calls
    assert len(calls) == 1
    ids, kp, mass = calls[0]
    assert torch.equal(ids, torch.arange(n)) and kp.shape == (n, 6) and mass.shape == (n,)
    assert torch.equal(task.pd_gain_scale, kp) and torch.equal(task.link_mass_scale, mass)
    assert (kp >= 0.5).all() and (kp <= 2.0).all() and kp.std() > 0.2  # per env and per joint
    assert len(set(kp[0].tolist())) == 6 and len(set(kp[:, 0].tolist())) == n
    assert (mass >= 0.8).all() and (mass <= 1.25).all() and len(set(mass.tolist())) == n

    before_kp, before_mass = task.pd_gain_scale.clone(), task.link_mass_scale.clone()
    task.reset_idx(torch.tensor([3, 7]))
    ids, kp, mass = calls[-1]
    assert ids.tolist() == [3, 7] and kp.shape == (2, 6)
    keep = torch.ones(n, dtype=torch.bool)
    keep[[3, 7]] = False
    assert torch.equal(task.pd_gain_scale[keep], before_kp[keep])
    assert not torch.equal(task.pd_gain_scale[[3, 7]], before_kp[[3, 7]])
    assert torch.equal(task.link_mass_scale[keep], before_mass[keep])


def test_task_gain_scale_changes_tracking_and_mass_scale_changes_the_motion():
    def tracking_error(*overrides):
        task = make(4, *overrides)
        task.reset()
        for _ in range(60):
            task.step(torch.tensor([[0.0, 0.6, 0.5, 0.4, 0.0, 0.0]] * 4))
        return (task.dof_pos - task.joint_pos_targets)[:, 1:4].abs().mean().item(), task.dof_pos.clone()

    nominal, q_nominal = tracking_error()
    soft, _ = tracking_error("task.randomization.pd_gain_scale_range=[0.4,0.4]")
    stiff, _ = tracking_error("task.randomization.pd_gain_scale_range=[2.5,2.5]")
    heavy, q_heavy = tracking_error("task.randomization.link_mass_scale_range=[2.0,2.0]")
    assert soft > 2 * nominal and stiff < 0.6 * nominal
    assert heavy > 1.5 * nominal and not torch.allclose(q_heavy, q_nominal, atol=1e-3)
    same, q_same = tracking_error("task.randomization.pd_gain_scale_range=[1,1]")
    assert torch.equal(q_same, q_nominal)


def test_gain_or_mass_range_on_a_backend_without_the_hook_is_refused():
    cfg = load_config(["num_envs=2", "sim_device=cpu", "task.randomization.link_mass_scale_range=[0.9,1.1]"])
    physics = NoHookBackend(make_physics(cfg))
    assert not isinstance(physics, SupportsDynamicsScales)
    with pytest.raises(ConfigError, match="link_mass_scale_range.*set_dynamics_scales"):
        DofbotReacher(cfg.task.env, physics, cfg.task.randomization)
    DofbotReacher(cfg.task.env, physics, RandomizationConfig(obs_noise_std=0.1, action_latency_steps=2))


# ----------------------------------------------------------------------------------
# Bad values
# ----------------------------------------------------------------------------------
@pytest.mark.parametrize("override, message", [
    ("action_latency_steps=-1", "action_latency_steps must be >= 0"),
    ("obs_noise_std=-0.1", "obs_noise_std must be >= 0"),
    ("servo_move_time_s=-0.2", "servo_move_time_s must be >= 0"),
    ("pd_gain_scale_range=[1.5,0.5]", "pd_gain_scale_range must be \\[lo, hi\\] with 0 < lo <= hi"),
    ("pd_gain_scale_range=[0,1]", "pd_gain_scale_range"),
    ("link_mass_scale_range=[-1,1]", "link_mass_scale_range"),
    ("link_mass_scale_range=[1]", "link_mass_scale_range"),
    ("action_latency_steps=two", "action_latency_steps"),
    ("latency=2", r"unknown key 'task.randomization.latency' \(did you mean task.randomization.action_latency_steps\?\)"),
])
def test_bad_values_are_config_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(["sim_device=cpu", f"task.randomization.{override}"])


def test_bad_values_passed_directly_to_the_task_are_config_errors():
    cfg = load_config(["num_envs=2", "sim_device=cpu"])
    for bad in (RandomizationConfig(action_latency_steps=-2), RandomizationConfig(pd_gain_scale_range=[2.0, 1.0]),
                RandomizationConfig(link_mass_scale_range=[0.0, 0.0])):
        with pytest.raises(ConfigError, match="task.randomization"):
            DofbotReacher(cfg.task.env, make_physics(cfg), bad)


# ----------------------------------------------------------------------------------
# Wiring: overrides reach the task that train and play build
# ----------------------------------------------------------------------------------
def test_make_task_passes_the_randomization_section():
    task = make_task(load_config(["num_envs=2", "sim_device=cpu", "task.randomization.action_latency_steps=3",
                                  "task.randomization.servo_move_time_s=0.1", "task.randomization.obs_noise_std=0.01",
                                  "task.randomization.pd_gain_scale_range=[0.9,1.1]"]))
    assert task.action_latency_steps == 3 and task.obs_noise_std == 0.01
    task.reset()
    assert not torch.equal(task.pd_gain_scale, torch.ones(2, 6))


def test_play_evaluates_under_latency(tiny_run):
    from dofbot_rl.rl.play import evaluate

    cfg, checkpoint = tiny_run
    overrides = ["num_envs=4", "sim_device=cpu", "task.env.episode_length=20", "task.randomization.action_latency_steps=3",
                 "task.randomization.servo_move_time_s=0.1", f"train_dir={cfg.train_dir}", "experiment=tiny"]
    seen = []
    result = evaluate(load_config(overrides), checkpoint, episodes=4,
                      on_step=lambda task, actions: seen.append(task.action_latency_steps))
    assert result.episodes == 4 and set(seen) == {3}


# ----------------------------------------------------------------------------------
# MuJoCo Warp (warp's CPU device: slow) and the GPU step path
# ----------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.skipif(not HAS_WARP, reason="mujoco_warp is not installed")
def test_warp_dynamics_scales_agree_with_mujoco_c():
    from dofbot_rl.physics.mujoco_warp import MujocoWarpBackend

    n = 4
    kp = torch.tensor([[1.0] * 6, [0.5] * 6, [1.0] * 6, [1.7, 0.6, 1.2, 0.8, 1.0, 1.0]])
    mass = torch.tensor([1.0, 1.0, 2.0, 0.7])
    warp = MujocoWarpBackend(robot_model_path("mjcf"), n, device="cpu")
    assert isinstance(warp, SupportsDynamicsScales)
    warp.step(2)  # before the first call every world shares one model
    sags = [_sag(MujocoCpuBackend(robot_model_path("mjcf"), n, nthread=1), kp, mass), _sag(warp, kp, mass)]
    assert torch.allclose(sags[0], sags[1], atol=1e-4)
    assert torch.allclose(_sag(warp, torch.ones(n, 6), torch.ones(n)),
                          _sag(MujocoCpuBackend(robot_model_path("mjcf"), n, nthread=1), torch.ones(n, 6), torch.ones(n)),
                          atol=1e-4)


@pytest.mark.skipif(not (torch.cuda.is_available() and HAS_WARP), reason="needs CUDA and mujoco_warp")
def test_gpu_step_path_has_no_host_sync_with_everything_on():
    from dofbot_rl.physics.mujoco_warp import MujocoWarpBackend

    cfg = load_config(["num_envs=64", "sim_device=cuda:0", "task.randomization.obs_noise_std=0.01",
                       "task.randomization.action_latency_steps=2", "task.randomization.servo_move_time_s=0.2",
                       "task.randomization.pd_gain_scale_range=[0.8,1.2]", "task.randomization.link_mass_scale_range=[0.8,1.2]"])
    physics = MujocoWarpBackend(robot_model_path("mjcf"), 64, device="cuda:0")
    task = DofbotReacher(cfg.task.env, physics, cfg.task.randomization)
    task.reset()
    actions = torch.zeros(64, 6, device="cuda:0")
    task.step(actions)  # captures the graph
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(20):
            task.step(actions)
        ids = torch.arange(0, 64, 2, device="cuda:0")  # the dynamics part of a reset
        physics.set_dynamics_scales(ids, torch.full((32, 6), 1.1, device="cuda:0"), torch.full((32,), 0.9, device="cuda:0"))
        task.step(actions)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(task.obs_buf).all()
