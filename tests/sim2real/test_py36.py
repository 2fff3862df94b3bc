"""The Jetson side under Python 3.6 (JetPack 4): imports, the one-file bundle, the server."""

import os
import re
import signal
import subprocess
import time
import zipfile

from sim2real_fuzz import PACKAGE_PARENT as EXT_DIR
from sim2real_fuzz import wait_until
from dofbot_rl.sim2real import protocol as P
import sim2real_fuzz as stress
from dofbot_rl.sim2real import bundle
from dofbot_rl.sim2real.bundle import build_server_zipapp
from dofbot_rl.sim2real.client import Sim2RealClient

SELF_CHECK = r"""
import math, sys
assert sys.version_info[:2] == (3, 6), sys.version
import dofbot_rl.sim2real
from dofbot_rl.sim2real import protocol as P, client, server, arms, safety, policy_mode, tcp_server, cmdline
from dofbot_rl import robot
msgs = [P.Hello(1, 0, "x"), P.Command(5, 30, (0.1,) * 6), P.Heartbeat(9),
        P.Ack(5, 1, 3, (0.0,) * 6, (0.0,) * 6, (float("nan"),) * 6), P.Refused(10, "busy")]
data = b"".join(P.encode(m) for m in msgs)
dec = P.FrameDecoder()
out = []
for i in range(len(data)):
    out.extend(dec.feed(data[i:i + 1]))
assert [type(m) for m in out] == [type(m) for m in msgs]
assert P.verify_mac(b"t", b"n" * 32, 0, P.auth_mac(b"t", b"n" * 32, 0))
q = [0.1, -0.2, 0.3, -0.4, 0.5, 0.05]
assert max(abs(a - b) for a, b in zip(robot.servo_deg_to_sim(robot.sim_to_servo_deg(q)), q)) < 1e-12
assert len(P.encode_legacy([90.0] * 6)) == 24
print("py36-ok")
"""


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(EXT_DIR)
    env.pop("PYTHONHOME", None)
    return env


def test_package_imports_and_works_under_python36(python36):
    out = subprocess.run([python36, "-c", SELF_CHECK], env=_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, universal_newlines=True, timeout=60)
    assert out.returncode == 0 and "py36-ok" in out.stdout, out.stdout


def test_bundle_contents(tmp_path):
    path = build_server_zipapp(str(tmp_path / "dofbot_server.pyz"))
    with zipfile.ZipFile(path) as zf:
        names = {n for n in zf.namelist() if not n.endswith("/")}
        assert zf.read("dofbot_rl/__init__.py") == b""  # import-light: nothing but the package marker
    assert names == {"__main__.py", "dofbot_rl/__init__.py", "dofbot_rl/robot.py", "dofbot_rl/errors.py"} | {
        "dofbot_rl/sim2real/" + n for n in bundle.RUNTIME_FILES}
    here = {n for n in os.listdir(os.path.dirname(P.__file__)) if n.endswith(".py")}
    assert set(bundle.RUNTIME_FILES) == here - set(bundle.SIMULATOR_FILES)  # a new runtime module must be listed
    with open(path, "rb") as fh:
        assert fh.readline() == b"#!/usr/bin/env python3\n"
    assert os.access(path, os.X_OK)


def _wait_for_port(log_path, proc, timeout_s=20.0):
    def port():
        if proc.poll() is not None:
            raise AssertionError("server exited early with %s" % proc.returncode)
        if os.path.exists(log_path):
            with open(log_path) as fh:
                m = re.search(r"serving \w+ on 127\.0\.0\.1:(\d+)", fh.read())
            return int(m.group(1)) if m else None
        return None

    found = wait_until(port, timeout_s, 0.05)
    assert found, "server did not log its address"
    return found


def _stop(proc, sig):
    proc.send_signal(sig)
    try:
        return proc.wait(10.0)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("server did not stop on signal %d" % sig)


