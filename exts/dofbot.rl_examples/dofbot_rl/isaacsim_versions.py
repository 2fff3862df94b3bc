"""Which Isaac Sim versions the extension supports, how each is launched, what was verified.

Plain data plus two small functions, used by the Kit layer at start-up
(``dofbot_rl.app.compat``) to decide the API family and by ``docs/versions.md``.
Kit-free and tested here.
"""

from dataclasses import dataclass
from typing import Optional, Tuple

#: Core API family of Isaac Sim 4.5 and later (``isaacsim.core.api``, ``isaacsim.core.prims``, ...).
ISAACSIM = "isaacsim"
#: Core API family of Isaac Sim 2023.1 - 4.2 (``omni.isaac.core``, ``omni.isaac.cloner``, ...).
OMNI_ISAAC = "omni.isaac"

_LAUNCH_NEW = "isaac-sim.sh --ext-folder exts --enable dofbot.rl_examples"
_LAUNCH_PIP = "isaacsim isaacsim.exp.full.kit --ext-folder exts --enable dofbot.rl_examples"
_MENU_BROWSER = "Isaac Examples > RL Examples; Window > Examples > Robotics Examples (category RL Examples)"


@dataclass(frozen=True)
class IsaacSimVersion:
    """One supported Isaac Sim release line."""

    version: str  #: ``major.minor`` (``2023.1``, ``4.5``, ``6.0``...)
    family: str  #: :data:`ISAACSIM` or :data:`OMNI_ISAAC`
    python: str  #: the app's Python
    launch: str  #: command from the repository root
    menu: str  #: where the panel opens
    verified: str  #: what was checked, and how


VERSIONS: Tuple[IsaacSimVersion, ...] = (
    IsaacSimVersion("2023.1", OMNI_ISAAC, "3.10", "isaac-sim.gym.sh --ext-folder exts --enable dofbot.rl_examples",
                    "Isaac Examples > RL Examples",
                    "not run; omni.isaac.core names from the 2023.1 API docs; rl_games 1.6.1 + Python 3.10 suite: tools/matrix.sh"),
    IsaacSimVersion("4.0", OMNI_ISAAC, "3.10", _LAUNCH_NEW, "Isaac Examples > RL Examples",
                    "not run; same omni.isaac.core API as 2023.1 (API docs)"),
    IsaacSimVersion("4.1", OMNI_ISAAC, "3.10", _LAUNCH_NEW, "Isaac Examples > RL Examples",
                    "not run; same omni.isaac.core API as 2023.1 (API docs)"),
    IsaacSimVersion("4.2", OMNI_ISAAC, "3.10", _LAUNCH_NEW, "Isaac Examples > RL Examples",
                    "not run; same omni.isaac.core API as 2023.1 (API docs)"),
    IsaacSimVersion("4.5", ISAACSIM, "3.10", _LAUNCH_NEW + "  (pip: " + _LAUNCH_PIP + ")", _MENU_BROWSER,
                    "not run; isaacsim.core.* names are those checked against the 6.2 wheels (unchanged since 4.5 per the docs)"),
    IsaacSimVersion("5.0", ISAACSIM, "3.11", _LAUNCH_NEW + "  (pip: " + _LAUNCH_PIP + ")", _MENU_BROWSER,
                    "not run; as 4.5"),
    IsaacSimVersion("5.1", ISAACSIM, "3.11", _LAUNCH_NEW + "  (pip: " + _LAUNCH_PIP + ")", _MENU_BROWSER,
                    "not run; as 4.5"),
    IsaacSimVersion("6.0", ISAACSIM, "3.12", _LAUNCH_NEW + "  (pip: " + _LAUNCH_PIP + ")", _MENU_BROWSER,
                    "contract test against the isaacsim 6.2.0.0 wheels (isaacsim.core.api is deprecated in 6.x but loads)"),
    IsaacSimVersion("6.2", ISAACSIM, "3.12", _LAUNCH_NEW + "  (pip: " + _LAUNCH_PIP + ")", _MENU_BROWSER,
                    "contract test (tests/test_isaacsim_contract.py) against the isaacsim-core / isaacsim-example 6.2.0.0 wheels; "
                    "Kit tests written, not run (no GPU Isaac Sim here)"),
)


def parse_version(text: str) -> Optional[Tuple[int, int]]:
    """``"4.5.0-rc.7+release..."`` -> ``(4, 5)``; ``None`` when it is not a version."""
    core = str(text).strip().split("+")[0].split("-")[0]
    parts = core.split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None


def family_for(version: str) -> Optional[str]:
    """The core API family of a release (``None`` when unknown or older than 2023.1).

    Year-numbered releases (2021.x-2023.x) use :data:`OMNI_ISAAC` from 2023.1 on; 4.0-4.2
    too; 4.5 and later (5.x, 6.x, ...) use :data:`ISAACSIM`.
    """
    parsed = parse_version(version)
    if parsed is None:
        return None
    if parsed[0] >= 2000:
        return OMNI_ISAAC if parsed >= (2023, 1) else None
    if parsed >= (4, 5):
        return ISAACSIM
    return OMNI_ISAAC if parsed[0] == 4 else None


def support_message(version: str, family_found: Optional[str]) -> Optional[str]:
    """Why the running app is not supported, or ``None`` when it is.

    Args:
        version: the app's version string (may be empty when it cannot be read).
        family_found: the core API family that could be enabled and imported, or ``None``.
    """
    if family_found is None:
        return (f"Isaac Sim {version or '(unknown version)'}: neither isaacsim.core.api (4.5+) nor omni.isaac.core "
                "(2023.1-4.2) could be enabled; the RL Examples panel needs one of them (see docs/versions.md)")
    if parse_version(version) is not None and family_for(version) is None:
        return f"Isaac Sim {version} is not supported: use 2023.1 or newer (see docs/versions.md)"
    return None
