"""rl_games 1.6.1 (what Isaac Sim 2023.1 users have) vs 1.6.5: the differences met here, in one place.

* spaces: 1.6.5 builds on gymnasium through its own shim ``rl_games.common.gym_compat``;
  1.6.1 imports ``gym`` (0.23) directly and has no shim.

Everything else the project uses is the same in both (checked by running the suite under
each, ``tools/matrix.sh``): ``Runner(algo_observer=...)``, ``load`` / ``reset`` / ``run``,
the observer hooks ``before_init``, ``after_init``, ``process_infos``, ``after_steps``,
``after_clear_stats``, ``after_print_stats``, the ``max_epochs`` exit that writes
``last_<name>_ep_<E>_rew__<R>_.pth``, and the checkpoint dict (``model``, ``epoch``,
``frame``, ``optimizer``, ``last_mean_rewards``, ``env_state``).

* start-up: 1.6.5's ``rl_games.envs.test_network`` (imported by every agent through
  ``common.env_configurations``) decorates a test network with ``@torch.compile`` at import,
  which imports torch's Inductor compiler: ~0.9 s of a 2-core CPU's start-up, for a network
  this project never builds. :func:`runner_class` imports rl_games with that decorator
  deferred to the function's first call (it compiles then, as before).

* the learner's CUDA graphs (:mod:`dofbot_rl.rl.learner_graphs`) re-state parts of 1.6.5's
  rollout and ``train_epoch`` and were checked on a GPU with 1.6.5 only: older versions
  keep rl_games' eager code (:func:`graphs_supported`).
"""

#: The rl_games release the learner's CUDA graphs were written against and checked with.
GRAPHS_RL_GAMES = (1, 6, 5)


def runner_class():
    """``rl_games.torch_runner.Runner``, imported with ``torch.compile`` deferred (see above).

    While rl_games imports, ``torch.compile(fn)`` returns a wrapper that compiles ``fn`` at its
    first call instead of at import; ``torch.compile`` itself is restored right after. Where
    rl_games is already imported this is a plain import.
    """
    import sys

    if "rl_games.torch_runner" not in sys.modules:
        import torch

        compile_now = torch.compile
        torch.compile = _deferred_compile(compile_now)
        try:
            import rl_games.torch_runner  # noqa: F401
        finally:
            torch.compile = compile_now
    from rl_games.torch_runner import Runner

    return Runner


def _deferred_compile(compile_now):
    """A stand-in for ``torch.compile`` that compiles at the first call (the decorator forms too)."""
    import functools

    def deferred(model=None, **options):
        if model is None:  # @torch.compile(mode=...)
            return lambda fn: deferred(fn, **options)
        compiled = []

        @functools.wraps(model)
        def call(*args, **kwargs):
            if not compiled:
                compiled.append(compile_now(model, **options))
            return compiled[0](*args, **kwargs)

        return call

    return deferred


def gym_spaces():
    """The ``spaces`` module rl_games checks observation/action spaces against."""
    try:
        from rl_games.common.gym_compat import spaces  # rl_games >= 1.6.5 (gymnasium)
    except ImportError:  # rl_games 1.6.1 (gym)
        from gym import spaces
    return spaces


def rl_games_version() -> tuple:
    """The installed rl_games version as a tuple of ints, e.g. ``(1, 6, 5)`` (``()`` if unknown)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        text = version("rl_games")
    except PackageNotFoundError:
        return ()
    parts = []
    for piece in text.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def graphs_supported() -> bool:
    """True where the installed rl_games is the release the learner's CUDA graphs were checked with or newer."""
    return rl_games_version() >= GRAPHS_RL_GAMES
