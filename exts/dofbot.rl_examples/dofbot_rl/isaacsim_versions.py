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
_MENU = "Isaac Examples > Dofbot RL Examples"
_MENU_BROWSER = _MENU + "; Window > Examples > Robotics Examples (category RL Examples)"
_CONTRACT = "contract test (tests/test_isaacsim_contract.py) against tests/data/kit_signatures.json: "


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
    IsaacSimVersion("2023.1", OMNI_ISAAC, "3.10", "isaac-sim.gym.sh --ext-folder exts --enable dofbot.rl_examples", _MENU,
                    "not run; no public 2023.1 source: " + _CONTRACT + "the omni.isaac.* names and extension list of the "
                    "Isaac Sim 4.1 snapshot (same family); rl_games 1.6.1 + Python 3.10 suite: tools/matrix.sh"),
    IsaacSimVersion("4.0", OMNI_ISAAC, "3.10", _LAUNCH_NEW, _MENU, "not run; as 4.1 (same omni.isaac.core family)"),
    IsaacSimVersion("4.1", OMNI_ISAAC, "3.10", _LAUNCH_NEW, _MENU,
                    "not run; " + _CONTRACT + "omni.isaac.* and extension names of an Isaac Sim 4.1 exts snapshot "
                    "(github.com/phgandhi02/isaac-sim-4.1.0 at d089ac4)"),
    IsaacSimVersion("4.2", OMNI_ISAAC, "3.10", _LAUNCH_NEW, _MENU, "not run; as 4.1"),
    IsaacSimVersion("4.5", ISAACSIM, "3.10", _LAUNCH_NEW + "  (pip: " + _LAUNCH_PIP + ")", _MENU_BROWSER,
                    "not run; no 4.5 source here: as 5.0 (the isaacsim.* family began in 4.5)"),
    IsaacSimVersion("5.0", ISAACSIM, "3.11", _LAUNCH_NEW + "  (pip: " + _LAUNCH_PIP + ")", _MENU_BROWSER,
                    "not run; " + _CONTRACT + "isaacsim.* and extensions of the IsaacSim repository at v5.0.0; Kit APIs "
                    "from Isaac Sim 5.x's .pyi stubs (Kit 107)"),
    IsaacSimVersion("5.1", ISAACSIM, "3.11", _LAUNCH_NEW + "  (pip: " + _LAUNCH_PIP + ")", _MENU_BROWSER,
                    "not run; as 5.0, at v5.1.0"),
    IsaacSimVersion("6.0", ISAACSIM, "3.12", _LAUNCH_NEW + "  (pip: " + _LAUNCH_PIP + ")", _MENU_BROWSER,
                    "not run; " + _CONTRACT + "the IsaacSim repository at v6.0.0 and v6.0.1 (isaacsim.core.api deprecated, "
                    "loads); Kit 110.4 stubs and omni.ui / omni.timeline headers (omniverse-kit wheel)"),
    IsaacSimVersion("6.2", ISAACSIM, "3.12", _LAUNCH_NEW + "  (pip: " + _LAUNCH_PIP + ")", _MENU_BROWSER,
                    _CONTRACT + "the isaacsim-core / isaacsim-example 6.2.0.0 wheels (isaacsim.* names and extensions); "
                    "bare 6.2 Kit kernel runs on_startup (tests/test_kit_kernel.py, slow); Kit tests written, not run"),
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
