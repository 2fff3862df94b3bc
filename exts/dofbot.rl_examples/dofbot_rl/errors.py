"""The innermost module: the base of every error a user can fix.

Each layer's errors subclass :class:`DofbotRlError` (``ConfigError``, ``CheckpointError``,
``PhysicsError``, ``Sim2RealError``...); the front-ends (the CLI, the Kit panel, the web
studio) catch the base and show its message as one line, without a traceback. Standard
library only and Python 3.6 compatible: the Jetson server bundle carries it.
"""


class DofbotRlError(Exception):
    """An error the user can fix; its message says what was wrong and what was expected."""


class UsageError(DofbotRlError, ValueError):
    """A command-line mistake (unknown command, bad extra option)."""


#: What the front-ends show as one line: this project's errors, and a file named that is not there.
USER_ERRORS = (DofbotRlError, FileNotFoundError)
