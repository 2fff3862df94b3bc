"""The DofbotReacher task: bring the Dofbot's fingertip to random goals, batched in torch.

The MDP is the reference OmniIsaacGymEnvs-DofbotReacher task (docs/task.md):
29 observations, 6 actions in ``[-1, 1]`` mapped to absolute joint targets within the
conservative limits, control at 60 Hz on a 120 Hz simulation, reward
``-10 d - 0.0002 |a|^2 + 250 [d <= 0.05 m]``, the goal re-sampled on success, 600-step
episodes. Dropped from the reference: the rotation reward it computed and never used,
the ShadowHand config keys it never read, and action smoothing with factor 1.0 (a no-op).

Training for transfer (``task.randomization``, all off by default, ``docs/transfer.md``):
observation noise on the joint entries, action latency of k control steps, the servo's
move time as a slew limit on the applied targets, and per-env PD gain and link mass
scales drawn at each reset (through the backend's optional ``set_dynamics_scales``).

The task talks to the simulator only through the physics seam
(:class:`dofbot_rl.physics.base.PhysicsBackend`) and imports none.

On a CUDA backend that can record graphs (:class:`~dofbot_rl.physics.base.SupportsStepCapture`)
the control step is one CUDA graph: actions, the physics substeps, reward, goal
re-sampling and time-outs in one, the observations in a second (so that on a reset step
they are computed after the resets, as on the CPU). Every buffer the step carries is
written in place, so the eager step (CPU, the first CUDA step, teleop) and the replayed
one are the same computation. Episodes end only on steps the host knows in advance
(time-outs), so the loop never waits for the GPU in between.
"""

import logging
from typing import Dict, Optional

import torch

from dofbot_rl import robot
from dofbot_rl.errors import DofbotRlError
from dofbot_rl.config import ConfigError, RandomizationConfig, randomization_problems
from dofbot_rl.physics.base import PhysicsBackend, SupportsDynamicsScales, SupportsStepCapture
from dofbot_rl.tasks import reacher_math as rm

log = logging.getLogger(__name__)

NUM_OBS = 29
NUM_ACTIONS = 6
GRIPPER = 5


class NonFiniteActionError(DofbotRlError, ValueError):
    """The policy produced NaN or infinite actions."""


