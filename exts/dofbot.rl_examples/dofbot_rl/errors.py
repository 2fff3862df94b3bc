"""The errors a user can fix, which the CLI and the panel show as one line (no traceback)."""

from dofbot_rl.config import ConfigError
from dofbot_rl.physics.base import PhysicsError
from dofbot_rl.mujoco_gl import RenderError
from dofbot_rl.rl.checkpoints import CheckpointError
from dofbot_rl.sim2real.client import Sim2RealError
from dofbot_rl.studio.serve import StudioError
from dofbot_rl.tasks.dofbot_reacher import NonFiniteActionError


class UsageError(ValueError):
    """A command-line mistake (unknown command, bad extra option)."""


USER_ERRORS = (ConfigError, CheckpointError, NonFiniteActionError, PhysicsError, UsageError, FileNotFoundError,
               Sim2RealError, RenderError, StudioError)
try:  # POSIX only (termios)
    from dofbot_rl.teleop.terminal import NotATerminalError

    USER_ERRORS += (NotATerminalError,)
except ImportError:  # pragma: no cover - Windows
    pass
