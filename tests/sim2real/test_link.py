"""Client and server together on 127.0.0.1 with the simulated arm."""

import math
import socket
import time

import pytest

from sim2real_fuzz import wait_until
from dofbot_rl import robot
from dofbot_rl.sim2real import client as C
from dofbot_rl.sim2real import protocol as P
from dofbot_rl.sim2real.arms import SimulatedArm
from dofbot_rl.sim2real.safety import LIMITS_LOWER, LIMITS_UPPER, ArmController
from dofbot_rl.sim2real.tcp_server import Sim2RealServer

NAN = float("nan")
SCRIPT = [
    (0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    (0.5, 0.3, -0.3, 0.2, 1.0, 0.05),
    (-0.8, -0.5, 0.6, -0.6, -1.2, -0.08),
    (1.2, 0.7, 0.1, 0.7, 0.4, 0.0),
]


def reached(arm, q, tol_deg=0.5):
    return all(abs(a - b) <= tol_deg for a, b in zip(arm.position_deg(), robot.sim_to_servo_deg(q)))


def raw_session(port, role=P.Role.CONTROL, token=None):
    """Open a v1 session by hand; returns (socket, decoder, first reply)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=2.0)
    dec = P.FrameDecoder()
    sock.sendall(P.encode(P.Hello(1, role, "raw")))
    reply = read_one(sock, dec)
    if isinstance(reply, P.Challenge) and token is not None:
        sock.sendall(P.encode(P.Auth(P.auth_mac(token, reply.nonce, role))))
        reply = read_one(sock, dec)
    return sock, dec, reply


def read_one(sock, dec, timeout_s=2.0):
    sock.settimeout(timeout_s)
    while True:
        data = sock.recv(4096)
        if not data:
            return None
        msgs = dec.feed(data)
        if msgs:
            return msgs[0]


def test_scripted_targets_drive_the_arm_and_read_back_returns(start_server, make_client):
    server, arm = start_server(max_step_deg=10.0, max_rate_hz=100.0, readback_hz=50.0)
    client = make_client(server.address[1], rate_hz=60.0)
    assert client.wait_for_state("connected", 3.0)
    for q in SCRIPT:
        client.send_joint_positions(q)
        assert wait_until(lambda: reached(arm, q), 5.0), (q, arm.position_deg())
        time.sleep(0.25)  # let a full read-back sweep happen at the new pose
        # The sim loop keeps calling every step; the worker sends only what changed.
        client.send_joint_positions(q)
        rb = wait_until(lambda: client.readback() if client.readback() and client.readback().age_s < 0.2
                        else None, 2.0)
        assert rb is not None
        for got, want in zip(rb.q, q):
            if not math.isnan(got):  # a failed read is NaN; integer read-back: within 1.5 deg
                assert abs(got - want) <= math.radians(1.5), (rb.q, q)
        assert rb.target == pytest.approx(q)
        assert not rb.flags & P.ACK_CLAMPED
    stats = client.stats()
    assert stats["acks"] > 0 and client.latency_ms is not None and client.latency_ms < 100
    assert stats["latency_ms_mean"] is not None
    assert client.state == "connected"


def test_client_rate_limit_and_server_write_rate(start_server, make_client):
    server, arm = start_server(max_step_deg=0.5, max_rate_hz=40.0)
    client = make_client(server.address[1], rate_hz=30.0)
    assert client.wait_for_state("connected", 3.0)
    t0 = time.monotonic()
    n = 0
    while time.monotonic() - t0 < 1.0:  # the sim calls far faster than the link rate
        client.send_joint_positions([0.5 * math.sin(n / 50.0), 0.3, 0, 0, 0, 0])
        n += 1
        time.sleep(0.0005)
    elapsed = time.monotonic() - t0
    assert n > 500
    assert client.stats()["commands_sent"] <= 30.0 * elapsed + 3
    writes = [w.time_s for w in arm.writes]
    gaps = [b - a for a, b in zip(writes, writes[1:])]
    assert len(writes) > 10 and min(gaps) >= 1.0 / 40.0 - 0.002, min(gaps)


def test_server_clamps_and_limits_steps(start_server, make_client):
    server, arm = start_server(max_step_deg=2.0, max_rate_hz=100.0)
    client = make_client(server.address[1])
    assert client.wait_for_state("connected", 3.0)
    client.send_joint_positions([10.0, -10.0, 3.0, -3.0, 100.0, 5.0])  # far outside the limits
    assert wait_until(lambda: reached(arm, LIMITS_UPPER[:1] + LIMITS_LOWER[1:2]
                                      + (LIMITS_UPPER[2], LIMITS_LOWER[3]) + LIMITS_UPPER[4:]), 8.0)
    assert client.stats()["clamped_acks"] >= 1  # the command's ACK said so
    assert client.readback().target[0] == pytest.approx(robot.SAFE_LIMITS_UPPER[0])
    assert client.readback().target[5] == pytest.approx(robot.TELEOP_LIMITS_UPPER[5])  # gripper: fully closed
    sent = [robot.servo_deg_to_sim(w.servo_deg) for w in arm.writes]
    for q in sent:
        for v, lo, hi in zip(q, LIMITS_LOWER, LIMITS_UPPER):
            assert lo - 1e-9 <= v <= hi + 1e-9
    steps = [max(abs(a - b) for a, b in zip(p, q)) for p, q in zip(sent, sent[1:])]
    assert max(steps) <= math.radians(2.0) + 1e-9
    assert len(sent) > 40  # a ramp, not a jump


def test_second_client_is_refused(start_server, make_client):
    server, arm = start_server()
    first = make_client(server.address[1])
    assert first.wait_for_state("connected", 3.0)
    second = make_client(server.address[1], fail_quietly=False)
    assert wait_until(lambda: second.last_error is not None, 3.0)
    assert isinstance(second.last_error, C.LinkRefused) and second.last_error.code == P.ErrorCode.BUSY
    with pytest.raises(C.Sim2RealError, match="BUSY"):
        second.send_joint_positions([0.0] * 6)
    assert second.state == "disconnected"
    sock, _, reply = raw_session(server.address[1])
    assert isinstance(reply, P.Refused) and reply.code == P.ErrorCode.BUSY and "controls" in reply.reason
    sock.close()
    assert first.state == "connected"


def test_token_required_and_checked(start_server, make_client):
    server, arm = start_server(token=b"correct horse battery staple")
    wrong = make_client(server.address[1], token=b"wrong", fail_quietly=False)
    none = make_client(server.address[1], fail_quietly=False)
    assert wait_until(lambda: wrong.last_error and none.last_error, 3.0)
    assert isinstance(wrong.last_error, C.LinkRefused) and wrong.last_error.code == P.ErrorCode.AUTH
    assert "requires a token" in str(none.last_error)
    sock, _, reply = raw_session(server.address[1], token=b"also wrong")
    assert isinstance(reply, P.Refused) and reply.code == P.ErrorCode.AUTH
    sock.close()
    assert arm.num_writes == 0 and server.stats["commands"] == 0
    good = make_client(server.address[1], token=b"correct horse battery staple")
    assert good.wait_for_state("connected", 3.0)
    good.send_joint_positions([0.2, 0, 0, 0, 0, 0])
    assert wait_until(lambda: reached(arm, [0.2, 0, 0, 0, 0, 0]), 5.0)


def test_reconnects_with_backoff(start_server, make_client):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    client = make_client(port, backoff_initial_s=0.05, backoff_max_s=0.2)
    time.sleep(0.4)
    assert client.state in ("connecting", "disconnected") and client.last_error is not None
    server, arm = start_server(port=port)
    assert client.wait_for_state("connected", 3.0)
    server.stop_event.set()
    server.thread.join(5.0)
    assert client.wait_for_state(("disconnected", "connecting"), 3.0)
    server2, arm2 = start_server(port=port)
    assert client.wait_for_state("connected", 3.0)
    client.send_joint_positions([-0.3, 0, 0, 0, 0, 0])
    assert wait_until(lambda: reached(arm2, [-0.3, 0, 0, 0, 0, 0]), 5.0)
    assert client.stats()["connects"] == 2


def test_fail_loudly_when_asked(make_client):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    loud = make_client(port, fail_quietly=False)
    quiet = make_client(port, fail_quietly=True, backoff_initial_s=0.05)
    assert wait_until(lambda: loud.last_error is not None and quiet.last_error is not None, 3.0)
    with pytest.raises(C.Sim2RealError):
        loud.send_joint_positions([0.0] * 6)
    quiet.send_joint_positions([0.0] * 6)  # stored, no exception
    assert loud.state == "disconnected"


def test_stopping_the_client_makes_the_server_hold(start_server, make_client):
    server, arm = start_server()
    client = make_client(server.address[1])
    assert client.wait_for_state("connected", 3.0)
    client.send_joint_positions([0.3, 0.1, 0, 0, 0, 0])
    assert wait_until(lambda: reached(arm, [0.3, 0.1, 0, 0, 0, 0]), 5.0)
    t0 = time.monotonic()
    client.stop()
    assert wait_until(lambda: server.controller.events, 2.0)
    t_hold, kind, _ = server.controller.events[0]
    assert kind == "hold" and t_hold - t0 < 0.2
    assert server.controller.status().holding
    n = arm.num_writes
    time.sleep(0.2)
    assert arm.num_writes == n and reached(arm, [0.3, 0.1, 0, 0, 0, 0])


def test_release_mode_drops_torque_and_recovers(start_server, make_client):
    server, arm = start_server(on_timeout="release")
    client = make_client(server.address[1])
    assert client.wait_for_state("connected", 3.0)
    client.send_joint_positions([0.2, 0, 0, 0, 0, 0])
    assert wait_until(lambda: reached(arm, [0.2, 0, 0, 0, 0, 0]), 5.0)
    client.stop()
    assert wait_until(lambda: not arm.torque_on, 2.0)
    arm.move_by_hand(robot.sim_to_servo_deg([-0.4, 0.2, 0, 0, 0, 0]))
    again = client.__class__(port=server.address[1], fail_quietly=True).start()
    try:
        assert again.wait_for_state("connected", 3.0)
        rb = wait_until(lambda: again.readback(), 2.0)
        assert rb.flags & P.ACK_TORQUE_OFF
        again.send_joint_positions([0.0] * 6)
        assert wait_until(lambda: arm.torque_on and reached(arm, [0.0] * 6), 5.0)
    finally:
        again.stop()


def test_heartbeat_timeout_closes_silent_sessions(start_server):
    server, arm = start_server(heartbeat_ms=100)
    sock, dec, welcome = raw_session(server.address[1])
    assert isinstance(welcome, P.Welcome) and welcome.heartbeat_ms == 100
    sock.sendall(P.encode(P.Command(1, 20, (0.1, 0, 0, 0, 0, 0))))
    assert isinstance(read_one(sock, dec), P.Ack)
    t0 = time.monotonic()
    err = read_one(sock, dec)
    waited = time.monotonic() - t0
    assert isinstance(err, P.Error) and err.code == P.ErrorCode.TIMEOUT
    assert 0.06 <= waited <= 0.4, waited
    assert read_one(sock, dec) is None  # then closed
    sock.close()
    assert wait_until(lambda: server.controller.events, 1.0)
    assert server.controller.events[-1][1] == "hold"


def test_observer_reads_back_while_a_controller_drives(start_server, make_client):
    server, arm = start_server(readback_hz=50.0)
    arm.set_torque(False)
    pose = [0.3, -0.2, 0.4, 0.1, -0.5, 0.0]
    arm.move_by_hand(robot.sim_to_servo_deg(pose))
    watcher = make_client(server.address[1], mode="real2sim", rate_hz=30.0)
    assert watcher.wait_for_state("connected", 3.0)
    rb = wait_until(lambda: watcher.readback() if watcher.readback() and watcher.readback().age_s < 0.15
                    else None, 3.0)
    for got, want in zip(rb.q[:5], pose[:5]):
        if not math.isnan(got):
            assert abs(got - want) <= math.radians(1.5)
    with pytest.raises(RuntimeError, match="real2sim"):
        watcher.send_joint_positions(pose)
    driver = make_client(server.address[1])
    assert driver.wait_for_state("connected", 3.0)  # observers do not take the control slot
    driver.send_joint_positions([0.0] * 6)
    assert wait_until(lambda: reached(arm, [0.0] * 6), 5.0)
    assert watcher.state in ("connected", "degraded")


def test_observer_may_not_command(start_server):
    server, arm = start_server()
    sock, dec, welcome = raw_session(server.address[1], role=P.Role.OBSERVE)
    assert isinstance(welcome, P.Welcome)
    sock.sendall(P.encode(P.Command(1, 20, (0.1, 0, 0, 0, 0, 0))))
    err = read_one(sock, dec)
    sock.close()
    assert isinstance(err, P.Error) and err.code == P.ErrorCode.UNEXPECTED
    assert arm.num_writes == 0


def test_connection_limit_counts_sessions_and_handshake_timeout(start_server):
    server, arm = start_server(max_connections=2, max_observers=3, handshake_timeout_s=0.3)
    idle = [socket.create_connection(server.address, timeout=2.0) for _ in range(3)]  # never say HELLO
    assert wait_until(lambda: server.stats["connections"] == 3, 2.0)
    sessions = [raw_session(server.address[1], role=P.Role.OBSERVE) for _ in range(2)]
    assert all(isinstance(w, P.Welcome) for _, _, w in sessions)  # idle sockets do not count
    sock, _, reply = raw_session(server.address[1], role=P.Role.OBSERVE)
    assert isinstance(reply, P.Refused) and reply.code == P.ErrorCode.TOO_MANY_CONNECTIONS
    err = read_one(idle[0], P.FrameDecoder())  # said nothing: dropped after the handshake timeout
    assert isinstance(err, P.Error) and err.code == P.ErrorCode.TIMEOUT
    for s in idle + [sock] + [x[0] for x in sessions]:
        s.close()


def _open_with_token(port, token):
    """One full v1 handshake with the token; returns the reply to AUTH (WELCOME when let in)."""
    sock, _, reply = raw_session(port, role=P.Role.OBSERVE, token=token)
    sock.close()
    return reply


def test_idle_sockets_do_not_lock_out_a_client_with_the_token(start_server):
    """Issue 18.9: idle unauthenticated sockets, re-opened in a loop, never keep the operator out."""
    token = b"operator-token"
    server, _ = start_server(token=token, max_connections=8)
    port = server.address[1]
    attackers, let_in = [], 0
    try:
        for _ in range(20):  # bounded: 20 rounds of 16 fresh idle sockets, then the operator connects
            for s in attackers:
                s.close()
            attackers = [socket.create_connection(("127.0.0.1", port), timeout=2.0) for _ in range(16)]
            let_in += isinstance(_open_with_token(port, token), P.Welcome)
        assert let_in == 20
        # Handshakes per source are bounded: the oldest idle sockets were evicted.
        assert wait_until(lambda: server.num_handshakes <= server.max_handshakes_per_source, 3.0)
        assert server.stats["evicted"] >= 20 * (16 - server.max_handshakes_per_source) - 16
    finally:
        for s in attackers:
            s.close()


def test_listen_backlog_is_raised(start_server):
    """Issue 18.9: a burst of connections queues in the kernel instead of being dropped (the backlog was 16)."""
    import shutil
    import subprocess

    if shutil.which("ss") is None:
        pytest.skip("needs ss (Debian: iproute2) to read a listening socket's backlog")
    server, _ = start_server()
    port = server.address[1]
    out = subprocess.run(["ss", "-ltnH", "sport = :%d" % port], capture_output=True, text=True, timeout=10).stdout
    backlogs = [int(line.split()[2]) for line in out.splitlines() if line.startswith("LISTEN")]
    assert backlogs and min(backlogs) >= 128, out


def test_handshakes_from_many_sources_are_bounded(start_server):
    server, _ = start_server(max_handshakes=5, max_handshakes_per_source=100)
    socks = [socket.create_connection(server.address, timeout=2.0) for _ in range(12)]
    assert wait_until(lambda: server.stats["connections"] == 12, 3.0)
    assert wait_until(lambda: server.num_handshakes <= 5, 3.0)
    sock, _, reply = raw_session(server.address[1])
    assert isinstance(reply, P.Welcome)
    for s in socks + [sock]:
        s.close()


class _SlowBus(SimulatedArm):
    """A servo bus whose writes take 30 ms (a busy I2C bus): the hold takes that long too."""

    def write_servos_deg(self, servo_deg, time_ms):
        time.sleep(0.03)
        SimulatedArm.write_servos_deg(self, servo_deg, time_ms)


def test_old_controller_is_held_before_the_new_one_is_welcomed(start_server):
    """Issue 18.19: the hold of the controller that left comes before the next client's WELCOME."""
    server, arm = start_server(arm=_SlowBus(read_latency_ms=0.5, read_failure_prob=0.0), heartbeat_ms=200)
    port = server.address[1]
    for trial in range(20):
        old, dec, welcome = raw_session(port)
        assert isinstance(welcome, P.Welcome), welcome
        q = (0.1 * (trial % 5), 0.1, -0.1, 0.0, 0.2, 0.0)
        old.sendall(P.encode(P.Command(trial, 20, q)))
        assert isinstance(read_one(old, dec), P.Ack)
        seen = server.controller.num_events
        old.close()  # the controller leaves; a new one connects at once
        new, _, welcome = None, None, None
        for _ in range(50):  # bounded: BUSY only while the old session is still being closed
            new, _, welcome = raw_session(port)
            if isinstance(welcome, P.Welcome):
                break
            new.close()
        t_welcome = time.monotonic()
        assert isinstance(welcome, P.Welcome), welcome
        assert server.controller.num_events > seen, "no hold before WELCOME (trial %d)" % trial
        t_hold = server.controller.events[seen - server.controller.num_events][0]
        assert t_hold <= t_welcome
        new.close()
        assert wait_until(lambda: not server.has_controller, 3.0)


def test_degraded_then_reconnect_when_replies_stop():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    client = C.Sim2RealClient(port=listener.getsockname()[1], heartbeat_ms=100, fail_quietly=True,
                              backoff_initial_s=0.05).start()
    try:
        conn, _ = listener.accept()
        conn.settimeout(2.0)
        P.FrameDecoder().feed(conn.recv(4096))  # HELLO
        conn.sendall(P.encode(P.Welcome(1, 100, 60, robot.SAFE_LIMITS_LOWER, robot.SAFE_LIMITS_UPPER)))
        assert client.wait_for_state("connected", 2.0)
        client.send_joint_positions([0.0] * 6)  # never acknowledged
        assert client.wait_for_state("degraded", 2.0)
        assert client.wait_for_state(("disconnected", "connecting"), 2.0)
        assert "no reply" in str(client.last_error)
        conn2, _ = listener.accept()  # it reconnects
        conn2.close()
        conn.close()
    finally:
        client.stop()
        listener.close()


def test_server_stop_tells_clients(start_server):
    server, arm = start_server()
    sock, dec, welcome = raw_session(server.address[1])
    assert isinstance(welcome, P.Welcome)
    server.stop_event.set()
    err = read_one(sock, dec)
    sock.close()
    assert isinstance(err, P.Error) and err.code == P.ErrorCode.SHUTDOWN
    server.thread.join(3.0)
    assert not server.thread.is_alive()


def test_from_config(tmp_path):
    token = tmp_path / "tok"
    token.write_text("abc\n")
    cfg = {"enabled": True, "host": "10.0.0.5", "port": 5000, "protocol": "v1", "token_file": str(token),
           "fail_quietly": True, "rate_hz": 30, "mode": "real2sim", "heartbeat_ms": 250}
    client = C.Sim2RealClient.from_config(cfg)
    assert (client.host, client.port, client.fail_quietly, client.rate_hz, client.mode, client.heartbeat_ms) == (
        "10.0.0.5", 5000, True, 30.0, "real2sim", 250)
    assert client._token == b"abc"
    # The typed `sim2real` config section (dofbot_rl.config) converts and checks the values at load.
    from dofbot_rl.config import ConfigError, load_config

    parsed = load_config(["sim2real.fail_quietly=false", "sim2real.token_file=null", "sim2real.enabled=False"]).sim2real
    assert parsed.fail_quietly is False and parsed.token_file is None and parsed.port == P.DEFAULT_PORT
    assert C.Sim2RealClient.from_config(parsed).state == "disconnected"  # not started
    for overrides, match in ((["+sim2real.ip=1.2.3.4"], "unknown key 'sim2real.ip'"),
                             (["sim2real.fail_quietely=False"], "did you mean sim2real.fail_quietly"),
                             (["sim2real.protocol=legacy", "sim2real.mode=real2sim"], "legacy"),
                             (["sim2real.protocol=v2"], "protocol"),
                             (["sim2real.rate_hz=0"], "rate_hz"),
                             (["sim2real.fail_quietly=maybe"], "fail_quietly")):
        with pytest.raises(ConfigError, match=match):
            load_config(overrides)
    with pytest.raises(ValueError, match="cannot read token file"):
        C.Sim2RealClient.from_config({"token_file": str(tmp_path / "missing")})


def test_send_validates_input():
    client = C.Sim2RealClient(port=9)
    with pytest.raises(ValueError):
        client.send_joint_positions([0.0] * 5)
    with pytest.raises(ValueError):
        client.send_joint_positions([0.0] * 5 + [float("nan")])
    client.send_joint_positions((0.1, 0.2, 0.3, 0.4, 0.5, 0.06))


def test_controller_rejects_non_finite_targets():
    ctl = ArmController(SimulatedArm(read_latency_ms=0.0))
    assert ctl.command([float("nan")] + [0.0] * 5, 10) == (P.ACK_REJECTED, False)
    assert ctl.status().holding
    flags, ok = ctl.command([9.0] + [0.0] * 5, 10)
    assert ok and flags == P.ACK_CLAMPED
    assert ctl.status().target[0] == pytest.approx(robot.SAFE_LIMITS_UPPER[0])


def test_server_argument_checks():
    with pytest.raises(ValueError, match="legacy"):
        Sim2RealServer(SimulatedArm(), host="127.0.0.1", port=0, protocol="legacy", token=b"x")
    with pytest.raises(ValueError, match="on_timeout"):
        Sim2RealServer(SimulatedArm(), host="127.0.0.1", port=0, on_timeout="panic")


def test_controller_limits_must_be_inside_the_hardware_limits():
    with pytest.raises(ValueError, match="joint2"):
        ArmController(SimulatedArm(), upper=(1.0, 2.0, 0.5, 0.5, 0.5, 0.1))


def _hostile_server(replies):
    """A listener on 127.0.0.1 that answers HELLO with ``replies[0]`` and every later frame with the next reply."""
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)

    def serve():
        conn, _ = listener.accept()
        conn.settimeout(3.0)
        dec = P.FrameDecoder()
        try:
            for reply in replies:
                while not dec.feed(conn.recv(4096)):
                    pass
                conn.sendall(P.encode(reply))
            conn.recv(4096)
        except (OSError, P.ProtocolError):
            pass
        finally:
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