class DofbotReacher:
    """Vectorised reacher on any physics backend.

    Buffers (all on ``physics.device``):
        ``obs_buf`` (num_envs, 29); ``rew_buf`` (num_envs,); ``reset_buf`` (num_envs,) int64,
        1 where the episode ended this step; ``progress_buf`` (num_envs,) control steps
        into the episode; ``successes`` (num_envs,) goals reached this episode;
        ``goal_pos_env`` (num_envs, 3) m, env frame; ``goal_rot`` (num_envs, 4);
        ``actions`` (num_envs, 6) the last applied actions; ``commanded_targets``
        (num_envs, 6) rad, the joint targets the actions (or teleop) asked for this step;
        ``joint_pos_targets`` (num_envs, 6) rad, the targets sent to the simulator this step
        (``commanded_targets`` delayed by ``action_latency_steps`` and slew-limited by
        ``servo_move_time_s``; equal to them when both are off); ``pd_gain_scale``
        (num_envs, 6) and ``link_mass_scale`` (num_envs,), the dynamics scales of the
        current episode (ones unless randomised); ``tip_pos_env`` (num_envs, 3) m; ``ee_pose``
        (num_envs, 7) m + quat (w, x, y, z). All are updated in place by ``step``.

    Args:
        env_cfg: the ``task.env`` config section (see :class:`dofbot_rl.config.EnvConfig`).
        physics: the simulator, with ``physics.num_envs == env_cfg.num_envs``.
        randomization: the ``task.randomization`` section
            (:class:`dofbot_rl.config.RandomizationConfig`); None: everything off.
        cuda_graph: record the step as CUDA graphs where the backend supports it (CUDA,
            :class:`~dofbot_rl.physics.base.SupportsStepCapture`); False: always eager.

    Raises:
        ValueError: if the physics backend's size does not match the config.
        ConfigError: for invalid randomization values, or gain / mass ranges other than
            ``[1, 1]`` on a backend without ``set_dynamics_scales``.
    """

    num_observations = NUM_OBS
    num_actions = NUM_ACTIONS

    def __init__(self, env_cfg, physics: PhysicsBackend, randomization=None, cuda_graph: bool = True):
        if physics.num_envs != env_cfg.num_envs or physics.num_dof != robot.NUM_DOF:
            raise ValueError(
                f"physics backend has {physics.num_envs} envs x {physics.num_dof} dofs, "
                f"the task expects {env_cfg.num_envs} x {robot.NUM_DOF}"
            )
        self.cfg = env_cfg
        self.physics = physics
        self.num_envs = physics.num_envs
        self.device = physics.device
        self.control_dt = physics.dt * env_cfg.control_frequency_inv
        self.episode_length = int(env_cfg.episode_length)
        d = self.device
        self.dof_lower = torch.tensor(robot.SAFE_LIMITS_LOWER, device=d)
        self.dof_upper = torch.tensor(robot.SAFE_LIMITS_UPPER, device=d)
        self.teleop_lower = torch.tensor(robot.TELEOP_LIMITS_LOWER, device=d)
        self.teleop_upper = torch.tensor(robot.TELEOP_LIMITS_UPPER, device=d)
        self.default_dof_pos = torch.tensor(robot.DEFAULT_DOF_POS, device=d)
        self.tip_offset_ee = torch.tensor(robot.TIP_OFFSET_EE, device=d)
        self.success_window_steps = int(round(env_cfg.success_window_s / self.control_dt))

        n = self.num_envs
        self.obs_buf = torch.zeros(n, NUM_OBS, device=d)
        self.rew_buf = torch.zeros(n, device=d)
        self.reset_buf = torch.ones(n, dtype=torch.long, device=d)
        self.time_out_buf = torch.zeros(n, dtype=torch.bool, device=d)
        self.progress_buf = torch.zeros(n, dtype=torch.long, device=d)
        self.successes = torch.zeros(n, device=d)
        self.goal_age = torch.zeros(n, dtype=torch.long, device=d)
        self.goal_pos_env = torch.zeros(n, 3, device=d)
        self.goal_rot = torch.zeros(n, 4, device=d)
        self.goal_rot[:, 0] = 1.0
        self.actions = torch.zeros(n, NUM_ACTIONS, device=d)
        self.joint_pos_targets = torch.zeros(n, robot.NUM_DOF, device=d)
        self.tip_pos_env = torch.zeros(n, 3, device=d)
        self.ee_pose = torch.zeros(n, 7, device=d)
        self.goal_distance = torch.zeros(n, device=d)
        self.episode_sums: Dict[str, torch.Tensor] = {
            k: torch.zeros(n, device=d) for k in ("dist", "action_penalty", "reach_bonus")
        }
        self.extras: Dict[str, object] = {}
        # Envs driven by a human (teleop): env id -> (6,) joint targets (rad).
        self._manual: Dict[int, torch.Tensor] = {}
        self._manual_ids = torch.zeros(0, dtype=torch.long, device=d)
        # Non-finite actions are recorded per env; checked every step on the CPU and at the
        # (host-known) time-out steps on a GPU, so the GPU step loop never waits for the host.
        self._nonfinite_envs = torch.zeros(n, dtype=torch.bool, device=d)
        self._sync_each_step = self.device.type == "cpu"
        self._steps_to_timeout = 0
        # CUDA graphs of the step (_step_core) and of the observations; captured at the first
        # step that can use them, again when the backend's arrays change (graph_version).
        self._use_graphs = bool(cuda_graph) and self.device.type == "cuda" and isinstance(physics, SupportsStepCapture)
        self._graphs = None
        self._graph_version = None
        self._graph_actions = torch.zeros(n, NUM_ACTIONS, device=d)  # the step graph's input
        self._init_randomization(RandomizationConfig() if randomization is None else randomization)
        self.warm_up()

    # ------------------------------------------------------------------------------
    # Public API
    # ------------------------------------------------------------------------------
    def reset(self) -> torch.Tensor:
        """Reset every env; returns ``obs_buf`` ``(num_envs, 29)``."""
        self.reset_idx(torch.arange(self.num_envs, device=self.device))
        self._refresh()
        self._write_observations()
        return self.obs_buf

    def step(self, actions: torch.Tensor):
        """Apply actions for one control step (``control_frequency_inv`` physics steps).

        Args:
            actions: ``(num_envs, 6)`` in ``[-1, 1]`` (clamped to ``clip_actions``).

        Returns:
            ``(obs_buf (num_envs, 29), rew_buf (num_envs,), reset_buf (num_envs,), extras)``.
            ``extras["time_outs"]`` (num_envs,) bool marks episodes cut by the time limit
            (all endings here); ``extras["episode"]`` holds per-finished-env statistics;
            ``extras["any_done"]`` (a Python bool, known without a sync) is True iff some
            env ended this step. Envs that ended are already reset: their observation
            starts the next episode. The returned tensors are the task's buffers,
            overwritten by the next step.

        Raises:
            NonFiniteActionError: if any action is NaN or infinite: at once on the CPU; on a
                GPU at the next time-out step (the step loop never waits for the host).
                Non-finite rows never reach the simulator: they are replaced by 0.
            ValueError: for a wrongly shaped action tensor.
        """
        if actions.shape != (self.num_envs, NUM_ACTIONS):
            raise ValueError(f"actions must be ({self.num_envs}, {NUM_ACTIONS}), got {tuple(actions.shape)}")
        graphs = self._graphs if self._use_graphs and not self._manual else None
        if graphs is not None and self._graph_version == self.physics.graph_version:
            self._graph_actions.copy_(actions)
            graphs[0]()
        elif self._use_graphs and not self._manual:  # eager once (kernels loaded), then recorded
            actions = actions.to(self.device)
            self.physics.run_eagerly(lambda: self._step_core(actions))
            self._capture_graphs()
        else:
            self._step_core(actions.to(self.device))
        self.extras = {"time_outs": self.time_out_buf, "any_done": False}
        self._steps_to_timeout -= 1
        if self._steps_to_timeout <= 0:
            # Time-outs can only happen now (known on the host): one sync to find them.
            self._raise_if_nonfinite()
            check_physics = getattr(self.physics, "check_finite", None)  # backends that defer it (GPU)
            if check_physics is not None:
                check_physics()
            done_ids = torch.nonzero(self.time_out_buf).flatten()
            if done_ids.numel():
                self.extras["episode"] = self._episode_stats(done_ids)
                self.extras["any_done"] = True
                self.reset_idx(done_ids)
                self._refresh()
            self._schedule_timeout_check()
        if graphs is not None and self._graphs is graphs:
            graphs[1]()
        else:
            self._write_observations()
        return self.obs_buf, self.rew_buf, self.reset_buf, self.extras

    def _step_core(self, actions: torch.Tensor) -> None:
        """The device part of :meth:`step` (no host sync on a GPU; every carried buffer written in place):
        actions -> targets -> physics -> reward -> goals -> time-outs. ``actions`` ``(num_envs, 6)``."""
        finite = torch.isfinite(actions).all(dim=1)
        self._nonfinite_envs |= ~finite
        if self._sync_each_step:
            self._raise_if_nonfinite()
        clip = self.cfg.clip_actions
        self.actions.copy_(torch.clamp(torch.where(finite[:, None], actions, 0.0), -clip, clip))
        self.actions[:, GRIPPER] = 0.0  # the reference does not use the gripper
        commanded = rm.actions_to_joint_targets(self.actions, self.dof_lower, self.dof_upper)
        if self._manual:
            commanded[self._manual_ids] = torch.stack(list(self._manual.values()))
        self.commanded_targets.copy_(commanded)
        self.joint_pos_targets.copy_(self._targets_reaching_the_arm(commanded))
        self.physics.set_joint_position_targets(self.joint_pos_targets)
        self.physics.step(self.cfg.control_frequency_inv)

        self.progress_buf += 1
        self.goal_age += 1
        self._refresh()
        rc = self.cfg.reward
        reward, terms, distance = rm.compute_reward(
            self.tip_pos_env, self.goal_pos_env, self.actions, rc.dist_scale, rc.action_penalty_scale,
            rc.reach_goal_bonus, self.cfg.success_tolerance)
        self.rew_buf.copy_(reward)
        self.goal_distance.copy_(distance)
        for name, value in terms.items():
            self.episode_sums[name] += value

        # Goals reached are re-sampled in place (masked: no host sync on the GPU).
        reached = self.goal_distance <= self.cfg.success_tolerance
        self.successes += reached.float()
        self._resample_goals(reached)

        torch.ge(self.progress_buf, self.episode_length - 1, out=self.time_out_buf)
        if self._manual:
            self.time_out_buf[self._manual_ids] = False  # a human-driven robot never times out
        self.reset_buf.copy_(self.time_out_buf)

    def _capture_graphs(self) -> None:
        """Record :meth:`_step_core` (input ``_graph_actions``) and the observations as two CUDA graphs.

        Called right after an eager step (kernels loaded, nothing left to initialise);
        capturing runs nothing, so the state is unchanged.
        """
        self._graphs = (self.physics.capture(lambda: self._step_core(self._graph_actions)),
                        self.physics.capture(self._write_observations))
        self._graph_version = self.physics.graph_version
        log.debug("control step captured as CUDA graphs (%d envs)", self.num_envs)

    def warm_up(self) -> None:
        """Load the GPU kernels and capture the step's CUDA graphs now (the constructor calls
        this), not in the first training epoch: one step, then every env reset. The random-number
        states are restored, so what follows is as if this had not run. Does nothing where the
        step is not graphed (CPU, ``cuda_graph=False``) or once the graphs exist."""
        if not self._use_graphs or self._graphs is not None:
            return
        cpu_rng, cuda_rng = torch.get_rng_state(), torch.cuda.get_rng_state(self.device)
        self.reset()
        self.step(torch.zeros(self.num_envs, NUM_ACTIONS, device=self.device))
        self.reset()
        torch.set_rng_state(cpu_rng)
        torch.cuda.set_rng_state(cuda_rng, self.device)

    def reset_idx(self, env_ids: torch.Tensor) -> None:
        """Start new episodes in ``env_ids``: new goal, pose = default + noise x U(lower, upper), zero velocity.

        With gain or mass randomisation on, new dynamics scales are drawn for these envs
        first; delayed targets (``action_latency_steps``) restart at the reset pose.
        """
        n = env_ids.numel()
        noise = self.dof_lower + (self.dof_upper - self.dof_lower) * torch.rand(n, robot.NUM_DOF, device=self.device)
        dof_pos = self.default_dof_pos + self.cfg.reset_dof_pos_noise * noise
        dof_pos[:, GRIPPER] = self.default_dof_pos[GRIPPER]
        dof_pos = torch.maximum(torch.minimum(dof_pos, self.dof_upper), self.dof_lower)
        if self._randomize_dynamics:
            self._draw_dynamics_scales(env_ids)
        self.physics.write_joint_state(env_ids, dof_pos, torch.zeros_like(dof_pos))
        self.joint_pos_targets[env_ids] = dof_pos
        self.commanded_targets[env_ids] = dof_pos
        if self._target_delay is not None:
            self._target_delay[:, env_ids] = dof_pos
        self.actions[env_ids] = 0.0
        self.progress_buf[env_ids] = 0
        self.successes[env_ids] = 0.0
        for value in self.episode_sums.values():
            value[env_ids] = 0.0
        self._reset_goals(env_ids)
        self._schedule_timeout_check()

    def set_manual_targets(self, env_id: int, targets: Optional[torch.Tensor]) -> None:
        """Let a human drive ``env_id`` (teleop): its joint targets become ``targets``.

        Args:
            env_id: the robot, ``0 <= env_id < num_envs``.
            targets: ``(6,)`` joint targets (rad), clamped to the teleop limits (the safe
                arm limits and the gripper's full range); ``None`` hands the robot back to
                the policy. While driven, the env does not time out.

        Raises:
            IndexError: for an env id out of range.
            ValueError: for targets of the wrong shape or not finite.
        """
        if not 0 <= int(env_id) < self.num_envs:
            raise IndexError(f"env_id {env_id} out of range 0..{self.num_envs - 1}")
        if targets is None:
            self._manual.pop(int(env_id), None)
        else:
            t = torch.as_tensor(targets, dtype=torch.float32, device=self.device).reshape(-1)
            if t.numel() != robot.NUM_DOF or not bool(torch.isfinite(t).all()):
                raise ValueError(f"manual targets must be {robot.NUM_DOF} finite angles (rad), got {targets!r}")
            self._manual[int(env_id)] = torch.maximum(torch.minimum(t, self.teleop_upper), self.teleop_lower)
        self._manual_ids = torch.tensor(sorted(self._manual), dtype=torch.long, device=self.device)
        if self._manual:  # keep dict order == sorted id order for the stacked write
            self._manual = {k: self._manual[k] for k in sorted(self._manual)}

    @property
    def manual_env_ids(self):
        """Ids of the envs currently driven by a human, sorted."""
        return list(self._manual)

    # ------------------------------------------------------------------------------
    # Internals
    # ------------------------------------------------------------------------------
    def _init_randomization(self, rnd) -> None:
        """Check ``task.randomization`` and allocate what its enabled options need."""
        problems = randomization_problems(rnd)
        if problems:
            raise ConfigError("; ".join(problems))
        n, d = self.num_envs, self.device
        self.obs_noise_std = float(rnd.obs_noise_std)
        self.action_latency_steps = int(rnd.action_latency_steps)
        # The last k commanded targets (k, num_envs, 6) rad, oldest first.
        self._target_delay = (torch.zeros(self.action_latency_steps, n, robot.NUM_DOF, device=d)
                              if self.action_latency_steps else None)
        self._servo_max_step = (rm.servo_max_step(self.dof_lower, self.dof_upper, rnd.servo_move_time_s, self.control_dt)
                                if rnd.servo_move_time_s > 0 else None)
        self._gain_range = tuple(float(v) for v in rnd.pd_gain_scale_range)
        self._mass_range = tuple(float(v) for v in rnd.link_mass_scale_range)
        self._randomize_dynamics = self._gain_range != (1.0, 1.0) or self._mass_range != (1.0, 1.0)
        if self._randomize_dynamics and not isinstance(self.physics, SupportsDynamicsScales):
            raise ConfigError(
                f"task.randomization.pd_gain_scale_range={list(self._gain_range)} / link_mass_scale_range="
                f"{list(self._mass_range)} need a physics backend with set_dynamics_scales; "
                f"{type(self.physics).__name__} has none: set both ranges to [1, 1] or use physics=mujoco")
        if rnd != RandomizationConfig():
            log.info("task.randomization: obs noise std %g, action latency %d control steps, servo move time %g s, "
                     "PD gain scale %s, link mass scale %s", self.obs_noise_std, self.action_latency_steps,
                     rnd.servo_move_time_s, list(self._gain_range), list(self._mass_range))
        self.commanded_targets = torch.zeros(n, robot.NUM_DOF, device=d)
        self.pd_gain_scale = torch.ones(n, robot.NUM_DOF, device=d)
        self.link_mass_scale = torch.ones(n, device=d)

    def _targets_reaching_the_arm(self, commanded: torch.Tensor) -> torch.Tensor:
        """``commanded`` (num_envs, 6) rad delayed ``action_latency_steps`` control steps, then
        slew-limited from the last applied targets by the servo's move time."""
        targets = commanded
        if self._target_delay is not None:  # shift the ring on the device (no host counter: graph-safe)
            targets = self._target_delay[0].clone()
            self._target_delay[:-1] = self._target_delay[1:].clone()
            self._target_delay[-1] = commanded
        if self._servo_max_step is not None:
            targets = rm.slew_limit(self.joint_pos_targets, targets, self._servo_max_step)
        return targets

    def _draw_dynamics_scales(self, env_ids: torch.Tensor) -> None:
        """Draw PD gain scales ``(n, 6)`` and link mass scales ``(n,)`` for ``env_ids`` and give them to the physics."""
        n = env_ids.numel()
        (g_lo, g_hi), (m_lo, m_hi) = self._gain_range, self._mass_range
        pd_gain_scale = g_lo + (g_hi - g_lo) * torch.rand(n, robot.NUM_DOF, device=self.device)
        mass_scale = m_lo + (m_hi - m_lo) * torch.rand(n, device=self.device)
        self.pd_gain_scale[env_ids] = pd_gain_scale
        self.link_mass_scale[env_ids] = mass_scale
        self.physics.set_dynamics_scales(env_ids, pd_gain_scale, mass_scale)

    def _schedule_timeout_check(self) -> None:
        """Host-side count of control steps until the first env can time out (one sync, at resets only)."""
        self._steps_to_timeout = self.episode_length - 1 - int(self.progress_buf.max())

    def _raise_if_nonfinite(self) -> None:
        if bool(self._nonfinite_envs.any()):
            bad = torch.nonzero(self._nonfinite_envs).flatten()[:5].tolist()
            self._nonfinite_envs.zero_()
            raise NonFiniteActionError(
                f"non-finite actions for envs {bad}: the policy diverged; resume from an earlier checkpoint "
                "or lower train.params.config.learning_rate"
            )

    def _resample_goals(self, mask: torch.Tensor) -> None:
        """New goals where ``mask`` (num_envs,) is True; sampled for all envs, kept where it is set."""
        g = self.cfg.goal
        pos = rm.sample_goal_positions(self.num_envs, g.xy_min, g.xy_max, g.z_min, g.z_max, self.device)
        rot = rm.sample_goal_rotations(self.num_envs, self.device)
        self.goal_pos_env.copy_(torch.where(mask[:, None], pos, self.goal_pos_env))
        self.goal_rot.copy_(torch.where(mask[:, None], rot, self.goal_rot))
        self.goal_age.masked_fill_(mask, 0)

    def _reset_goals(self, env_ids: torch.Tensor) -> None:
        g = self.cfg.goal
        n = env_ids.numel()
        self.goal_pos_env[env_ids] = rm.sample_goal_positions(n, g.xy_min, g.xy_max, g.z_min, g.z_max, self.device)
        self.goal_rot[env_ids] = rm.sample_goal_rotations(n, self.device)
        self.goal_age[env_ids] = 0

    def _refresh(self) -> None:
        self.dof_pos = self.physics.dof_pos
        self.dof_vel = self.physics.dof_vel
        self.ee_pose.copy_(self.physics.ee_pose)
        self.tip_pos_env.copy_(rm.tip_positions(self.ee_pose, self.tip_offset_ee))

    def _write_observations(self) -> None:
        self.obs_buf.copy_(self._observations())

    def _observations(self) -> torch.Tensor:
        obs = rm.compute_observations(self.dof_pos, self.dof_vel, self.goal_pos_env, self.goal_rot, self.ee_pose[:, 3:7],
                                      self.actions, self.dof_lower, self.dof_upper, self.cfg.dof_vel_scale)
        if self.obs_noise_std > 0:
            obs = rm.add_joint_observation_noise(obs, self.obs_noise_std)
        clip = self.cfg.clip_observations
        return torch.clamp(obs, -clip, clip)

    def _episode_stats(self, env_ids: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Statistics of the episodes ending in ``env_ids`` (each a ``(len(env_ids),)`` tensor).

        ``goals_reached``: goals reached in the episode. ``goals_counted``: those plus
        the goal in progress at the end if it had been up ``success_window_s`` or more
        (then it counts as missed). ``success_rate`` over many episodes is
        ``sum(goals_reached) / sum(goals_counted)``.
        """
        reached = self.successes[env_ids]
        missed = (self.goal_age[env_ids] >= self.success_window_steps).float()
        stats = {"goals_reached": reached, "goals_counted": reached + missed}
        for name, value in self.episode_sums.items():
            stats[f"rew_{name}"] = value[env_ids].clone()
        return stats
