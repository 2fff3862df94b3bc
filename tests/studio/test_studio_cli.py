"""``dofbot-rl studio``: bad options and overrides end in one line before any server starts."""

import socket

import pytest

from dofbot_rl import cli
from dofbot_rl.studio.serve import is_loopback


@pytest.mark.parametrize("args, message", [
    (["--host", "0.0.0.0"], "--host 0.0.0.0 would let anyone on that network drive the robots"),
    (["--host", "0.0.0.0"], "--token-file"),
    (["--host", "192.168.1.20"], "SSH tunnel"),
    (["--port", "70000"], "--port must be 0..65535, got 70000"),
    (["--fps", "0"], "--fps must be > 0"),
    (["--colour"], "unknown option '--colour'"),
    (["num_envs=0"], "num_envs"),
    (["num_env=4"], "num_env"),
])
def test_bad_input_is_one_line(args, message, capsys):
    assert cli.main(["studio", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dofbot-rl: error: ") and message in err[0], err


def test_port_in_use_is_one_line(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli.main(["studio", "sim_device=cpu", "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"dofbot-rl: error: port {port} is in use: choose another with --port"


def test_loopback_names():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.3.4.5")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.2") and not is_loopback("example.org")
