"""The peer: the same DofbotReacher written in mjlab (Isaac Lab's manager API on MuJoCo Warp,
rsl_rl PPO). A benchmark, not part of dofbot-rl; run by benchmarks/gpu_issue17.py in its own
Python environment (mjlab 1.6 pins mujoco / mujoco-warp 3.11, dofbot-rl runs on 4.0).

    python benchmarks/peers/mjlab_dofbot.py throughput --num-envs N     # env-only and PPO steps/s
    python benchmarks/peers/mjlab_dofbot.py tts --num-envs N --seed S --t0 T   # time to 90 % success

Each prints one line ``RESULT {json}``. ``--t0`` is the wall-clock time (``time.time()``) at
which the parent started this process, so ``tts`` reports time from process start.

Same task as dofbot_rl.tasks.DofbotReacher (the math is imported from dofbot_rl's pure
reacher_math, the robot facts from dofbot_rl.robot): the MJCF data/robots/dofbot/dofbot.xml
(``input="pos"`` stripped, which mujoco 3.11 rejects and which changes nothing; the floor
and light dropped, mjlab builds its own scene), 120 Hz physics with 2 substeps per action
(60 Hz control), the 29 observations, 6 actions in [-1, 1] mapped to absolute joint
targets within the safe limits (gripper ignored), the reward -10 d - 0.0002 |a|^2 +
250 [d <= 0.05 m], goals in the same region re-sampled on success, resets at default +
0.2 x U(lower, upper), 10 s episodes. The success metric (a command term here; mjlab has
none) is ours: goals reached / (reached + the goal in progress at the episode's end if it
had been up >= 2 s).

Differences that are mjlab's own and kept: rewards are multiplied by the step time
(``scale_rewards_by_dt``, irrelevant to throughput); reward and termination see kinematics
one substep old (mjlab calls ``forward`` once per step, before the observations); episode
lengths are randomised at the start (``init_at_random_ep_len=True``, as mjlab's train.py).
PPO: mjlab's runner (MjlabOnPolicyRunner) with ``RslRlOnPolicyRunnerCfg()`` defaults,
except ``clip_actions=1.0`` (the task's action range) and no logger (``log_dir=None``:
no wandb, no checkpoints); ``--ppo-matched`` uses dofbot-rl's PPO settings instead (64-64
MLP, horizon 64, lr 5e-3, KL 0.02, no entropy bonus). CUDA graphs: mjlab's default (on
where the driver allows; the run prints ``cuda_graph``).
"""

import argparse
import json
import os
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

T_IMPORT = time.time()
os.environ["MUJOCO_GL"] = "disable"  # before mujoco / mjlab import: no OpenGL needed (mjlab defaults to egl)
os.environ.setdefault("MJLAB_WARP_QUIET", "1")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "exts" / "dofbot.rl_examples"))

import mujoco  # noqa: E402
import torch  # noqa: E402

from dofbot_rl import robot  # noqa: E402  (standard library only)

MJCF = ROOT / "data" / "robots" / "dofbot" / "dofbot.xml"
SUCCESS_TOLERANCE = 0.05  # m
SUCCESS_WINDOW_S = 2.0
GOAL = dict(xy_min=0.15, xy_max=0.20, z_min=0.15, z_max=0.35)
DOF_VEL_SCALE = 0.2
CLIP_OBS = 5.0


