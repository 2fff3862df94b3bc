"""Policy mode: the server runs an exported npz policy itself; clients send goals (protocol v1.1).

The mechanics (modes, frames, refusals, safety) use an untrained policy; reaching goals
uses the shipped checkpoint exported to npz, under Python 3.11 in-process and under
Python 3.6 (the Jetson's) as the one-file bundle.
"""

import math
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from _py36 import python36_with_numpy
from dofbot_rl import robot
from dofbot_rl.sim2real import client as C
from dofbot_rl.sim2real import protocol as P
import sim2real_fuzz as stress
from dofbot_rl.sim2real.arms import SimulatedArm
from dofbot_rl.sim2real.bundle import build_server_zipapp
from dofbot_rl.sim2real.policy_mode import PolicyRunner
from dofbot_rl.sim2real.safety import LIMITS_LOWER, LIMITS_UPPER
from dofbot_rl.sim2real.server import load_policy
from sim2real_fuzz import PACKAGE_PARENT as EXT_DIR
from sim2real_fuzz import wait_until
from test_link import raw_session, read_one

#: Goals inside the training region (|x|, |y| in 0.15-0.20 m, z in 0.15-0.35 m).
GOALS = [(0.17, 0.15, 0.25), (-0.16, 0.18, 0.20), (0.18, -0.17, 0.30)]
TOLERANCE_M = 0.05


def fingertip_distance(readback, goal):
    """Distance (m) of the fingertip (forward kinematics of a read-back) to ``goal``; inf if a read failed."""
    if readback is None or not all(math.isfinite(v) for v in readback.q[:robot.NUM_ARM_JOINTS]):
        return float("inf")
    return math.sqrt(sum((a - b) ** 2 for a, b in zip(robot.fingertip_position(readback.q), goal)))


def reaches(client, goal, timeout_s):
    """Wait until the client's read-back puts the fingertip within 5 cm of ``goal``; the best distance seen."""
    best = [float("inf")]

    def close():
        rb = client.readback()
        if rb is None or rb.age_s > 0.2:
            return False
        best[0] = min(best[0], fingertip_distance(rb, goal))
        return best[0] <= TOLERANCE_M

    wait_until(close, timeout_s, 0.01)
    return best[0]


@pytest.fixture
def policy_server(start_server, random_policy_npz):
    """``policy_server(**kwargs) -> (server, arm)`` in policy mode with the untrained policy."""

    def _start(npz=random_policy_npz, **kwargs):
        kwargs.setdefault("readback_hz", 30.0)
        return start_server(policy=load_policy(str(npz)), **kwargs)

    return _start


# ----------------------------------------------------------------------------------
# Mechanics (untrained policy)
# ----------------------------------------------------------------------------------
def test_commands_refused_in_policy_mode_until_the_client_takes_over(policy_server, make_client):
    server, arm = policy_server()
    sock, dec, welcome = raw_session(server.address[1])
    assert P.split_version(welcome.version) == (1, 1)
    assert tuple(welcome.upper) == LIMITS_UPPER
    sock.sendall(P.encode(P.Heartbeat(1)))
    ack = read_one(sock, dec)
    assert ack.flags & P.ACK_POLICY and ack.flags & P.ACK_HOLDING  # policy mode, no goal yet: still
    sock.sendall(P.encode(P.Command(2, 20, (0.1,) * 6)))
    err = read_one(sock, dec)
    assert isinstance(err, P.Error) and err.code == P.ErrorCode.POLICY_MODE and "MODE direct" in err.reason
    assert read_one(sock, dec) is None  # then closed
    sock.close()
    assert arm.num_writes == 0 and server.stats["commands"] == 0

    refused = make_client(server.address[1], fail_quietly=False)
    refused.send_joint_positions([0.1] * 6)
    assert wait_until(lambda: refused.last_error is not None, 3.0)
    assert isinstance(refused.last_error, C.ServerError) and refused.last_error.code == P.ErrorCode.POLICY_MODE
    assert "takeover=True" in str(refused.last_error)
    assert wait_until(lambda: not server.has_controller, 2.0)

    # Taking over explicitly: MODE direct, then joint targets drive the arm (gripper too).
    q = [0.2, 0.1, -0.1, 0.0, 0.3, 0.9]
    driver = make_client(server.address[1], fail_quietly=False, takeover=True)
    driver.send_joint_positions(q)
    want = robot.sim_to_servo_deg(q)
    assert wait_until(lambda: all(abs(a - b) < 0.5 for a, b in zip(arm.position_deg(), want)), 5.0), driver.last_error
    assert driver.server_mode == "direct" and server.policy.mode == P.ServerMode.DIRECT
    assert server.stats["mode_changes"] == 1
    # A goal from the client that took over is kept for later; the arm still follows its targets.
    driver.send_goal(GOALS[0])
    assert wait_until(lambda: server.policy.goal is not None, 2.0)
    assert [e[1:] for e in server.controller.events] == [("hold", "direct mode: the controlling client took over")]
    n = arm.num_writes
    driver.stop()
    # It left: hold, back to policy mode, goal forgotten; nothing moves until the next GOAL.
    # The slot is freed last (after the hold and the return to policy mode): wait for that, not
    # for the hold event, which comes before the mode changes back.
    assert wait_until(lambda: not server.has_controller, 2.0)
    assert len(server.controller.events) == 2
    assert server.controller.events[-1][1] == "hold" and "controlling client" in server.controller.events[-1][2]
    assert server.policy.mode == P.ServerMode.POLICY and server.policy.goal is None
    time.sleep(0.3)
    assert arm.num_writes <= n + 1 and server.controller.status().holding
    assert server.policy.num_errors == 0


