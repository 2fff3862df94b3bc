"""rl_games glue: the vec-env adapter and its one, idempotent registration.

Registered the way IsaacGymEnvs / OmniIsaacGymEnvs do it: vec-env type ``RLGPU`` and
env name ``rlgpu`` (the train yaml's ``env_name``). The adapter is the last wrapper:
it moves actions to the sim device, observations and rewards to the rl device, and
returns ``time_outs`` for value bootstrapping.

:func:`dofbot_rl.rl.distributed.register_agent` swaps rl_games' PPO agent for :class:`HostSyncFreeA2CAgent`
(built by :func:`host_sync_free_agent_class`), whose rollout looks for finished episodes
only on steps where the env says some ended, instead of ``dones.nonzero()`` (a host
synchronisation) every step, and which replays its GPU work as CUDA graphs.
"""

from typing import Callable, Dict, Optional

import torch

#: rl_games env name and vec-env type used by config/train/*.yaml.
ENV_NAME = "rlgpu"
VECENV_TYPE = "RLGPU"


class RlGamesVecEnv:
    """rl_games ``IVecEnv`` over a task (``reset()``, ``step(actions)``, ``get_env_info()``).

    Args:
        task: a task with ``num_envs``, ``num_observations``, ``num_actions``, ``reset()``
            and ``step(actions)`` (e.g. :class:`dofbot_rl.tasks.DofbotReacher`).
        rl_device: where rl_games keeps its tensors (``cpu`` / ``cuda:N``).
    """

    def __init__(self, task, rl_device: str):
        from dofbot_rl.rl.rlg_compat import gym_spaces  # rl_games 1.6.1 (gym) or 1.6.5 (gymnasium)
        import numpy as np

        spaces = gym_spaces()
        self.task = task
        self.rl_device = torch.device(rl_device)
        self.num_envs = task.num_envs
        clip_obs, clip_act = float(task.cfg.clip_observations), float(task.cfg.clip_actions)
        self.observation_space = spaces.Box(-clip_obs, clip_obs, (task.num_observations,), dtype=np.float32)
        self.action_space = spaces.Box(-clip_act, clip_act, (task.num_actions,), dtype=np.float32)
        self._dones = torch.zeros(task.num_envs, dtype=torch.uint8, device=self.rl_device)  # written in place

    def reset(self) -> Dict[str, torch.Tensor]:
        """Reset all envs; returns ``{"obs": (num_envs, 29)}`` on the rl device."""
        return {"obs": self.task.reset().to(self.rl_device)}

    def step(self, actions: torch.Tensor):
        """One control step: ``({"obs"}, rewards (num_envs,), dones (num_envs,) uint8, infos)``.

        ``infos["any_done"]`` (a Python bool, no sync) says whether any env ended this step.
        Where the task and rl_games share a device, the returned tensors are the same objects
        every step (the task's buffers and one dones buffer, written in place), which the
        rollout's CUDA graphs rely on (:mod:`dofbot_rl.rl.learner_graphs`).
        """
        obs, rew, reset, extras = self.task.step(actions.to(self.task.device))
        infos = {"time_outs": extras["time_outs"].to(self.rl_device), "any_done": bool(extras.get("any_done", True))}
        if "episode" in extras:
            infos["episode"] = extras["episode"]
        self._dones.copy_(reset)
        return {"obs": obs.to(self.rl_device)}, rew.to(self.rl_device), self._dones, infos

    def get_number_of_agents(self) -> int:
        """Single-agent task: 1."""
        return 1

    def get_env_info(self) -> Dict[str, object]:
        """Spaces and sizes for rl_games (no asymmetric critic: ``state_space`` absent)."""
        return {"observation_space": self.observation_space, "action_space": self.action_space, "agents": 1, "value_size": 1}

    def set_train_info(self, env_frames, *args, **kwargs) -> None:
        """rl_games curriculum hook; the reacher has no curriculum."""

    def get_env_state(self):
        """rl_games checkpoint hook; the reacher keeps no state worth saving."""
        return None

    def set_env_state(self, env_state) -> None:
        """rl_games checkpoint hook; nothing to restore."""


#: The creator registered now (what :func:`release_rl_games` compares against).
_registered: Optional[Callable[..., RlGamesVecEnv]] = None


def _no_env(*args, **kwargs):
    raise RuntimeError(f"no environment is registered as {ENV_NAME!r}: the run that registered one has ended")