def test_zipapp_server_under_python36(python36, tmp_path):
    bundle = build_server_zipapp(str(tmp_path / "dofbot_server.pyz"))
    token = tmp_path / "token"
    token.write_bytes(b"jetson-secret-token\n")
    os.chmod(str(token), 0o600)
    log = str(tmp_path / "server.log")
    proc = subprocess.Popen([python36, bundle, "--arm", "sim", "--host", "127.0.0.1", "--port", "0",
                             "--token-file", str(token), "--log-file", log, "--heartbeat-ms", "200",
                             "--sim-read-latency-ms", "1"],
                            cwd=str(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = None
    try:
        port = _wait_for_port(log, proc)
        client = Sim2RealClient(port=port, token=b"jetson-secret-token", fail_quietly=False).start()
        assert client.wait_for_state("connected", 5.0), client.last_error
        for q in ([0.3, 0.2, -0.2, 0.1, 0.4, 0.0], [-0.5, -0.4, 0.5, -0.3, -0.6, 0.05]):
            client.send_joint_positions(q)

            def close_enough():
                rb = client.readback()
                if rb is None or rb.age_s > 0.3:
                    return False
                good = [abs(a - b) <= 0.03 for a, b in zip(rb.q[:5], q[:5]) if a == a]
                return len(good) >= 4 and all(good)

            assert wait_until(close_enough, 10.0), client.readback()
        assert client.latency_ms is not None
        wrong = Sim2RealClient(port=port, token=b"nope", fail_quietly=False).start()
        assert wait_until(lambda: wrong.last_error is not None, 5.0)
        assert "AUTH" in str(wrong.last_error)
        wrong.stop()
        client.stop()
        # Hostile input against the 3.6 server, then it still serves.
        report = stress.fuzz_server("127.0.0.1", port, num_frames=2000, seed=3, token=b"jetson-secret-token",
                                    time_budget_s=30.0)
        assert report.frames >= 2000 and report.fatal_kept_open == 0 and proc.poll() is None, report
        again = Sim2RealClient(port=port, token=b"jetson-secret-token", fail_quietly=True).start()
        try:
            assert again.wait_for_state("connected", 5.0)
            again.send_joint_positions([0.0] * 6)
            assert wait_until(lambda: again.readback() is not None and not again.readback().flags & P.ACK_HOLDING,
                              5.0)
        finally:
            again.stop()
        assert _stop(proc, signal.SIGTERM) == 0
    finally:
        if client is not None:
            client.stop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with open(log) as fh:
        text = fh.read()
    assert "signal %d: stopping" % signal.SIGTERM in text and text.rstrip().endswith("stopped"), text
    assert "authentication failed" in text and "Traceback" not in text, text


def test_module_server_legacy_under_python36_stops_on_sigint(python36, tmp_path):
    import socket
    import struct

    log = str(tmp_path / "legacy.log")
    proc = subprocess.Popen([python36, "-m", "dofbot_rl.sim2real.server", "--protocol", "legacy",
                             "--host", "127.0.0.1", "--port", "0", "--log-file", log],
                            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port = _wait_for_port(log, proc)
        sock = socket.create_connection(("127.0.0.1", port), timeout=2.0)
        for _ in range(20):
            sock.sendall(struct.pack("<6f", 100.0, 95.0, 85.0, 90.0, 120.0, 90.0))
            time.sleep(0.01)
        sock.sendall(b"\x00" * 7)  # a truncated frame, then the client goes away
        sock.close()
        time.sleep(0.3)
        assert proc.poll() is None
        assert _stop(proc, signal.SIGINT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with open(log) as fh:
        text = fh.read()
    assert "hold" in text and text.rstrip().endswith("stopped") and "Traceback" not in text, text


def test_bad_start_up_exits_nonzero_under_python36(python36, tmp_path):
    env = _env()
    out = subprocess.run([python36, "-m", "dofbot_rl.sim2real.server", "--token-file", str(tmp_path / "missing"),
                          "--port", "0"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         universal_newlines=True, timeout=30)
    assert out.returncode == 1 and "cannot read token file" in out.stdout, out.stdout
    out = subprocess.run([python36, "-m", "dofbot_rl.sim2real.server", "--arm", "armlib", "--port", "0"],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                         timeout=30)
    assert out.returncode == 1 and "Arm_Lib" in out.stdout, out.stdout
    out = subprocess.run([python36, "-m", "dofbot_rl.sim2real.server", "--help"], env=env,
                         stdout=subprocess.PIPE, universal_newlines=True, timeout=30)
    assert out.returncode == 0 and "--on-timeout" in out.stdout
