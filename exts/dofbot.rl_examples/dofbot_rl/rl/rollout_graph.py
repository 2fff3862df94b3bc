"""CUDA graphs of the learner's side of rl_games' rollout step (issue 17).

With the control step already one graph (:mod:`dofbot_rl.tasks.dofbot_reacher`), what the
host still launched one kernel at a time each rollout step was rl_games' side of it: the
policy forward pass (observation normalisation, the MLP, sampling, log-probabilities, value
de-normalisation), action clipping, seven experience-buffer writes, reward shaping, value
bootstrapping and the episode accumulators; and after the rollout, rl_games' GAE loop
(64 steps x ~8 kernels). :class:`RolloutGraphs` records them as three graphs:

* ``policy``: observations -> actions, stored in the experience buffer at the device-side
  slot counter (``index_copy_``, so one graph serves every step);
* ``post``: the step's rewards and dones -> shaped rewards, buffer, accumulators, slot + 1;
* ``returns``: the last values and GAE advantages and returns.

They read and write rl_games' own tensors, so the agent's state is what rl_games' eager loop
would leave, and the environment step between ``policy`` and ``post`` runs as before (its own
graphs; the host-side time-out handling included). What the graphs need, and check each step
(one identity comparison per tensor, no sync): the environment returns the same observation,
reward, done and time-out tensors every step (its buffers, written in place). If that ever
fails, the graphs are dropped and the same code runs eagerly.

Learning is the same computation; random actions come from the same generator, but a
replayed graph draws them at other offsets of its Philox stream than eager launches would,
so a run is not bit-identical to an eager one (docs/benchmarks.md compares the progress).
"""

import logging
from typing import Dict, Optional

import torch

log = logging.getLogger(__name__)


def graphable(agent) -> Optional[str]:
    """Why rl_games ``agent``'s rollout cannot be graphed here, or ``None`` if it can.

    Needs: a CUDA ``ppo_device``; tensor observations; one agent per env; one value; no RNN,
    central value or action masks; rl_games' ``continuous_a2c_logstd`` model (:meth:`RolloutGraphs.act`
    re-states its sampling forward pass).
    """
    if torch.device(agent.ppo_device).type != "cuda":
        return "not on a CUDA device"
    if agent.is_rnn or agent.has_central_value or agent.use_action_masks:
        return "RNN, central value or action masks"
    if agent.num_agents != 1 or agent.value_size != 1 or not agent.is_tensor_obses:
        return "several agents or values, or numpy observations"
    from rl_games.algos_torch.models import ModelA2CContinuousLogStd

    if not isinstance(agent.model, ModelA2CContinuousLogStd.Network):
        return f"model {type(agent.model).__qualname__} (only continuous_a2c_logstd)"
    return None


class _Static:
    """The environment outputs a graph was recorded against (identity, not values)."""

    def __init__(self, obs, rewards, dones, time_outs):
        self.tensors = (obs, rewards, dones, time_outs)

    def matches(self, obs, rewards, dones, time_outs) -> bool:
        return all(a is b for a, b in zip(self.tensors, (obs, rewards, dones, time_outs)))


