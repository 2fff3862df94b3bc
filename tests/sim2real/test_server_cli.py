"""The server's command line: every number checked at parse time, one-line errors (issue 18.16, 18.17)."""

import os
import subprocess
import sys

import pytest

from dofbot_rl.sim2real import server
from sim2real_fuzz import PACKAGE_PARENT


@pytest.mark.parametrize("args,match", [
    (["--max-rate-hz", "inf"], "argument --max-rate-hz: must be a number in (0, 1000], got 'inf'"),
    (["--max-rate-hz", "nan"], "argument --max-rate-hz: must be a number in (0, 1000]"),
    (["--max-rate-hz", "0"], "argument --max-rate-hz: must be a number in (0, 1000]"),
    (["--port", "70000"], "argument --port: must be an integer in [0, 65535], got '70000'"),
    (["--port", "-1"], "argument --port: must be an integer in [0, 65535]"),
    (["--max-step-deg", "inf"], "argument --max-step-deg: must be a number in (0, 180], got 'inf'"),
    (["--max-step-deg", "-5"], "argument --max-step-deg: must be a number in (0, 180]"),
    (["--heartbeat-ms", "5"], "argument --heartbeat-ms: must be an integer in [10, 65535]"),
    (["--readback-hz", "inf"], "argument --readback-hz: must be a number in [0, 1000]"),
    (["--move-ms", "99999"], "argument --move-ms: must be an integer in [0, 2000]"),
    (["--sim-read-failure", "2"], "argument --sim-read-failure: must be a number in [0, 1]"),
    (["--goal", "0.1,nan,0.2", "--policy", "p.npz"], "argument --goal: --goal must be 3 comma-separated finite"),
    (["--goal", "0.1,0.2,0.3"], "--goal and --goal-quat need --policy"),
])
def test_bad_values_are_one_line_errors(capsys, args, match):
    with pytest.raises(SystemExit) as exit_info:
        server.main(args)
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("dofbot-rl: error: "), err
    assert match in err


def _start_up(tmp_path, *args):
    env = dict(os.environ, PYTHONPATH=PACKAGE_PARENT)
    return subprocess.run([sys.executable, "-m", "dofbot_rl.sim2real.server", "--port", "0",
                           "--host", "127.0.0.1"] + list(args), env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=60)


def test_token_file_that_is_a_fifo_or_readable_stops_start_up(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(str(fifo), 0o600)
    out = _start_up(tmp_path, "--token-file", str(fifo))  # no writer: must not hang
    assert out.returncode == 1 and "not a regular file" in out.stdout, out.stdout
    assert len(out.stdout.strip().splitlines()) == 1
    out = _start_up(tmp_path, "--token-file", "/dev/zero")
    assert out.returncode == 1 and "not a regular file" in out.stdout, out.stdout
    shared = tmp_path / "token"
    shared.write_text("secret\n")
    os.chmod(str(shared), 0o644)
    out = _start_up(tmp_path, "--token-file", str(shared))
    assert out.returncode == 1 and "readable by other users" in out.stdout and "chmod 600" in out.stdout, out.stdout
    # --allow-readable-token accepts it: the server gets past the token and fails later, on the port.
    out = _start_up(tmp_path, "--token-file", str(shared), "--allow-readable-token", "--arm", "armlib")
    assert out.returncode == 1 and "Arm_Lib" in out.stdout and "token" not in out.stdout, out.stdout
