"""The panel's settings store on ``carb.settings`` (``/persistent/...`` survives restarts)."""

import carb.settings

from dofbot_rl.panel.settings import SETTINGS_ROOT


class CarbSettingsStore:
    """:class:`dofbot_rl.panel.settings.SettingsStore` under ``root`` in carb.settings."""

    def __init__(self, root: str = SETTINGS_ROOT):
        self._settings = carb.settings.get_settings()
        self._root = root.rstrip("/")

    def get(self, key: str):
        """The stored value, or ``None``."""
        return self._settings.get(f"{self._root}/{key}")

    def set(self, key: str, value) -> None:
        """Store a bool, int, float or str."""
        self._settings.set(f"{self._root}/{key}", value)