class RolloutGraphs:
    """The ``policy`` / ``post`` / ``returns`` graphs of one rl_games continuous A2C agent.

    Args:
        agent: an ``rl_games`` ``A2CAgent`` (continuous) for which :func:`graphable` is None,
            after ``init_tensors``.

    Use: :meth:`begin` before each rollout; :meth:`policy_step` -> env step ->
    :meth:`post_step` each step; :meth:`returns` after it. Recording happens inside the first
    steps (each part runs eagerly once first, then is recorded and replayed), so nothing is
    executed twice and the first rollout already replays.
    """

    def __init__(self, agent):
        self.agent = agent
        self.device = torch.device(agent.ppo_device)
        self.slot = torch.zeros((), dtype=torch.long, device=self.device)  # the buffer row of this step
        self.pool = torch.cuda.graph_pool_handle()
        self.stream = torch.cuda.Stream(device=self.device)
        self.dones = agent.dones  # (num_envs,) uint8: the dones the next stored step sees
        self._stats = self._normaliser_stats()
        self._policy = self._post = self._returns = None
        self._policy_out: Dict[str, torch.Tensor] = {}
        self._policy_obs = self._returns_obs = None
        self._static: Optional[_Static] = None
        self._returns_out = None
        self._eager_runs = {"policy": 0, "post": 0, "returns": 0}
        self.eager = False  #: True once the environment broke the graphs' assumption

    # -- state shared with rl_games' own code ---------------------------------------------
    def _normaliser_stats(self):
        """(module, buffer name, the tensor the graphs read) of the observation/value normalisers.

        rl_games' ``RunningMeanStd`` re-binds its buffers to new tensors in every training
        forward; :meth:`begin` copies them back into these tensors, which the graphs read.
        """
        stats = []
        model = self.agent.model
        for attr in ("running_mean_std", "value_mean_std"):
            module = getattr(model, attr, None)
            if module is None:
                continue
            for name in ("running_mean", "running_var", "count"):
                stats.append((module, name, getattr(module, name)))
        return stats

    def begin(self) -> None:
        """Start a rollout: slot 0, the agent's dones and normaliser statistics in the graphs' tensors."""
        for module, name, fixed in self._stats:
            current = getattr(module, name)
            if current is not fixed:
                fixed.copy_(current)
                setattr(module, name, fixed)
        if self.agent.dones is not self.dones:
            self.dones.copy_(self.agent.dones)
            self.agent.dones = self.dones
        self.slot.zero_()

    def _give_up(self) -> None:
        """The environment handed out other tensors than those recorded (e.g. observations copied
        to another device each step): drop the graphs and run the same code eagerly from now on."""
        log.info("rollout CUDA graphs off: the environment returns new tensors each step")
        self._policy = self._post = self._returns = None
        self.eager = True

    def _record(self, fn):
        """Record ``fn()`` as a CUDA graph on the side stream (not run); return (graph, fn's result)."""
        graph = torch.cuda.CUDAGraph()
        self.stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.graph(graph, pool=self.pool, stream=self.stream):
            out = fn()
        torch.cuda.current_stream(self.device).wait_stream(self.stream)
        return graph, out

    # -- the three parts ------------------------------------------------------------------
    def _network(self, obs: torch.Tensor):
        model = self.agent.model
        model.eval()
        return model.a2c_network({"obs": model.norm_obs(self.agent._preproc_obs(obs)), "is_train": False,
                                  "prev_actions": None, "rnn_states": None})

    def act(self, obs: torch.Tensor) -> Dict[str, torch.Tensor]:
        """rl_games' ``continuous_a2c_logstd`` forward pass for acting (``get_action_values``).

        The same computation, except how the action is drawn: ``mu + sigma * N(0, 1)``, which is
        what ``Normal(mu, sigma).sample()`` computes, without ``torch.normal(mean, std)``'s check
        that ``std >= 0``: that check reads the minimum back to the host (a synchronisation every
        rollout step, and an error inside a CUDA graph). sigma = exp(logstd) is positive anyway.

        Returns:
            ``actions``, ``mus``, ``sigmas`` ``(num_envs, 6)``; ``neglogpacs`` ``(num_envs,)``;
            ``values`` ``(num_envs, 1)`` (de-normalised).
        """
        model = self.agent.model
        with torch.no_grad():
            mu, logstd, value, _ = self._network(obs)
            sigma = torch.exp(logstd)
            actions = mu + sigma * torch.randn_like(mu)
            neglogp = model.neglogp(actions, mu, sigma, logstd)
            return {"actions": actions, "neglogpacs": torch.squeeze(neglogp), "values": model.denorm_value(value),
                    "mus": mu, "sigmas": sigma}

    def _policy_body(self, obs: torch.Tensor) -> Dict[str, torch.Tensor]:
        agent, buf = self.agent, self.agent.experience_buffer.tensor_dict
        res = self.act(obs)
        buf["obses"].index_copy_(0, self.slot.view(1), obs.unsqueeze(0))
        buf["dones"].index_copy_(0, self.slot.view(1), self.dones.unsqueeze(0))
        for k in agent.update_list:
            buf[k].index_copy_(0, self.slot.view(1), res[k].unsqueeze(0))
        return {"env_actions": agent.preprocess_actions(res["actions"]), "values": res["values"]}

    def policy_step(self, obs: torch.Tensor) -> torch.Tensor:
        """Policy and buffer writes for this step; returns the env actions ``(num_envs, 6)``.

        Args:
            obs: ``(num_envs, num_obs)`` the environment's observation buffer.
        """
        if self._policy is not None and self._policy_obs is not obs:
            self._give_up()
        if self._policy is not None:
            self._policy.replay()
            return self._policy_out["env_actions"]
        if self.eager or self._eager_runs["policy"] == 0:
            self._eager_runs["policy"] += 1
            self._policy_out = self._policy_body(obs)  # eager once: lazy inits, cuBLAS handles
            return self._policy_out["env_actions"]
        self._policy, self._policy_out = self._record(lambda: self._policy_body(obs))
        self._policy_obs = obs
        self._policy.replay()
        return self._policy_out["env_actions"]

    def _post_body(self, rewards, dones, time_outs) -> None:
        agent, buf = self.agent, self.agent.experience_buffer.tensor_dict
        rewards = rewards.unsqueeze(1)
        shaped = agent.rewards_shaper(rewards)
        if agent.value_bootstrap:
            shaped = shaped + agent.gamma * self._policy_out["values"] * time_outs.unsqueeze(1).float()
        buf["rewards"].index_copy_(0, self.slot.view(1), shaped.unsqueeze(0))
        agent.current_rewards.add_(rewards)
        agent.current_shaped_rewards.add_(shaped)
        agent.current_lengths.add_(1)
        self.dones.copy_(dones)
        self.slot.add_(1)

    def post_step(self, obs, rewards, dones, time_outs) -> None:
        """Rewards, accumulators and dones of this step.

        Args:
            obs: ``(num_envs, num_obs)``; rewards ``(num_envs,)``; dones ``(num_envs,)`` uint8;
                time_outs ``(num_envs,)`` bool: what the environment step returned.
        """
        if self._post is not None and not self._static.matches(obs, rewards, dones, time_outs):
            self._give_up()
        if self._post is not None:
            self._post.replay()
            return
        if self.eager or self._policy is None or self._eager_runs["post"] == 0:
            self._eager_runs["post"] += 1
            self._post_body(rewards, dones, time_outs)
            return
        self._post, _ = self._record(lambda: self._post_body(rewards, dones, time_outs))
        self._static = _Static(obs, rewards, dones, time_outs)
        self._post.replay()

    def _returns_body(self, obs):
        agent, buf = self.agent, self.agent.experience_buffer.tensor_dict
        with torch.no_grad():
            last_values = agent.model.denorm_value(self._network(obs)[2])
        values = buf["values"]
        advs = agent.discount_values(self.dones.float(), last_values, buf["dones"].float(), values, buf["rewards"])
        return advs + values

    def returns(self, obs: torch.Tensor) -> torch.Tensor:
        """GAE returns ``(horizon, num_envs, 1)`` of the rollout just stored (a graph's output:
        valid until the next call)."""
        if self._returns is not None and self._returns_obs is not obs:
            self._give_up()
        if self._returns is not None:
            self._returns.replay()
            return self._returns_out
        if self.eager or self._eager_runs["returns"] == 0:
            self._eager_runs["returns"] += 1
            return self._returns_body(obs)
        self._returns, self._returns_out = self._record(lambda: self._returns_body(obs))
        self._returns_obs = obs
        self._returns.replay()
        return self._returns_out