def _reacher_math():
    """dofbot_rl.tasks.reacher_math without the package's task/config imports (pure torch)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "reacher_math", ROOT / "exts" / "dofbot.rl_examples" / "dofbot_rl" / "tasks" / "reacher_math.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


rm = _reacher_math()


def _spec() -> mujoco.MjSpec:
    xml = MJCF.read_text()
    xml = xml.replace(' input="pos"', "")
    xml = re.sub(r'\s*<geom name="floor"[^>]*/>', "", xml)
    xml = re.sub(r'\s*<light [^>]*/>', "", xml)
    return mujoco.MjSpec.from_string(xml)


def build_env_cfg(num_envs: int, seed: int):
    from mjlab.actuator.xml_actuator import XmlActuatorCfg
    from mjlab.entity import EntityArticulationInfoCfg, EntityCfg
    from mjlab.envs import ManagerBasedRlEnvCfg
    from mjlab.envs.mdp import time_out
    from mjlab.envs.mdp.actions import JointPositionActionCfg
    from mjlab.managers.command_manager import CommandTerm, CommandTermCfg
    from mjlab.managers.event_manager import EventTermCfg
    from mjlab.managers.observation_manager import ObservationGroupCfg, ObservationTermCfg
    from mjlab.managers.reward_manager import RewardTermCfg
    from mjlab.managers.termination_manager import TerminationTermCfg
    from mjlab.scene import SceneCfg
    from mjlab.sim import MujocoCfg, SimulationCfg

    names = robot.JOINT_NAMES
    lower, upper = robot.SAFE_LIMITS_LOWER, robot.SAFE_LIMITS_UPPER
    # target = lower + (a + 1) / 2 (upper - lower) = mid + a * half; the gripper's action is ignored (scale 0)
    scale = {n: (0.0 if n == "gripper" else 0.5 * (u - lo)) for n, lo, u in zip(names, lower, upper)}
    offset = {n: 0.5 * (u + lo) for n, lo, u in zip(names, lower, upper)}

    class DofbotGoal(CommandTerm):
        """Goals in the task's region, re-sampled on success; counts goals for the success rate."""

        def __init__(self, cfg, env):
            super().__init__(cfg, env)
            n, d = self.num_envs, self.device
            self.robot = env.scene["robot"]
            self.ee_id = self.robot.find_bodies(robot.EE_LINK)[0][0]
            self.tip_offset = torch.tensor(robot.TIP_OFFSET_EE, device=d)
            self.lower = torch.tensor(lower, device=d)
            self.upper = torch.tensor(upper, device=d)
            self.goal_pos = torch.zeros(n, 3, device=d)
            self.goal_rot = torch.zeros(n, 4, device=d)
            self.goal_rot[:, 0] = 1.0
            self.distance = torch.ones(n, device=d)
            self.successes = torch.zeros(n, device=d)
            self.goal_age = torch.zeros(n, dtype=torch.long, device=d)
            self.steps = torch.zeros(n, dtype=torch.long, device=d)  # control steps into the episode
            self.window = int(round(SUCCESS_WINDOW_S / env.step_dt))
            self.sums = torch.zeros(3, device=d)  # goals reached, goals counted, episodes

        @property
        def command(self):
            return self.goal_pos

        def tip_distance(self):
            """Fingertip-goal distance (num_envs,) m in the robot base frame; kept for the bonus and success."""
            pose = self.robot.data.body_link_pose_w[:, self.ee_id]
            tip = rm.tip_positions(pose, self.tip_offset) - self.robot.data.root_link_pos_w
            self.distance = torch.linalg.vector_norm(tip - self.goal_pos, dim=-1)
            return self.distance

        def reset(self, env_ids):
            # only full-length episodes count (mjlab starts with random episode lengths; ours are all full)
            full = (self.steps[env_ids] >= self._env.max_episode_length - 1).float()
            reached = self.successes[env_ids] * full
            missed = (self.goal_age[env_ids] >= self.window).float() * full
            self.sums += torch.stack((reached.sum(), (reached + missed).sum(), full.sum()))
            self.successes[env_ids] = 0.0
            self.steps[env_ids] = 0
            return super().reset(env_ids)

        def _update_metrics(self):
            pass

        def _resample_command(self, env_ids):
            g = GOAL
            self.goal_pos[env_ids] = rm.sample_goal_positions(len(env_ids), g["xy_min"], g["xy_max"], g["z_min"],
                                                              g["z_max"], self.device)
            self.goal_rot[env_ids] = rm.sample_goal_rotations(len(env_ids), self.device)
            self.goal_age[env_ids] = 0

        def _update_command(self, env_ids):
            if env_ids is not None:
                return
            self.steps += 1
            fresh = self._env.episode_length_buf == 0  # reset this step: its goal is new
            reached = (self.distance <= SUCCESS_TOLERANCE) & ~fresh
            self.successes += reached.float()
            pos = rm.sample_goal_positions(self.num_envs, GOAL["xy_min"], GOAL["xy_max"], GOAL["z_min"], GOAL["z_max"],
                                           self.device)
            rot = rm.sample_goal_rotations(self.num_envs, self.device)
            self.goal_pos = torch.where(reached[:, None], pos, self.goal_pos)
            self.goal_rot = torch.where(reached[:, None], rot, self.goal_rot)
            self.goal_age = torch.where(reached, 0, self.goal_age + 1)

    @dataclass(kw_only=True)
    class DofbotGoalCfg(CommandTermCfg):
        def build(self, env):
            return DofbotGoal(self, env)

    def _goal(env) -> "DofbotGoal":
        return env.command_manager.get_term("goal")

    def _actions(env):
        a = env.action_manager.action.clone()
        a[:, 5] = 0.0  # as the task: the gripper entry is 0
        return a

    def observations(env):
        rb, goal = env.scene["robot"], _goal(env)
        ee_quat = rb.data.body_link_pose_w[:, goal.ee_id, 3:7]
        obs = rm.compute_observations(rb.data.joint_pos, rb.data.joint_vel, goal.goal_pos, goal.goal_rot, ee_quat,
                                      _actions(env), goal.lower, goal.upper, DOF_VEL_SCALE)
        return obs

    def distance(env):
        return _goal(env).tip_distance()

    def action_penalty(env):
        a = _actions(env)
        return torch.sum(a * a, dim=-1)

    def reach_bonus(env):
        return (_goal(env).distance <= SUCCESS_TOLERANCE).float()

    def reset_robot(env, env_ids):
        rb = env.scene["robot"]
        lo = torch.tensor(lower, device=env.device)
        hi = torch.tensor(upper, device=env.device)
        default = torch.tensor(robot.DEFAULT_DOF_POS, device=env.device)
        n = len(env_ids)
        pos = default + 0.2 * (lo + (hi - lo) * torch.rand(n, 6, device=env.device))
        pos[:, 5] = default[5]
        pos = torch.maximum(torch.minimum(pos, hi), lo)
        rb.write_joint_state_to_sim(pos, torch.zeros_like(pos), env_ids=env_ids)

    robot_cfg = EntityCfg(
        spec_fn=_spec,
        articulation=EntityArticulationInfoCfg(actuators=(XmlActuatorCfg(target_names_expr=names),)),
        init_state=EntityCfg.InitialStateCfg(joint_pos={n: v for n, v in zip(names, robot.DEFAULT_DOF_POS)},
                                             joint_vel={".*": 0.0}),
    )
    obs_terms = {"reacher": ObservationTermCfg(func=observations, clip=(-CLIP_OBS, CLIP_OBS))}
    return ManagerBasedRlEnvCfg(
        scene=SceneCfg(num_envs=num_envs, env_spacing=1.0, terrain=None, entities={"robot": robot_cfg}),
        observations={"actor": ObservationGroupCfg(obs_terms), "critic": ObservationGroupCfg(dict(obs_terms))},
        actions={"joints": JointPositionActionCfg(entity_name="robot", actuator_names=names, scale=scale,
                                                  offset=offset, use_default_offset=False)},
        commands={"goal": DofbotGoalCfg(resampling_time_range=(1e9, 1e9))},
        events={"reset_robot": EventTermCfg(func=reset_robot, mode="reset")},
        rewards={"dist": RewardTermCfg(func=distance, weight=-10.0),
                 "action_penalty": RewardTermCfg(func=action_penalty, weight=-0.0002),
                 "reach_bonus": RewardTermCfg(func=reach_bonus, weight=250.0)},
        terminations={"time_out": TerminationTermCfg(func=time_out, time_out=True)},
        sim=SimulationCfg(mujoco=MujocoCfg(timestep=1.0 / 120.0, integrator="implicitfast",
                                           disableflags=("contact",))),
        decimation=2,
        episode_length_s=10.0,
        seed=seed,
    )