def test_goals_drive_the_policy_and_survive_the_client(policy_server, make_client):
    server, arm = policy_server()
    client = make_client(server.address[1], mode="goal", fail_quietly=False)
    assert client.wait_for_state("connected", 3.0)
    with pytest.raises(RuntimeError, match="send_goal"):
        client.send_joint_positions([0.0] * 6)
    client.send_goal(GOALS[0], (0.0, 0.0, 0.0, 2.0))
    assert wait_until(lambda: server.policy.num_ticks > 30, 3.0)
    assert server.policy.goal == (GOALS[0], (0.0, 0.0, 0.0, 1.0))
    assert client.server_mode == "policy" and client.readback().flags & P.ACK_POLICY
    assert client.stats()["goals_sent"] == 1
    client.send_goal(GOALS[0], (0.0, 0.0, 0.0, 2.0))  # the same goal again: not re-sent
    time.sleep(0.1)
    assert client.stats()["goals_sent"] == 1
    # The policy ticks at the control rate; its targets go through the limits.
    ticks, t0 = server.policy.num_ticks, time.monotonic()
    time.sleep(0.5)
    rate = (server.policy.num_ticks - ticks) / (time.monotonic() - t0)
    assert 35 <= rate <= 66, rate
    lowest, highest = stress.commanded_extremes_rad(arm)
    assert all(lo - 1e-9 <= mn and mx <= hi + 1e-9 for lo, hi, mn, mx in zip(LIMITS_LOWER, LIMITS_UPPER, lowest,
                                                                              highest))
    # The client leaves: the policy, not the client, drives the arm, so it keeps going.
    client.stop()
    assert wait_until(lambda: not server.has_controller, 2.0)
    ticks = server.policy.num_ticks
    time.sleep(0.2)
    assert server.policy.num_ticks > ticks and not server.controller.events


def test_goal_and_mode_frames_checked(policy_server, start_server):
    server, arm = policy_server()
    sock, dec, _ = raw_session(server.address[1])
    sock.sendall(P.encode(P.Goal(1, (float("nan"), 0.1, 0.2))))
    ack = read_one(sock, dec)
    assert isinstance(ack, P.Ack) and ack.seq == 1 and ack.flags & P.ACK_REJECTED and server.policy.goal is None
    sock.sendall(P.encode(P.Goal(2, (0.17, 0.15, 0.25), (0.0, 0.0, 0.0, 0.0))))
    assert read_one(sock, dec).flags & P.ACK_REJECTED
    sock.sendall(P.encode(P.Goal(3, (0.17, 0.15, 0.25))))
    ack = read_one(sock, dec)
    assert not ack.flags & P.ACK_REJECTED and server.policy.goal == ((0.17, 0.15, 0.25), None)
    sock.sendall(P.encode(P.Mode(4, P.ServerMode.DIRECT)))
    assert not read_one(sock, dec).flags & P.ACK_POLICY
    sock.sendall(P.encode(P.Mode(5, P.ServerMode.POLICY)))
    assert read_one(sock, dec).flags & P.ACK_POLICY
    sock.close()
    # Observers watch but may not send goals.
    sock, dec, _ = raw_session(server.address[1], role=P.Role.OBSERVE)
    sock.sendall(P.encode(P.Goal(1, (0.17, 0.15, 0.25))))
    err = read_one(sock, dec)
    assert isinstance(err, P.Error) and err.code == P.ErrorCode.UNEXPECTED and "GOAL" in err.reason
    sock.close()
    # A server without a policy: MODE direct is a no-op, a GOAL is refused clearly.
    plain, _ = start_server()
    sock, dec, welcome = raw_session(plain.address[1])
    assert P.split_version(welcome.version) == (1, 1)
    sock.sendall(P.encode(P.Mode(1, P.ServerMode.DIRECT)))
    ack = read_one(sock, dec)
    assert isinstance(ack, P.Ack) and not ack.flags & P.ACK_POLICY
    sock.sendall(P.encode(P.Goal(2, (0.17, 0.15, 0.25))))
    err = read_one(sock, dec)
    assert isinstance(err, P.Error) and err.code == P.ErrorCode.NO_POLICY and "--policy" in err.reason
    sock.close()


