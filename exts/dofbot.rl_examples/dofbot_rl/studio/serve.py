"""``dofbot-rl studio``: options, validation, and the server's life.

Everything a user can get wrong (an override, the port, the host, the token file) is
checked before the server starts; the errors are the CLI's one line. Users reach the page
through :class:`~dofbot_rl.studio.gate.Gate` (token and Origin checks); viser itself
listens on a loopback address behind it.
"""

import argparse
import contextlib
import errno
import io
import logging
import signal
import socket
from typing import List, Optional, Sequence

from dofbot_rl.errors import DofbotRlError
from dofbot_rl.studio.gate import is_loopback

log = logging.getLogger(__name__)

class StudioError(DofbotRlError, ValueError):
    """A studio option a user can fix (shown as one line by the CLI)."""


def parse_args(args: Sequence[str]):
    """``(options, hydra_overrides)`` of ``dofbot-rl studio``.

    Raises:
        StudioError: a bad option (argparse's message, one line).
    """
    parser = argparse.ArgumentParser(prog="dofbot-rl studio", add_help=True,
                                     description="The RL Examples panel in a web browser (viser). "
                                                 "Other arguments are Hydra overrides (num_envs=64 physics=mujoco ...).")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only; reach it from elsewhere "
                             "through `ssh -L 8080:127.0.0.1:8080`); any other address needs --token-file")
    parser.add_argument("--token-file", default=None,
                        help="file holding a shared token (as for `dofbot-rl serve`): the page then opens only "
                             "with ?token=TOKEN in its address (the studio prints it). It must be a regular file "
                             "readable only by its owner (chmod 600)")
    parser.add_argument("--allow-readable-token", action="store_true",
                        help="accept a token file that group or others can read")
    parser.add_argument("--port", type=int, default=8080, help="TCP port (default 8080; 0: any free port)")
    parser.add_argument("--fps", type=float, default=20.0, help="most 3D view updates per second (default 20)")

    def fail(message):
        raise StudioError(message)

    parser.error = fail
    options, overrides = parser.parse_known_args(list(args))
    unknown = [a for a in overrides if a.startswith("-")]
    if unknown:
        raise StudioError(f"unknown option {unknown[0]!r}; see `dofbot-rl studio --help`")
    if not 0 <= options.port < 65536:
        raise StudioError(f"--port must be 0..65535, got {options.port}")
    if not options.fps > 0:
        raise StudioError(f"--fps must be > 0, got {options.fps}")
    if not is_loopback(options.host) and not options.token_file:
        raise StudioError(f"--host {options.host} would let anyone on that network drive the robots (and a real arm): "
                          "give --token-file FILE (a chmod 600 file holding a secret), or use --host 127.0.0.1 "
                          "and an SSH tunnel (ssh -L 8080:127.0.0.1:8080 <server>)")
    options.token = read_token(options.token_file, options.allow_readable_token) if options.token_file else None
    return options, overrides


def read_token(path: str, allow_readable: bool = False) -> bytes:
    """The token in ``path``, read and checked as the sim-to-real link does
    (:func:`dofbot_rl.sim2real.protocol.read_token_file`: a regular private file, bounded read).

    Raises:
        StudioError: the link's one line (missing, not a regular file, readable by others, empty ...).
    """
    from dofbot_rl.sim2real.protocol import read_token_file

    try:
        return read_token_file(path, allow_readable=allow_readable)
    except ValueError as exc:
        raise StudioError(str(exc)) from None


def make_model(overrides: List[str], train_dir: Optional[str] = None):
    """The panel model for ``overrides`` (``num_envs=`` and ``max_iterations=`` become the panel's inputs).

    Raises:
        ConfigError: a bad override (the CLI's one line).
    """
    from dofbot_rl.config import load_config
    from dofbot_rl.panel import DictStore, PanelModel

    cfg = load_config(overrides)  # validates every override before anything starts
    panel_keys = ("num_envs=", "max_iterations=", "train_dir=", "task=")
    base = [o for o in overrides if not o.startswith(panel_keys)]
    values = {"task": str(cfg.task.name), "train_dir": str(train_dir or cfg.train_dir)}
    if any(o.startswith("num_envs=") for o in overrides):
        values["num_envs"] = int(cfg.num_envs)
    if any(o.startswith("max_iterations=") for o in overrides):
        values["max_iterations"] = int(cfg.max_iterations)
    return PanelModel(DictStore(values), base_overrides=base)


def start_server(host: str, port: int, token: Optional[bytes] = None):
    """``(viser.ViserServer, Gate)``, both started: viser on a loopback address of its own,
    the gate (token and Origin checks) on exactly ``host:port``.

    Args:
        token: required by the gate on every request (None: a loopback ``host`` only).

    Raises:
        StudioError: viser is not installed, ``host`` needs a token and has none, or the
            port is taken (or the address is not this machine's).
    """
    try:
        import viser
    except ImportError:
        raise StudioError("the studio needs viser: pip install -e '.[studio]'") from None
    from dofbot_rl.studio.gate import Gate, internal_host

    if token is None and not is_loopback(host):
        raise StudioError(f"--host {host} needs --token-file")
    with contextlib.redirect_stdout(io.StringIO()):  # viser prints its own (internal) address: not for users
        server = viser.ViserServer(host=internal_host(), port=0, label="Dofbot RL Studio", verbose=False)
    gate = Gate(host, port, server.get_host(), server.get_port(), token=token)
    try:
        gate.start()
    except OSError as exc:
        server.stop()
        if port and exc.errno == errno.EADDRINUSE:
            raise StudioError(f"port {port} is in use: choose another with --port") from None
        raise StudioError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return server, gate


def main(args: Sequence[str]) -> int:
    """Run ``dofbot-rl studio`` until Ctrl+C; returns the exit status."""
    from dofbot_rl.studio.app import Studio

    options, overrides = parse_args(args)
    model = make_model(overrides)
    logging.getLogger("websockets").setLevel(logging.WARNING)  # its INFO lines name viser's internal address
    server, gate = start_server(options.host, options.port, options.token)
    studio = Studio(model, server, fps=options.fps)
    previous = signal.signal(signal.SIGINT, lambda *_: studio.stop())
    shown = socket.gethostname() if options.host in ("0.0.0.0", "::") else None
    print(f"dofbot-rl studio: {gate.url(shown)}  (Ctrl+C stops)", flush=True)
    try:
        studio.run()
    finally:
        signal.signal(signal.SIGINT, previous)
        gate.stop()
        server.stop()
    return 0
