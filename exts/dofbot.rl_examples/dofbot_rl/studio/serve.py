"""``dofbot-rl studio``: options, validation, and the server's life.

Everything a user can get wrong (an override, the port, the host) is checked before the
server starts; the errors are the CLI's one line.
"""

import argparse
import ipaddress
import logging
import signal
from typing import List, Optional, Sequence

from dofbot_rl.errors import DofbotRlError

log = logging.getLogger(__name__)

LOOPBACK_NAMES = ("localhost",)


class StudioError(DofbotRlError, ValueError):
    """A studio option a user can fix (shown as one line by the CLI)."""


def is_loopback(host: str) -> bool:
    """True for ``127.0.0.0/8``, ``::1`` and ``localhost``."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
                             "through `ssh -L 8080:127.0.0.1:8080`)")
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
    if not is_loopback(options.host):
        raise StudioError(f"--host {options.host} would let anyone on that network drive the robots (and a real arm); "
                          "the studio binds this machine only: use --host 127.0.0.1 and an SSH tunnel "
                          "(ssh -L 8080:127.0.0.1:8080 <server>)")
    return options, overrides


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


def start_server(host: str, port: int):
    """A started ``viser.ViserServer`` on exactly ``host:port``.

    Raises:
        StudioError: viser is not installed, or the port is taken.
    """
    try:
        import viser
    except ImportError:
        raise StudioError("the studio needs viser: pip install -e '.[studio]'") from None
    server = viser.ViserServer(host=host, port=port, label="Dofbot RL Studio", verbose=False)
    if port and server.get_port() != port:  # viser moves on to the next free port by itself
        server.stop()
        raise StudioError(f"port {port} is in use: choose another with --port")
    return server


def main(args: Sequence[str]) -> int:
    """Run ``dofbot-rl studio`` until Ctrl+C; returns the exit status."""
    from dofbot_rl.studio.app import Studio

    options, overrides = parse_args(args)
    model = make_model(overrides)
    server = start_server(options.host, options.port)
    studio = Studio(model, server, fps=options.fps)
    previous = signal.signal(signal.SIGINT, lambda *_: studio.stop())
    print(f"dofbot-rl studio: http://{options.host}:{server.get_port()}/  (Ctrl+C stops)", flush=True)
    try:
        studio.run()
    finally:
        signal.signal(signal.SIGINT, previous)
        server.stop()
    return 0