def test_client_against_a_v1_0_server(start_server, make_client):
    server, arm = start_server()
    server._welcome = server._welcome._replace(version=1)  # what a v1.0 server announces
    # Taking over is a no-op there (no policy to take the arm from); targets flow.
    driver = make_client(server.address[1], takeover=True, fail_quietly=False)
    driver.send_joint_positions([0.2, 0, 0, 0, 0, 0])
    want = robot.sim_to_servo_deg([0.2, 0, 0, 0, 0, 0])
    assert wait_until(lambda: all(abs(a - b) < 0.5 for a, b in zip(arm.position_deg(), want)), 5.0), driver.last_error
    assert wait_until(lambda: driver.server_minor == 0 and driver.server_mode == "direct", 2.0), driver.last_error
    driver.stop()
    # A goal cannot be sent: a clear error, no frame a v1.0 server would choke on.
    goals = make_client(server.address[1], mode="goal", fail_quietly=False)
    goals.send_goal(GOALS[0])
    assert wait_until(lambda: goals.last_error is not None, 3.0)
    assert "v1.0" in str(goals.last_error) and server.stats["protocol_errors"] == 0


def test_client_goal_api_and_config_checked():
    from dofbot_rl.config import ConfigError, load_config

    cfg = load_config(["sim2real.mode=goal", "sim2real.host=10.0.0.5"]).sim2real
    assert cfg.mode == "goal" and cfg.takeover is False
    client = C.Sim2RealClient.from_config(load_config(["sim2real.takeover=true"]).sim2real)
    assert client.takeover and client.mode == "sim2real"
    for bad, match in ((["sim2real.mode=goal", "sim2real.takeover=True"], "takeover needs mode sim2real"),
                       (["sim2real.protocol=legacy", "sim2real.mode=goal"], "goal needs protocol v1"),
                       (["sim2real.protocol=legacy", "sim2real.takeover=True"], "takeover needs protocol v1"),
                       (["sim2real.mode=goals"], "'goal'")):
        with pytest.raises(ConfigError, match=match):
            load_config(bad)
    goals = C.Sim2RealClient(port=9, mode="goal")
    with pytest.raises(ValueError, match="3 finite"):
        goals.send_goal((0.1, float("nan"), 0.2))
    with pytest.raises(ValueError, match="quaternion"):
        goals.send_goal((0.1, 0.1, 0.2), (0, 0, 0, 0))
    goals.send_goal((0.1, 0.1, 0.2))  # stored; sent once connected
    with pytest.raises(ValueError, match="'direct' or 'policy'"):
        goals.request_mode("manual")
    with pytest.raises(RuntimeError, match="real2sim"):
        C.Sim2RealClient(port=9, mode="real2sim").send_goal((0.1, 0.1, 0.2))
    with pytest.raises(RuntimeError, match="protocol v1"):
        C.Sim2RealClient(port=9, protocol="legacy").send_goal((0.1, 0.1, 0.2))
    assert goals.server_mode is None and goals.server_minor is None


