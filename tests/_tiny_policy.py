"""A tiny policy trained once per test process with the real Trainer, shared by the export tests."""

import threading
from pathlib import Path

_LOCK = threading.Lock()
_CACHE = {}


def tiny_checkpoint(root: Path):
    """Train 3 PPO epochs on 64 envs under ``root`` (once per process); returns ``(cfg, checkpoint)``."""
    from dofbot_rl.config import load_config
    from dofbot_rl.rl.trainer import Trainer

    with _LOCK:
        if "run" not in _CACHE:
            cfg = load_config(["num_envs=64", "max_iterations=3", f"train_dir={root}", "experiment=tiny",
                               "sim_device=cpu"])
            result = Trainer(cfg).train()
            assert result.checkpoint is not None and result.checkpoint.is_file()
            _CACHE["run"] = (cfg, result.checkpoint)
        return _CACHE["run"]
