"""Fixtures for the sim-to-real tests: servers on 127.0.0.1 with a simulated arm."""

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

EXT_DIR = Path(__file__).resolve().parents[2] / "exts" / "dofbot.rl_examples"
if str(EXT_DIR) not in sys.path:
    sys.path.insert(0, str(EXT_DIR))

from dofbot_rl.sim2real.arms import SimulatedArm  # noqa: E402
from dofbot_rl.sim2real.client import Sim2RealClient  # noqa: E402
from dofbot_rl.sim2real.server import Sim2RealServer  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: longer-running test, deselect with -m 'not slow'")


def _find_python36():
    candidates = []
    try:
        root = subprocess.run(["pyenv", "root"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              universal_newlines=True, timeout=10).stdout.strip()
        if root:
            candidates.append(os.path.join(root, "versions", "3.6.15", "bin", "python"))
    except (OSError, subprocess.SubprocessError):
        pass
    candidates.append(os.path.expanduser("~/.pyenv/versions/3.6.15/bin/python"))
    for path in candidates:
        if os.path.exists(path):
            return path
    return None


PYTHON36 = _find_python36()


@pytest.fixture
def python36():
    """Path of pyenv's Python 3.6.15 (the Jetson's JetPack 4 Python)."""
    if PYTHON36 is None:
        pytest.skip("pyenv Python 3.6.15 not found (needed to test the Jetson server)")
    return PYTHON36


@pytest.fixture
def start_server():
    """``start_server(arm=None, **server_kwargs) -> (server, arm)``; stopped after the test."""
    running = []

    def _start(arm=None, **kwargs):
        arm = arm if arm is not None else SimulatedArm(read_latency_ms=0.5, read_failure_prob=0.02, seed=0)
        kwargs.setdefault("host", "127.0.0.1")
        kwargs.setdefault("port", 0)
        server = Sim2RealServer(arm, **kwargs)
        stop = threading.Event()
        thread = threading.Thread(target=server.serve_forever, args=(stop,), daemon=True)
        thread.start()
        running.append((stop, thread))
        server.thread = thread
        server.stop_event = stop
        return server, arm

    yield _start
    for stop, thread in running:
        stop.set()
        thread.join(5.0)
        assert not thread.is_alive(), "server did not stop"


@pytest.fixture
def make_client():
    """``make_client(port, **client_kwargs) -> started Sim2RealClient``; stopped after the test."""
    clients = []

    def _make(port, start=True, **kwargs):
        kwargs.setdefault("host", "127.0.0.1")
        kwargs.setdefault("fail_quietly", True)
        client = Sim2RealClient(port=port, **kwargs)
        clients.append(client)
        return client.start() if start else client

    yield _make
    for client in clients:
        client.stop()
