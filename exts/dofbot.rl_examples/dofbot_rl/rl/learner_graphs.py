"""CUDA graphs of the learner: rl_games' side of the rollout, and its PPO update (issue 17).

With the control step already one graph (:mod:`dofbot_rl.tasks.dofbot_reacher`), what the
host still launched one kernel at a time was rl_games' work around it. Each rollout step:
the policy forward pass (observation normalisation, the MLP, sampling, log-probabilities,
value de-normalisation), action clipping, seven experience-buffer writes, reward shaping,
value bootstrapping and the episode accumulators; after the rollout, rl_games' GAE loop
(64 steps x ~8 kernels); and each of the 20 minibatch updates of an epoch (forward pass,
losses, backward pass, gradient clipping, Adam). :class:`RolloutGraphs` records the rollout
side as three graphs:

* ``policy``: observations -> actions, stored in the experience buffer at the device-side
  slot counter (``index_copy_``, so one graph serves every step);
* ``post``: the step's rewards and dones -> shaped rewards, buffer, accumulators, slot + 1;
* ``returns``: the last values and GAE advantages and returns;

and :class:`UpdateGraphs` records rl_games' own ``calc_gradients`` once per minibatch index.

They read and write rl_games' own tensors, so the agent's state is what rl_games' eager code
would leave, and the environment step between ``policy`` and ``post`` runs as before (its own
graphs; the host-side time-out handling included). What the rollout graphs need, and check
each step (one identity comparison per tensor, no sync): the environment returns the same
observation, reward, done and time-out tensors every step (its buffers, written in place). If
that ever fails, the graphs are dropped and the same code runs eagerly.

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
    from dofbot_rl.rl.rlg_compat import GRAPHS_RL_GAMES, graphs_supported

    if torch.device(agent.ppo_device).type != "cuda":
        return "not on a CUDA device"
    if not graphs_supported():
        return f"rl_games older than {'.'.join(map(str, GRAPHS_RL_GAMES))}"
    if agent.is_rnn or agent.has_central_value or agent.use_action_masks:
        return "RNN, central value or action masks"
    if agent.num_agents != 1 or agent.value_size != 1 or not agent.is_tensor_obses:
        return "several agents or values, or numpy observations"
    from rl_games.algos_torch.models import ModelA2CContinuousLogStd

    if not isinstance(agent.model, ModelA2CContinuousLogStd.Network):
        return f"model {type(agent.model).__qualname__} (only continuous_a2c_logstd)"
    return None


class NormaliserStats:
    """The observation and value normalisers' statistics, kept in the same tensors for the graphs.

    rl_games' ``RunningMeanStd`` re-binds its buffers to new tensors whenever it updates (in
    a training forward pass); a graph would keep reading the old ones. :meth:`pin` copies the
    current values into the tensors the graphs were recorded with and re-binds them.
    """

    def __init__(self, model):
        self.model = model
        self.fixed = []
        for attr in ("running_mean_std", "value_mean_std"):
            module = getattr(model, attr, None)
            if module is None:
                continue
            for name in ("running_mean", "running_var", "count"):
                self.fixed.append((module, name, getattr(module, name)))

    def pin(self) -> None:
        """Bring the statistics back into the recorded tensors (a copy where they moved)."""
        for module, name, fixed in self.fixed:
            current = getattr(module, name)
            if current is not fixed:
                fixed.copy_(current)
                setattr(module, name, fixed)


def _record(fn, stream, pool, device):
    """Record ``fn()`` as a CUDA graph on ``stream`` (not run); return (graph, fn's result).

    ``capture_error_mode="thread_local"``: CUDA calls of other threads (Kit's main thread
    stepping PhysX and rendering while training runs on a worker thread) do not invalidate
    the capture; this thread's own unsafe calls still do.
    """
    graph = torch.cuda.CUDAGraph()
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.graph(graph, pool=pool, stream=stream, capture_error_mode="thread_local"):
        out = fn()
    torch.cuda.current_stream(device).wait_stream(stream)
    return graph, out


class RolloutGraphs:
    """The ``policy`` / ``post`` / ``returns`` graphs of one rl_games continuous A2C agent.

    Args:
        agent: an ``rl_games`` ``A2CAgent`` (continuous) for which :func:`graphable` is None,
            after ``init_tensors``.
        stats: the agent's :class:`NormaliserStats` (shared with :class:`UpdateGraphs`).

    Use: :meth:`begin` before each rollout; :meth:`policy_step` -> env step ->
    :meth:`post_step` each step; :meth:`returns` after it. Recording happens inside the first
    steps (each part runs eagerly once first, then is recorded and replayed), so nothing is
    executed twice and the first rollout already replays.
    """

    def __init__(self, agent, stats: NormaliserStats):
        self.agent = agent
        self.device = torch.device(agent.ppo_device)
        self.slot = torch.zeros((), dtype=torch.long, device=self.device)  # the buffer row of this step
        self.pool = torch.cuda.graph_pool_handle()
        self.stream = torch.cuda.Stream(device=self.device)
        self.dones = agent.dones  # (num_envs,) uint8: the dones the next stored step sees
        self.stats = stats
        self.graphs: Dict[str, torch.cuda.CUDAGraph] = {}  #: the parts recorded so far, by name
        self._outs: Dict[str, object] = {}  # each recorded part's outputs (the graph's tensors)
        self._inputs: Dict[str, tuple] = {}  # the environment tensors each part was recorded against
        self._eager_runs = {"policy": 0, "post": 0, "returns": 0}
        self._policy_out: Dict[str, torch.Tensor] = {}
        self.eager = False  #: True once the environment broke the graphs' assumption

    def begin(self) -> None:
        """Start a rollout: slot 0, the agent's dones and normaliser statistics in the graphs' tensors."""
        self.stats.pin()
        if self.agent.dones is not self.dones:
            self.dones.copy_(self.agent.dones)
            self.agent.dones = self.dones
        self.slot.zero_()

    def _run(self, name: str, body, inputs: tuple, ready: bool = True):
        """Run part ``name``: replay its graph; else run ``body()`` eagerly (its first run: lazy
        inits, cuBLAS handles; or for good once the graphs were given up); else record it
        (``ready``: what it reads from other parts is recorded too) and replay it.

        ``inputs`` are the environment tensors ``body`` reads: a graph replays only while they
        are the same tensors (identity) as at its recording. If the environment hands out new
        ones, every graph is dropped and the agent runs eagerly from then on.
        """
        if name in self.graphs and not all(a is b for a, b in zip(self._inputs[name], inputs)):
            log.info("rollout CUDA graphs off: the environment returns new tensors each step")
            self.graphs.clear()
            self.eager = True
        if name in self.graphs:
            self.graphs[name].replay()
            return self._outs[name]
        if self.eager or not ready or self._eager_runs[name] == 0:
            self._eager_runs[name] += 1
            return body()
        self.graphs[name], self._outs[name] = _record(body, self.stream, self.pool, self.device)
        self._inputs[name] = inputs
        self.graphs[name].replay()
        return self._outs[name]

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
        self._policy_out = self._run("policy", lambda: self._policy_body(obs), (obs,))
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
        # recorded only once the policy is: it reads the policy graph's values
        self._run("post", lambda: self._post_body(rewards, dones, time_outs), (obs, rewards, dones, time_outs),
                  ready="policy" in self.graphs)

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
        return self._run("returns", lambda: self._returns_body(obs), (obs,))


def update_graphable(agent) -> Optional[str]:
    """Why rl_games ``agent``'s PPO update cannot be graphed, or ``None`` if it can.

    Beyond :func:`graphable`: one process (no all-reduce), full precision (no grad scaler),
    the ``standard`` adaptive or a fixed learning-rate schedule (lr read once per mini-epoch),
    no dataset permutation, rl_games' default diagnostics (they would read values back).
    """
    why = graphable(agent)
    if why is not None:
        return why
    if agent.multi_gpu or agent.mixed_precision or agent.schedule_type == "legacy":
        return "several GPUs, mixed precision or the legacy learning-rate schedule"
    if getattr(agent.dataset, "permute", False) or type(agent.diagnostics).__name__ != "DefaultDiagnostics":
        return "a permuted dataset or PPO diagnostics"
    return None


class UpdateGraphs:
    """rl_games' ``calc_gradients`` for each minibatch index of the PPO update, as CUDA graphs.

    Each epoch :meth:`load` copies the dataset rl_games prepared into the same tensors (the
    graphs' inputs; the minibatches are fixed slices of them, as in rl_games), then
    :meth:`step` replays minibatch ``i``: forward pass, losses, backward pass, clipping and a
    capturable fused Adam step whose learning rate lives in a device tensor
    (:meth:`set_lr`). The observation normaliser, which rl_games updates inside the forward
    pass of the first mini-epoch, is updated eagerly just before (same numbers: rl_games
    updates the statistics first and normalises with the new ones); the graph normalises.

    Args:
        agent: an rl_games continuous ``A2CAgent`` for which :func:`update_graphable` is None,
            after one eager epoch (optimizer state made, kernels loaded).
        stats: the agent's :class:`NormaliserStats`.
    """

    def __init__(self, agent, stats: NormaliserStats):
        self.agent = agent
        self.stats = stats
        self.device = torch.device(agent.ppo_device)
        self.pool = torch.cuda.graph_pool_handle()
        self.stream = torch.cuda.Stream(device=self.device)
        self.inputs: Optional[Dict[str, torch.Tensor]] = None
        self.graphs: Dict[int, tuple] = {}
        self.entropy_coef = agent.entropy_coef  # a Python number the graphs hold
        agent.train_result = None  # the eager epoch's losses keep its autograd graph (default-stream nodes) alive
        for group in agent.optimizer.param_groups:  # lr as a device tensor; steps may be recorded
            group["lr"] = torch.tensor(float(group["lr"]), device=self.device)
            group["capturable"] = True
        for param, state in agent.optimizer.state.items():  # a non-fused Adam keeps its step count on the CPU
            if torch.is_tensor(state.get("step")) and state["step"].device != param.device:
                state["step"] = state["step"].to(param.device)

    def set_lr(self, lr: float) -> None:
        """The learning rate of the next steps (written into the recorded tensor)."""
        for group in self.agent.optimizer.param_groups:
            group["lr"].fill_(lr)

    def load(self, dataset) -> None:
        """Take this epoch's prepared dataset (``dataset.values_dict``) into the graphs' inputs."""
        values = dataset.values_dict
        if self.inputs is None:
            self.inputs = {k: v.clone() for k, v in values.items() if torch.is_tensor(v)}
        else:
            for k, v in self.inputs.items():
                v.copy_(values[k])
        values.update(self.inputs)

    def _body(self, i: int) -> torch.Tensor:
        agent = self.agent
        agent.model.train()
        if agent.normalize_input:
            agent.model.running_mean_std.eval()  # updated eagerly in step()
        agent.calc_gradients(agent.dataset[i])
        a_loss, c_loss, entropy, kl, _, _, mu, sigma, b_loss = agent.train_result
        agent.dataset.update_mu_sigma(mu, sigma)
        b_loss = b_loss if torch.is_tensor(b_loss) else torch.zeros_like(a_loss)
        return torch.stack([a_loss, c_loss, entropy, kl, b_loss]).detach()

    def step(self, i: int, update_normaliser: bool) -> torch.Tensor:
        """One minibatch update; returns ``(a_loss, c_loss, entropy, kl, b_loss)`` ``(5,)`` (a copy).

        Raises:
            RuntimeError: if rl_games changed the entropy coefficient, which the graphs hold.
        """
        agent = self.agent
        if agent.entropy_coef != self.entropy_coef:
            raise RuntimeError("the entropy coefficient changed under recorded PPO update graphs")
        if update_normaliser:
            obs = agent.dataset[i]["obs"]
            rms = agent.model.running_mean_std
            with torch.no_grad():
                rms.train()
                rms(agent._preproc_obs(obs))
                rms.eval()
            self.stats.pin()
        if i not in self.graphs:
            self.stats.pin()
            self.graphs[i] = _record(lambda: self._body(i), self.stream, self.pool, self.device)
        graph, out = self.graphs[i]
        graph.replay()
        return out.clone()