def host_sync_free_agent_class():
    """rl_games' continuous PPO agent (``a2c_continuous``) that does not make the host wait for the GPU.

    The stock ``play_steps`` calls ``dones.nonzero()`` after every env step to update the
    episode meters, which makes the host wait for the GPU to finish that step. Here the
    same bookkeeping runs only when the env reports ``infos["any_done"]`` (our task knows
    on the host which steps can end episodes); on the other steps it is a no-op anyway
    (nothing to record, nothing to zero). On a CUDA device, rl_games' side of each rollout
    step, its GAE loop and (from the second epoch) its PPO minibatch updates are replayed as
    CUDA graphs (:mod:`dofbot_rl.rl.learner_graphs`); elsewhere it is rl_games' loop (1.6.5).

    Returns:
        the subclass of ``rl_games.algos_torch.a2c_continuous.A2CAgent``.
    """
    import time

    from rl_games.algos_torch import torch_ext
    from rl_games.algos_torch.a2c_continuous import A2CAgent
    from rl_games.common.a2c_common import A2CBase, swap_and_flatten01

    from dofbot_rl.rl.learner_graphs import NormaliserStats, RolloutGraphs, UpdateGraphs, graphable, update_graphable

    class HostSyncFreeA2CAgent(A2CAgent):
        #: Record the rollout's learner side as CUDA graphs where :func:`graphable` allows
        #: (:mod:`dofbot_rl.rl.learner_graphs`); benchmarks switch it off to measure it.
        graph_rollout = True
        #: Record the PPO update's minibatch steps as CUDA graphs where :func:`update_graphable`
        #: allows, from the second epoch on.
        graph_update = True

        def __init__(self, base_name, params):
            super().__init__(base_name=base_name, params=params)
            self._graphs = self._update_graphs = self._stats = None
            self._eager_updates = 0

        def _normaliser_stats(self):
            if self._stats is None:
                self._stats = NormaliserStats(self.model)
            return self._stats

        def _rollout_graphs(self):
            if self._graphs is None and self.graph_rollout and graphable(self) is None:
                self._graphs = RolloutGraphs(self, self._normaliser_stats())
            return self._graphs

        def update_lr(self, lr):
            if self._update_graphs is not None:
                self._update_graphs.set_lr(lr)
            else:
                super().update_lr(lr)

        def get_full_state_weights(self):
            state = super().get_full_state_weights()
            for group in state.get("optimizer", {}).get("param_groups", []):  # a plain, portable checkpoint
                if torch.is_tensor(group.get("lr")):
                    group["lr"] = float(group["lr"])
                group["capturable"] = False
            return state

        def train_epoch(self):
            if self._update_graphs is None:
                if not (self.graph_update and self._eager_updates >= 1 and update_graphable(self) is None):
                    self._eager_updates += 1
                    return super().train_epoch()
                self._update_graphs = UpdateGraphs(self, self._normaliser_stats())
            return self._train_epoch_graphed(self._update_graphs)

        def _train_epoch_graphed(self, updates):
            """rl_games' continuous ``train_epoch`` (1.6.5), its minibatch steps replayed as graphs."""
            A2CBase.train_epoch(self)
            self.set_eval()
            play_time_start = time.perf_counter()
            with torch.no_grad():
                batch_dict = self.play_steps()
            play_time_end = update_time_start = time.perf_counter()
            self.set_train()
            self.curr_frames = batch_dict.pop("played_frames")
            self.prepare_dataset(batch_dict)
            self.algo_observer.after_steps()
            updates.load(self.dataset)
            a_losses, c_losses, b_losses, entropies, kls = [], [], [], [], []
            last_lr = self.last_lr
            for mini_ep in range(self.mini_epochs_num):
                ep_kls = []
                last_lr = self.last_lr
                for i in range(len(self.dataset)):
                    a_loss, c_loss, entropy, kl, b_loss = updates.step(i, mini_ep == 0 and self.normalize_input).unbind(0)
                    a_losses.append(a_loss)
                    c_losses.append(c_loss)
                    ep_kls.append(kl)
                    entropies.append(entropy)
                    if self.bounds_loss_coef is not None:
                        b_losses.append(b_loss)
                av_kls = torch_ext.mean_list(ep_kls)
                if self.schedule_type == "standard":
                    self.last_lr, self.entropy_coef = self.scheduler.update(self.last_lr, self.entropy_coef, self.epoch_num, 0,
                                                                            av_kls.item())
                    self.update_lr(self.last_lr)
                kls.append(av_kls)
                self.diagnostics.mini_epoch(self, mini_ep)
                if self.normalize_input:
                    self.model.running_mean_std.eval()
            update_time_end = time.perf_counter()
            return (batch_dict["step_time"], play_time_end - play_time_start, update_time_end - update_time_start,
                    update_time_end - play_time_start, a_losses, c_losses, b_losses, entropies, kls, last_lr, 1.0)

        def play_steps(self):
            if self.use_action_masks:
                return super().play_steps()
            graphs = self._rollout_graphs()
            if graphs is None:
                return self._play_steps_eager()
            step_time = 0.0
            graphs.begin()
            for n in range(self.horizon_length):
                env_actions = graphs.policy_step(self.obs["obs"])
                step_start = time.perf_counter()
                obs, rewards, dones, infos = self.vec_env.step(env_actions)
                step_time += time.perf_counter() - step_start
                self.obs = self.obs_to_tensors(obs)
                graphs.post_step(self.obs["obs"], rewards, dones, infos["time_outs"])
                if infos.get("any_done", True):
                    self._record_finished_episodes(infos)
            return self._batch(graphs.returns(self.obs["obs"]), step_time)

        def _record_finished_episodes(self, infos):
            """rl_games' episode bookkeeping (meters, observer, accumulators zeroed where done)."""
            done_ids = self.dones.nonzero(as_tuple=False)[:: self.num_agents]
            self.game_rewards.update(self.current_rewards[done_ids])
            self.game_shaped_rewards.update(self.current_shaped_rewards[done_ids])
            self.game_lengths.update(self.current_lengths[done_ids])
            self.algo_observer.process_infos(infos, done_ids)
            not_dones = (1.0 - self.dones.float()).unsqueeze(1)
            self.current_rewards.mul_(not_dones)
            self.current_shaped_rewards.mul_(not_dones)
            self.current_lengths.mul_(not_dones.squeeze(1))

        def _batch(self, returns, step_time):
            batch_dict = self.experience_buffer.get_transformed_list(swap_and_flatten01, self.tensor_list)
            batch_dict["returns"] = swap_and_flatten01(returns)
            batch_dict["played_frames"] = self.batch_size
            batch_dict["step_time"] = step_time
            return batch_dict

        def _play_steps_eager(self):
            step_time = 0.0
            buf = self.experience_buffer
            for n in range(self.horizon_length):
                res_dict = self.get_action_values(self.obs)
                buf.update_data("obses", n, self.obs["obs"])
                buf.update_data("dones", n, self.dones)
                for k in self.update_list:
                    buf.update_data(k, n, res_dict[k])
                if self.has_central_value:
                    buf.update_data("states", n, self.obs["states"])

                step_start = time.perf_counter()
                self.obs, rewards, self.dones, infos = self.env_step(res_dict["actions"])
                step_time += time.perf_counter() - step_start

                shaped_rewards = self.rewards_shaper(rewards)
                if self.value_bootstrap and "time_outs" in infos:
                    shaped_rewards.add_(self.gamma * res_dict["values"] * self.cast_obs(infos["time_outs"]).unsqueeze(1).float())
                buf.update_data("rewards", n, shaped_rewards)
                self.current_rewards.add_(rewards)
                self.current_shaped_rewards.add_(shaped_rewards)
                self.current_lengths.add_(1)
                if infos.get("any_done", True):  # the stock bookkeeping, only where an episode ended
                    self._record_finished_episodes(infos)

            last_values = self.get_values(self.obs)
            mb_values = buf.tensor_dict["values"]
            mb_advs = self.discount_values(self.dones.float(), last_values, buf.tensor_dict["dones"].float(), mb_values,
                                           buf.tensor_dict["rewards"])
            return self._batch(mb_advs + mb_values, step_time)

    return HostSyncFreeA2CAgent


