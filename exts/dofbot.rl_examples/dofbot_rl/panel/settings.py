"""Panel settings: what the panel remembers between sessions, through a key-value store.

In Kit the store is ``carb.settings`` under ``/persistent/exts/dofbot.rl_examples/``
(``dofbot_rl.app.window.CarbSettingsStore``); in tests a :class:`DictStore`. A stored value
of the wrong type or out of range is ignored (the default is used) and reported in
:attr:`PanelSettings.problems`, so a stale setting never keeps the panel from opening.
"""

import dataclasses
from typing import Any, Dict, List, Optional, Protocol

#: carb.settings prefix the Kit store uses (``/persistent/...`` survives restarts).
SETTINGS_ROOT = "/persistent/exts/dofbot.rl_examples"

#: The reference OmniIsaacGymEnvs panel caps the number of environments at 8192.
MAX_UI_NUM_ENVS = 8192


class SettingsStore(Protocol):
    """A key-value store: ``get(key) -> value or None``, ``set(key, value)``."""

    def get(self, key: str) -> Any:
        """The stored value of ``key``, or ``None``."""

    def set(self, key: str, value: Any) -> None:
        """Store ``value`` (bool, int, float or str) under ``key``."""


class DictStore:
    """:class:`SettingsStore` on a dict (tests, and hosts without carb)."""

    def __init__(self, values: Optional[Dict[str, Any]] = None):
        self.values: Dict[str, Any] = dict(values or {})

    def get(self, key: str) -> Any:
        """The stored value or ``None``."""
        return self.values.get(key)

    def set(self, key: str, value: Any) -> None:
        """Store ``value``."""
        self.values[key] = value


#: Link modes the panel offers (see dofbot_rl.sim2real.link).
SIM2REAL_MODES = ("sim2real", "goal", "real2sim")


@dataclasses.dataclass
class PanelSettings:
    """The panel's persistent inputs.

    Every field is stored under its own name in the store.
    """

    task: str = "DofbotReacher"  #: task name, a key of ``dofbot_rl.tasks.TASKS``
    num_envs: int = 0  #: robots to build (1..8192); 0: the config's device default
    max_iterations: int = 0  #: PPO epochs of a run; 0: the config's device default
    render_mode: str = "full"  #: ``full``, ``ui_only`` or ``none`` (see ``dofbot_rl.panel.render``)
    train_dir: str = ""  #: where runs are written and checkpoints listed; empty: ``<repo>/runs``
    checkpoint: str = ""  #: the last checkpoint chosen (path)
    sim2real_host: str = "127.0.0.1"  #: Dofbot server host
    sim2real_port: int = 65432  #: Dofbot server port (the reference's)
    sim2real_token_file: str = ""  #: shared-token file for the v1 hello; empty: no token
    sim2real_mode: str = "sim2real"  #: ``sim2real`` (mirror joints), ``goal`` (server runs the policy), ``real2sim``

    problems: List[str] = dataclasses.field(default_factory=list, compare=False, repr=False)
    """Stored values that were ignored on :meth:`load`, one message each."""

    @classmethod
    def load(cls, store: SettingsStore) -> "PanelSettings":
        """Read every field from ``store``; missing or invalid values keep their default."""
        from dofbot_rl.panel.render import RENDER_MODES

        out = cls()
        for field in _persisted_fields():
            value = store.get(field.name)
            if value is None:
                continue
            default = getattr(out, field.name)
            if isinstance(default, bool) or type(value) is not type(default):
                if isinstance(default, int) and isinstance(value, float) and value.is_integer():
                    value = int(value)
                else:
                    out.problems.append(f"setting {field.name}={value!r} ignored: expected a {type(default).__name__}")
                    continue
            setattr(out, field.name, value)
        checks = {
            "num_envs": 0 <= out.num_envs <= MAX_UI_NUM_ENVS,
            "max_iterations": out.max_iterations >= 0,
            "render_mode": out.render_mode in RENDER_MODES,
            "sim2real_port": 0 < out.sim2real_port < 65536,
            "sim2real_mode": out.sim2real_mode in SIM2REAL_MODES,
        }
        for name, ok in checks.items():
            if not ok:
                out.problems.append(f"setting {name}={getattr(out, name)!r} ignored: out of range")
                setattr(out, name, getattr(cls(), name))
        return out

    def save(self, store: SettingsStore) -> None:
        """Write every field to ``store``."""
        for field in _persisted_fields():
            store.set(field.name, getattr(self, field.name))


def _persisted_fields():
    return [f for f in dataclasses.fields(PanelSettings) if f.name != "problems"]
