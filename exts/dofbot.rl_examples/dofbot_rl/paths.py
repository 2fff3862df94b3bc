"""Where the project's files live: configs, robot models, shipped checkpoints, runs.

The repository layout is ``<root>/config``, ``<root>/data`` and
``<root>/exts/dofbot.rl_examples/dofbot_rl`` (this package). ``DOFBOT_RL_ROOT``
overrides the root, for installs that keep ``config/`` and ``data/`` elsewhere.
"""

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
EXTENSION_DIR = PACKAGE_DIR.parent


def repo_root() -> Path:
    """The project root holding ``config/`` and ``data/``.

    Raises:
        FileNotFoundError: if neither ``$DOFBOT_RL_ROOT`` nor the checkout that holds
            this package has a ``config/`` folder.
    """
    env = os.environ.get("DOFBOT_RL_ROOT")
    root = Path(env).expanduser().resolve() if env else EXTENSION_DIR.parent.parent
    if not (root / "config").is_dir():
        raise FileNotFoundError(
            f"no config/ folder under {root}: run from a clone of dofbot-rl "
            "(pip install -e .) or set DOFBOT_RL_ROOT to the folder holding config/ and data/"
        )
    return root


def config_dir() -> Path:
    """The Hydra config folder ``<root>/config``."""
    return repo_root() / "config"


def data_dir() -> Path:
    """The data folder ``<root>/data`` (robot models, shipped checkpoints)."""
    return repo_root() / "data"


def robot_model_path(kind: str = "mjcf") -> Path:
    """Path of the generated Dofbot model: ``kind`` is ``mjcf``, ``urdf`` or ``usd``.

    Raises:
        ValueError: for another kind.
    """
    names = {"mjcf": "dofbot.xml", "urdf": "dofbot.urdf", "usd": "dofbot.usda"}
    if kind not in names:
        raise ValueError(f"unknown robot model kind {kind!r}: expected one of {sorted(names)}")
    return data_dir() / "robots" / "dofbot" / names[kind]