def build_agent_cfg(seed: int, matched: bool):
    from mjlab.rl import RslRlModelCfg, RslRlOnPolicyRunnerCfg, RslRlPpoAlgorithmCfg

    cfg = RslRlOnPolicyRunnerCfg(seed=seed, clip_actions=1.0, logger="tensorboard")
    if matched:  # dofbot-rl's settings (config/train/DofbotReacherPPO.yaml)
        cfg.actor = RslRlModelCfg(hidden_dims=(64, 64), activation="elu", obs_normalization=True,
                                  distribution_cfg={"class_name": "GaussianDistribution", "init_std": 1.0,
                                                    "std_type": "scalar"})
        cfg.critic = RslRlModelCfg(hidden_dims=(64, 64), activation="elu", obs_normalization=True)
        cfg.algorithm = RslRlPpoAlgorithmCfg(num_learning_epochs=5, num_mini_batches=4, learning_rate=5e-3,
                                             schedule="adaptive", gamma=0.99, lam=0.95, entropy_coef=0.0,
                                             desired_kl=0.02, max_grad_norm=1.0, value_loss_coef=4.0,
                                             use_clipped_value_loss=True, clip_param=0.2)
        cfg.num_steps_per_env = 64
    cfg.obs_groups = {"actor": ("actor",), "critic": ("critic",)}
    return cfg


