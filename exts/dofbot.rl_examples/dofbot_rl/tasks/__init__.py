"""Task registry: the panel's dropdown and the ``task=`` override read it.

Add a task by adding its class here; nothing else lists task names.
"""

from dofbot_rl.tasks.dofbot_reacher import DofbotReacher, NonFiniteActionError

TASKS = {"DofbotReacher": DofbotReacher}

__all__ = ["TASKS", "DofbotReacher", "NonFiniteActionError", "make_task"]


def make_task(cfg, physics=None):
    """Build the task ``cfg.task.name`` on ``physics`` (default: :func:`dofbot_rl.physics.make_physics`).

    Raises:
        KeyError: for a task name that is not registered.
    """
    if cfg.task.name not in TASKS:
        raise KeyError(f"unknown task {cfg.task.name!r}: registered tasks are {sorted(TASKS)}")
    if physics is None:
        from dofbot_rl.physics import make_physics

        physics = make_physics(cfg)
    return TASKS[cfg.task.name](cfg.task.env, physics, randomization=cfg.task.randomization)