def register_rl_games(env_creator: Callable[..., RlGamesVecEnv]) -> None:
    """Register ``env_creator`` with rl_games as env ``rlgpu`` / vec-env ``RLGPU`` (idempotent).

    rl_games keeps the creator in module-level registries; call :func:`release_rl_games`
    when the run ends, else they keep its env (and the task and physics behind it) alive.
    """
    global _registered
    from rl_games.common import env_configurations, vecenv

    vecenv.register(VECENV_TYPE, lambda config_name, num_actors, **kwargs: env_creator())
    env_configurations.register(ENV_NAME, {"vecenv_type": VECENV_TYPE, "env_creator": lambda **kwargs: env_creator()})
    _registered = env_creator


def registered_creator() -> Optional[Callable[..., RlGamesVecEnv]]:
    """The creator :func:`register_rl_games` registered last and nobody released, or None."""
    return _registered


def release_rl_games(env_creator: Optional[Callable[..., RlGamesVecEnv]] = None) -> None:
    """Drop rl_games' reference to a run's env: the registries then hold a creator that raises.

    Args:
        env_creator: release only if this is still the registered creator (a later run's
            registration stays); ``None`` releases whatever is registered.
    """
    global _registered
    if _registered is None or (env_creator is not None and env_creator is not _registered):
        return
    register_rl_games(_no_env)
    _registered = None