def test_a_failing_policy_step_holds_the_arm(start_server):
    class Broken(object):
        control_rate_hz = 60.0

        def reset(self):
            pass

        def set_goal(self, pos, quat=None):
            pass

        def step(self, readback_rad, now_s):
            raise ValueError("boom")

    server, arm = start_server(policy=Broken(), goal=GOALS[0])
    assert wait_until(lambda: server.policy.num_errors == 1 and server.controller.events, 2.0)
    assert server.policy.goal is None and server.controller.events[-1][1] == "hold"
    time.sleep(0.1)
    assert server.policy.num_errors == 1 and server.thread.is_alive()


def test_policy_runner_arguments(random_policy_npz):
    from dofbot_rl.sim2real.safety import ArmController
    from dofbot_rl.sim2real.tcp_server import Sim2RealServer

    onboard = load_policy(str(random_policy_npz))
    ctl = ArmController(SimulatedArm(read_latency_ms=0.0))
    with pytest.raises(ValueError, match="move time"):
        PolicyRunner(onboard, ctl, move_ms=5000)
    with pytest.raises(ValueError, match="goal"):
        PolicyRunner(onboard, ctl, goal=(0.1, 0.2))
    with pytest.raises(ValueError, match="legacy"):
        Sim2RealServer(SimulatedArm(), host="127.0.0.1", port=0, protocol="legacy", policy=onboard)
    with pytest.raises(ValueError, match="needs a policy"):
        Sim2RealServer(SimulatedArm(), host="127.0.0.1", port=0, goal=GOALS[0])
    with pytest.raises(ValueError, match="read-back"):
        Sim2RealServer(SimulatedArm(), host="127.0.0.1", port=0, policy=onboard, readback_hz=0)


def test_fuzzed_goals_keep_the_arm_inside_its_limits(policy_server):
    arm = SimulatedArm(read_latency_ms=0.5, read_failure_prob=0.02, seed=4)
    server, _ = policy_server(arm=arm, max_step_deg=90.0, max_rate_hz=500.0)
    report = stress.fuzz_server(*server.address, num_frames=3000, seed=5, time_budget_s=20.0, policy=True)
    msg = "%s; ticks %d, errors %d" % (report, server.policy.num_ticks, server.policy.num_errors)
    assert report.frames >= 3000 and report.fatal_kept_open == 0 and report.acks > 1000, msg
    assert server.thread.is_alive() and server.policy.num_ticks > 0 and server.policy.num_errors == 0, msg
    assert server.stats["commands"] == 0, msg  # every COMMAND was refused
    lowest, highest = stress.commanded_extremes_rad(arm)
    for lo, hi, mn, mx in zip(LIMITS_LOWER, LIMITS_UPPER, lowest, highest):
        assert lo - 1e-9 <= mn and mx <= hi + 1e-9, msg
    assert arm.num_rejected == 0, msg


def test_gripper_follows_its_full_range(start_server, make_client):
    server, arm = start_server(max_step_deg=20.0)
    client = make_client(server.address[1])
    for gripper, want in ((1.0, 1.0), (-0.45, -0.45), (5.0, robot.TELEOP_LIMITS_UPPER[5]),
                          (-5.0, robot.TELEOP_LIMITS_LOWER[5])):
        client.send_joint_positions([0.0, 0.0, 0.0, 0.0, 0.0, gripper])
        servo = robot.sim_to_servo_deg([0.0] * 5 + [want])[5]
        assert wait_until(lambda: abs(arm.position_deg()[5] - servo) < 0.5, 5.0), (gripper, arm.position_deg())
    # The arm joints keep the safe limits.
    client.send_joint_positions([0.0, 3.0, 0.0, 0.0, 0.0, 0.0])
    assert wait_until(lambda: client.readback() and client.readback().target[1] == robot.SAFE_LIMITS_UPPER[1], 3.0)


# ----------------------------------------------------------------------------------
# Start-up
# ----------------------------------------------------------------------------------
def _env(extra=""):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(EXT_DIR), extra) if p)
    env.pop("PYTHONHOME", None)
    return env


