"""Build the one-file server for the Jetson: ``dofbot_server.pyz``.

The archive (a stdlib :mod:`zipapp`) holds ``dofbot_rl/__init__.py`` (empty),
``dofbot_rl/robot.py``, ``dofbot_rl/errors.py`` and the sim2real modules named in :data:`RUNTIME_FILES` - all
standard library only (numpy for policy mode) and Python 3.6 compatible - plus a
``__main__`` that runs :func:`dofbot_rl.sim2real.server.main`. Nothing else of the
project goes to the robot.
Deploy by copying it::

    dofbot-rl bundle-server dofbot_server.pyz
    scp dofbot_server.pyz jetson@dofbot.local:
    ssh jetson@dofbot.local python3 dofbot_server.pyz --arm armlib --token-file ~/.dofbot_token
"""

import os
import shutil
import tempfile
import zipapp

#: The sim2real modules the robot runs, in ``dofbot_rl/sim2real/`` (the package ``__init__``
#: imports the client, so it travels too).
RUNTIME_FILES = ("__init__.py", "protocol.py", "arms.py", "safety.py", "policy_mode.py", "tcp_server.py",
                 "cmdline.py", "server.py", "npz_policy.py", "onboard.py", "client.py")
#: Simulator-side modules of the package that the robot does not run.
SIMULATOR_FILES = ("bundle.py", "link.py")

_MAIN = '''"""Entry point of the dofbot-rl server bundle: python3 dofbot_server.pyz --help"""
import sys

from dofbot_rl.sim2real.server import main

sys.exit(main(sys.argv[1:]))
'''


def build_server_zipapp(path, interpreter="/usr/bin/env python3"):
    """Write the server bundle to ``path`` (overwritten) and return ``path``.

    Args:
        path: output file, conventionally ``dofbot_server.pyz``.
        interpreter: shebang written into the archive (it is also made executable).

    Raises:
        OSError: ``path`` cannot be written.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    package = os.path.dirname(here)
    with tempfile.TemporaryDirectory(prefix="dofbot_bundle_") as tmp:
        dst = os.path.join(tmp, "dofbot_rl")
        os.makedirs(os.path.join(dst, "sim2real"))
        open(os.path.join(dst, "__init__.py"), "w").close()  # empty: the bundle needs nothing else
        for name in ("robot.py", "errors.py"):  # robot facts; the error base class
            shutil.copyfile(os.path.join(package, name), os.path.join(dst, name))
        for name in RUNTIME_FILES:
            shutil.copyfile(os.path.join(here, name), os.path.join(dst, "sim2real", name))
        with open(os.path.join(tmp, "__main__.py"), "w") as fh:
            fh.write(_MAIN)
        zipapp.create_archive(tmp, target=str(path), interpreter=interpreter)
    return path