def make(num_envs: int, seed: int, matched: bool = False, runner: bool = True):
    from mjlab.envs import ManagerBasedRlEnv
    from mjlab.rl import MjlabOnPolicyRunner, RslRlVecEnvWrapper
    from mjlab.utils.torch import configure_torch_backends

    configure_torch_backends()
    env = ManagerBasedRlEnv(cfg=build_env_cfg(num_envs, seed), device="cuda:0" if torch.cuda.is_available() else "cpu")
    agent_cfg = build_agent_cfg(seed, matched)
    wrapped = RslRlVecEnvWrapper(env, clip_actions=agent_cfg.clip_actions)
    if not runner:
        return env, wrapped, None, agent_cfg
    return env, wrapped, MjlabOnPolicyRunner(wrapped, asdict(agent_cfg), None, str(env.device)), agent_cfg


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def bench_env(env, wrapped, seconds: float) -> float:
    """Env-steps/s of ``wrapped.step`` with random actions (the env only, no policy)."""
    num_envs = env.num_envs

    def step():
        wrapped.step(2.0 * torch.rand(num_envs, 6, device=env.device) - 1.0)

    for _ in range(5):
        step()
    _sync()
    calls, start = 0, time.perf_counter()
    while True:
        for _ in range(10):
            step()
        calls += 10
        _sync()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return calls * num_envs / elapsed


