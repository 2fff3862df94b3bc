"""Fixtures for the sim-to-real tests: servers on 127.0.0.1 with a simulated arm."""

import sys
import threading
from pathlib import Path

import pytest

EXT_DIR = Path(__file__).resolve().parents[2] / "exts" / "dofbot.rl_examples"
BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"  # sim2real_fuzz: the fuzzer and hold probe
for _path in (EXT_DIR, BENCHMARKS):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from _py36 import find_python36  # noqa: E402
from dofbot_rl.sim2real.arms import SimulatedArm  # noqa: E402
from dofbot_rl.sim2real.client import Sim2RealClient  # noqa: E402
from dofbot_rl.sim2real.tcp_server import Sim2RealServer  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: longer-running test, deselect with -m 'not slow'")


PYTHON36 = find_python36()


@pytest.fixture
def python36():
    """Path of pyenv's Python 3.6.15 (the Jetson's JetPack 4 Python)."""
    if PYTHON36 is None:
        pytest.skip("pyenv Python 3.6.15 not found (needed to test the Jetson server)")
    return PYTHON36


def write_random_policy(path, seed=0, hidden=16):
    """Write an untrained 29 -> 6 dofbot-rl ``.npz`` policy (random weights) and return ``path``.

    For the mechanics of policy mode (modes, frames, safety); it reaches nothing.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    f32 = np.float32
    np.savez(str(path), format=np.array("dofbot-rl-policy"), format_version=np.int64(1), obs_clip=f32(5),
             obs_mean=np.zeros(29, f32), obs_var=np.ones(29, f32), norm_eps=f32(1e-5), norm_clip=f32(5),
             num_layers=np.int64(1), layer0_weight=rng.normal(0, 0.3, (hidden, 29)).astype(f32),
             layer0_bias=np.zeros(hidden, f32), activation=np.array("elu"),
             mu_weight=rng.normal(0, 0.3, (6, hidden)).astype(f32), mu_bias=np.zeros(6, f32), action_clip=f32(1))
    return path


@pytest.fixture(scope="session")
def random_policy_npz(tmp_path_factory):
    """Path of an untrained (random) ``.npz`` policy."""
    return write_random_policy(tmp_path_factory.mktemp("random_policy") / "policy.npz")


@pytest.fixture(scope="session")
def shipped_policy_npz(tmp_path_factory):
    """The shipped checkpoint (``data/checkpoints/DofbotReacher.pth``) exported to ``policy.npz``."""
    from dofbot_rl.paths import data_dir

    checkpoint = data_dir() / "checkpoints" / "DofbotReacher.pth"  # rl.play.default_checkpoint, without torch
    if not checkpoint.is_file():
        pytest.skip("the shipped policy data/checkpoints/DofbotReacher.pth is not there")
    from dofbot_rl.config import load_config
    from dofbot_rl.rl.export import export

    cfg = load_config(["test=True", "sim_device=cpu"])
    return export(checkpoint, "npz", tmp_path_factory.mktemp("shipped_policy"), cfg).files["npz"]


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