GOOD_WELCOME = P.Welcome(257, 200, 60, robot.SAFE_LIMITS_LOWER, robot.SAFE_LIMITS_UPPER)


@pytest.mark.parametrize("bad", [float("inf"), -float("inf"), 1e308, 4.0])
def test_hostile_readback_is_a_clear_error_not_a_number(bad):
    """Issue 18.14: a read-back of inf or 1e308 ends the link with a Sim2RealError; readback() never returns it."""
    good = P.Ack(0, 0, 5, (NAN,) * 6, (0.0,) * 6, (0.1, NAN, 0.0, 0.0, 0.0, 0.0))
    evil = P.Ack(1, 0, 5, (NAN,) * 6, (0.0,) * 6, (0.1, bad, 0.0, 0.0, 0.0, 0.0))
    listener, thread = _hostile_server([GOOD_WELCOME, good, evil])
    client = C.Sim2RealClient(port=listener.getsockname()[1], mode="real2sim", fail_quietly=False).start()
    try:
        assert wait_until(lambda: client.last_error is not None, 5.0)
        assert isinstance(client.last_error, C.Sim2RealError)
        assert "read-back joint2" in str(client.last_error) and "outside the joint limits" in str(client.last_error)
        with pytest.raises(C.Sim2RealError, match="outside the joint limits"):
            client.readback()
    finally:
        client.stop()
        listener.close()
        thread.join(5.0)


@pytest.mark.parametrize("field", ["lower", "upper", "heartbeat"])
def test_hostile_welcome_is_refused(field):
    welcome = {"lower": GOOD_WELCOME._replace(lower=(float("nan"),) + robot.SAFE_LIMITS_LOWER[1:]),
               "upper": GOOD_WELCOME._replace(upper=(1e308,) + robot.SAFE_LIMITS_UPPER[1:]),
               "heartbeat": GOOD_WELCOME._replace(heartbeat_ms=0)}[field]
    listener, thread = _hostile_server([welcome])
    client = C.Sim2RealClient(port=listener.getsockname()[1], fail_quietly=False).start()
    try:
        assert wait_until(lambda: client.last_error is not None, 5.0)
        assert isinstance(client.last_error, C.Sim2RealError) and client.state == "disconnected"
        assert str(client.last_error).startswith("the server sent"), client.last_error
        with pytest.raises(C.Sim2RealError):
            client.send_joint_positions([0.0] * 6)
    finally:
        client.stop()
        listener.close()
        thread.join(5.0)