class _Clock:
    """Wraps the runner's per-iteration log call: wall time and success figures per iteration."""

    def __init__(self, runner, goal, steps_per_iter, num_envs, stop_at=None, t0=None, cap_s=None):
        self.rows, self.goal, self.stop_at, self.t0, self.cap_s = [], goal, stop_at, t0, cap_s
        self.frames_per_iter = steps_per_iter * num_envs
        self.last = time.perf_counter()
        original = runner.logger.log

        def log(**kwargs):
            original(**kwargs)
            _sync()
            now = time.perf_counter()
            sums = goal.sums.tolist()
            goal.sums.zero_()
            rate = sums[0] / sums[1] if sums[1] else float("nan")
            row = {"it": kwargs["it"], "iter_s": now - self.last, "wall": time.time(),
                   "success_rate": rate, "goals_per_episode": sums[0] / sums[2] if sums[2] else float("nan"),
                   "episodes": sums[2]}
            self.last = now
            self.rows.append(row)
            if self.stop_at is not None and rate == rate and rate >= self.stop_at:
                raise _Reached()
            if self.cap_s is not None and row["wall"] - self.t0 > self.cap_s:
                raise _Reached()

        runner.logger.log = log


class _Reached(Exception):
    pass


def bench_throughput(num_envs: int, seconds: float, iterations: int) -> dict:
    """One env: env-only steps/s, then PPO env-steps/s with mjlab's default runner config and with ours."""
    from mjlab.rl import MjlabOnPolicyRunner

    env, wrapped, _, _ = make(num_envs, 0, runner=False)
    result = {"num_envs": num_envs, "env_steps_per_s": bench_env(env, wrapped, seconds),
              "cuda_graph": bool(getattr(env.sim, "use_cuda_graph", False))}
    for matched in (False, True):
        agent_cfg = build_agent_cfg(0, matched)
        runner = MjlabOnPolicyRunner(wrapped, asdict(agent_cfg), None, str(env.device))
        clock = _Clock(runner, env.command_manager.get_term("goal"), agent_cfg.num_steps_per_env, num_envs)
        clock.last = time.perf_counter()
        runner.learn(num_learning_iterations=iterations, init_at_random_ep_len=True)
        rates = [clock.frames_per_iter / r["iter_s"] for r in clock.rows[1:]]
        key = "ppo_matched" if matched else "ppo_default"
        result[key] = sum(rates) / len(rates)
        result[key + "_first_iter_s"] = clock.rows[0]["iter_s"]
        result[key + "_steps_per_iter"] = agent_cfg.num_steps_per_env
    return result


def time_to_success(num_envs: int, seed: int, t0: float, max_iterations: int, matched: bool, cap_s: float) -> dict:
    env, wrapped, runner, agent_cfg = make(num_envs, seed, matched)
    t_ready = time.time()
    clock = _Clock(runner, env.command_manager.get_term("goal"), agent_cfg.num_steps_per_env, num_envs, stop_at=0.9,
                   t0=t0, cap_s=cap_s)
    clock.last = time.perf_counter()
    try:
        runner.learn(num_learning_iterations=max_iterations, init_at_random_ep_len=True)
    except _Reached:
        pass
    hit = next((r for r in clock.rows if r["success_rate"] == r["success_rate"] and r["success_rate"] >= 0.9), None)
    return {"num_envs": num_envs, "seed": seed, "matched": matched, "import_s": T_IMPORT - t0, "ready_s": t_ready - t0,
            "time_to_90_s": (hit["wall"] - t0) if hit else None,
            "env_steps_to_90": (hit["it"] + 1) * clock.frames_per_iter if hit else None,
            "iterations": len(clock.rows), "last": clock.rows[-1] if clock.rows else None}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=("throughput", "tts"))
    p.add_argument("--num-envs", type=int, default=4096)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--t0", type=float, default=None)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--iterations", type=int, default=6)
    p.add_argument("--cap-s", type=float, default=60.0)
    p.add_argument("--ppo-matched", action="store_true")
    a = p.parse_args()
    if a.mode == "throughput":
        result = bench_throughput(a.num_envs, a.seconds, a.iterations)
    else:
        result = time_to_success(a.num_envs, a.seed, a.t0 if a.t0 is not None else T_IMPORT, 1000, a.ppo_matched,
                                 a.cap_s)
    import mjlab

    result.update(mjlab=getattr(mjlab, "__version__", "?"), mujoco=mujoco.__version__, torch=torch.__version__)
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