def _bad_policy_files(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04 not really a zip file")
    not_policy = tmp_path / "weights.npz"
    import numpy as np

    np.savez(str(not_policy), w=np.zeros(3))
    return {str(tmp_path / "missing.npz"): "cannot read policy file", str(garbage): "policy",
            str(not_policy): "not a dofbot-rl policy"}


def _assert_one_error_line(out, want):
    lines = [ln for ln in out.stdout.splitlines() if ln.strip()]
    assert out.returncode == 1 and len(lines) == 1, out.stdout
    assert "ERROR" in lines[0] and "cannot start" in lines[0] and want in lines[0], out.stdout


def test_bad_policy_file_stops_start_up(tmp_path):
    for path, want in _bad_policy_files(tmp_path).items():
        out = subprocess.run([sys.executable, "-m", "dofbot_rl.sim2real.server", "--policy", path, "--port", "0",
                              "--host", "127.0.0.1"], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             universal_newlines=True, timeout=60)
        _assert_one_error_line(out, want)
    out = subprocess.run([sys.executable, "-m", "dofbot_rl.sim2real.server", "--goal", "0.1,0.1,0.2"], env=_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=60)
    assert out.returncode == 2 and "--goal and --goal-quat need --policy" in out.stdout


# ----------------------------------------------------------------------------------
# Reaching goals with the shipped policy
# ----------------------------------------------------------------------------------
def test_shipped_policy_reaches_goals_sent_by_a_client(start_server, make_client, shipped_policy_npz):
    arm = SimulatedArm(read_latency_ms=3.0, read_failure_prob=0.02, seed=0)  # the real bus's timing
    server, _ = start_server(arm=arm, policy=load_policy(str(shipped_policy_npz)), readback_hz=30.0)
    client = make_client(server.address[1], mode="goal", fail_quietly=False)
    for goal in GOALS:
        client.send_goal(goal)
        best = reaches(client, goal, 6.0)
        assert best <= TOLERANCE_M, "goal %s: closest %.3f m (%s)" % (goal, best, client.last_error)
    assert server.policy.num_errors == 0 and arm.num_rejected == 0


def test_shipped_policy_under_python36_bundle(shipped_policy_npz, tmp_path):
    python, numpy_path, reason = python36_with_numpy()
    if python is None:
        pytest.skip(reason)
    bundle = build_server_zipapp(str(tmp_path / "dofbot_server.pyz"))
    for path, want in list(_bad_policy_files(tmp_path).items())[:2]:
        out = subprocess.run([python, bundle, "--policy", path, "--port", "0", "--host", "127.0.0.1"],
                             env=_env(numpy_path),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=60)
        _assert_one_error_line(out, want)
    log = str(tmp_path / "server.log")
    env = dict(os.environ, PYTHONPATH=numpy_path)  # the bundle brings dofbot_rl; numpy as on the Jetson
    env.pop("PYTHONHOME", None)
    proc = subprocess.Popen([python, bundle, "--arm", "sim", "--host", "127.0.0.1", "--port", "0",
                             "--policy", str(shipped_policy_npz), "--goal", ",".join(map(str, GOALS[0])),
                             "--log-file", log], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    watcher = goals = refused = None
    try:
        def port():
            assert proc.poll() is None, "server exited early with %s" % proc.returncode
            text = open(log).read() if os.path.exists(log) else ""
            m = re.search(r"serving v1 on 127\.0\.0\.1:(\d+) .*policy mode at 60 Hz", text)
            return int(m.group(1)) if m else None

        port = wait_until(port, 20.0, 0.05)
        assert port, open(log).read()
        # The command-line goal: the arm moves with no client; an observer watches the read-back.
        watcher = C.Sim2RealClient(port=port, mode="real2sim", rate_hz=30.0, fail_quietly=True).start()
        best = reaches(watcher, GOALS[0], 8.0)
        assert best <= TOLERANCE_M, "command-line goal: closest %.3f m" % best
        assert watcher.server_mode == "policy"
        # A client's goal.
        goals = C.Sim2RealClient(port=port, mode="goal", fail_quietly=False).start()
        goals.send_goal(GOALS[1])
        best = reaches(goals, GOALS[1], 8.0)
        assert best <= TOLERANCE_M, "client goal: closest %.3f m (%s)" % (best, goals.last_error)
        goals.stop()
        # Joint targets are refused in policy mode.
        refused = C.Sim2RealClient(port=port, fail_quietly=False).start()
        refused.send_joint_positions([0.0] * 6)
        assert wait_until(lambda: refused.last_error is not None, 3.0)
        assert refused.last_error.code == P.ErrorCode.POLICY_MODE
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10.0) == 0
    finally:
        for c in (watcher, goals, refused):
            if c is not None:
                c.stop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = open(log).read()
    assert "goal -0.160,0.180,0.200" in text, text
    assert "COMMAND refused in policy mode" in text and "Traceback" not in text, text
    assert text.rstrip().endswith("stopped"), text
