"""Legacy mode: byte-compatible with the reference (24-byte frames of six float32 servo degrees)."""

import math
import socket
import struct
import threading
import time

import pytest

from sim2real_fuzz import wait_until
from dofbot_rl import robot
from dofbot_rl.sim2real import tcp_server
from dofbot_rl.sim2real.safety import LIMITS_LOWER, LIMITS_UPPER


class ReferenceServer(object):
    """The reference notebook server's receive side, from the reference facts.

    One client at a time, a recv loop over 24-byte messages unpacked as six float32 servo
    angles (the reference used native order, ``struct`` format of six ``f``: little-endian
    here); no replies. Unlike the reference it reassembles partial reads.
    """

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.states = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        conn, _ = self.sock.accept()
        buf = b""
        while True:
            data = conn.recv(24)
            if not data:
                break
            buf += data
            while len(buf) >= 24:
                self.states.append(struct.unpack("6f", buf[:24]))
                buf = buf[24:]
        conn.close()

    def close(self):
        self.sock.close()


def test_legacy_client_talks_to_the_reference_server(make_client):
    ref = ReferenceServer()
    try:
        client = make_client(ref.port, protocol="legacy", rate_hz=60.0)
        assert client.wait_for_state("connected", 3.0)
        q = [0.5, -0.3, 0.2, 0.7, -1.0, 0.05]
        client.send_joint_positions(q)
        assert wait_until(lambda: ref.states, 2.0)
        want = [math.degrees(v) + 90.0 for v in q[:5]] + [90.0]  # gripper: always 90, as the reference
        assert ref.states[-1] == pytest.approx(want, abs=1e-4)
        # Outside the safe limits: clamped here, because a reference server does not clamp.
        client.send_joint_positions([3.0, 3.0, -3.0, 0.0, 3.0, 0.0])
        assert wait_until(lambda: ref.states[-1][0] > 179.0, 2.0)
        assert ref.states[-1][:5] == pytest.approx([180.0, 135.0, 45.0, 90.0, 180.0], abs=1e-4)
        n = len(ref.states)
        time.sleep(0.3)  # it keeps streaming the latest pose, like the reference task
        assert 10 <= len(ref.states) - n <= 25
        assert client.latency_ms is None  # no replies in legacy mode
    finally:
        ref.close()


def _reference_client_send(sock, servo, split=False):
    frame = struct.pack("6f", *servo)
    if split:
        sock.sendall(frame[:7])
        time.sleep(0.005)
        sock.sendall(frame[7:])
    else:
        sock.sendall(frame)


def test_server_in_legacy_mode_with_a_reference_style_client(start_server):
    server, arm = start_server(protocol="legacy", heartbeat_ms=150, max_step_deg=10.0, max_rate_hz=100.0)
    sock = socket.create_connection(server.address, timeout=2.0)
    target = [110.0, 100.0, 80.0, 95.0, 60.0, 90.0]
    stop = threading.Event()

    def stream():
        i = 0
        while not stop.is_set():
            _reference_client_send(sock, target, split=(i % 3 == 0))
            i += 1
            time.sleep(1 / 60.0)

    t = threading.Thread(target=stream, daemon=True)
    t.start()
    try:
        want = robot.sim_to_servo_deg(robot.clamp_to_limits(robot.servo_deg_to_sim(target), LIMITS_LOWER,
                                                            LIMITS_UPPER))
        assert wait_until(lambda: all(abs(a - b) < 0.5 for a, b in zip(arm.position_deg(), want)), 5.0)
        assert abs(want[5] - 90.0) < 1e-9  # gripper 90 deg = 0.26 rad: inside its open/close range, as sent
    finally:
        stop.set()
        t.join()
    # Silence: the server holds but keeps the connection (legacy clients never reconnect).
    assert wait_until(lambda: server.controller.events, 1.0)
    assert server.controller.events[-1][1] == "hold"
    # Hostile values are clamped or ignored.
    for servo in ([1e30, -1e30, 500.0, -500.0, 1e9, 0.0], [float("nan")] * 6, [float("inf")] * 6):
        sock.sendall(struct.pack("<6f", *servo))
    time.sleep(0.5)
    for w in arm.writes:
        for v, lo, hi in zip(robot.servo_deg_to_sim(w.servo_deg), LIMITS_LOWER, LIMITS_UPPER):
            assert lo - 1e-9 <= v <= hi + 1e-9
    # One controlling client: while it sends (60 Hz, well inside the 150 ms takeover silence),
    # a second legacy connection is closed at once.
    stop.clear()
    t = threading.Thread(target=stream, daemon=True)
    t.start()
    try:
        time.sleep(0.1)
        other = socket.create_connection(server.address, timeout=2.0)
        assert other.recv(10) == b""
        other.close()
    finally:
        stop.set()
        t.join()
    # Stopping the server closes the connection without v1 bytes.
    server.stop_event.set()
    sock.settimeout(3.0)
    assert sock.recv(100) == b""
    sock.close()


def test_legacy_client_against_legacy_server(start_server, make_client):
    server, arm = start_server(protocol="legacy")
    client = make_client(server.address[1], protocol="legacy")
    assert client.wait_for_state("connected", 3.0)
    q = [-0.4, 0.2, 0.3, -0.1, 0.6, 0.0]
    client.send_joint_positions(q)
    want = robot.sim_to_servo_deg(robot.clamp_to_limits(q[:5] + [robot.servo_deg_to_sim([90.0] * 6)[5]],
                                                        LIMITS_LOWER, LIMITS_UPPER))
    assert wait_until(lambda: all(abs(a - b) < 0.5 for a, b in zip(arm.position_deg(), want)), 5.0)


def _legacy_frames(sock, servo, n):
    for _ in range(n):
        sock.sendall(struct.pack("<6f", *servo))
        time.sleep(0.01)


def test_legacy_silent_client_is_taken_over_after_the_heartbeat(start_server):
    """Issue 18.10: a silent legacy socket (pulled cable) no longer holds the only control slot forever."""
    server, arm = start_server(protocol="legacy", heartbeat_ms=200)
    first = socket.create_connection(server.address, timeout=3.0)
    a = [110.0, 100.0, 80.0, 95.0, 60.0, 90.0]
    b = [70.0, 80.0, 100.0, 85.0, 120.0, 90.0]
    _legacy_frames(first, a, 20)
    assert wait_until(lambda: all(abs(x - y) < 0.5 for x, y in zip(arm.position_deg(), a)), 5.0)
    # The first client goes silent (socket open): the arm is held, then a new client takes over.
    assert wait_until(lambda: server.controller.events and server.controller.events[-1][1] == "hold", 2.0)
    second = socket.create_connection(server.address, timeout=3.0)
    _legacy_frames(second, b, 20)
    assert wait_until(lambda: all(abs(x - y) < 0.5 for x, y in zip(arm.position_deg(), b)), 5.0), arm.position_deg()
    first.settimeout(3.0)
    assert first.recv(10) == b""  # the silent client's connection was closed by the server
    assert server.stats["evicted"] == 1
    # A client that connects and never sends is taken over the same way.
    second.close()
    assert wait_until(lambda: not server.has_controller, 3.0)
    idle = socket.create_connection(server.address, timeout=3.0)
    assert wait_until(lambda: server.has_controller, 3.0)
    time.sleep(0.3)
    third = socket.create_connection(server.address, timeout=3.0)
    _legacy_frames(third, a, 20)
    assert wait_until(lambda: all(abs(x - y) < 0.5 for x, y in zip(arm.position_deg(), a)), 5.0)
    idle.settimeout(3.0)
    assert idle.recv(10) == b""
    for s in (first, second, idle, third):
        s.close()


def test_server_sessions_use_tcp_keepalive(start_server):
    server, _ = start_server(protocol="legacy")
    seen = []
    original = tcp_server._keepalive

    def spy(conn):
        original(conn)
        seen.append(conn.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))
    tcp_server._keepalive = spy
    try:
        sock = socket.create_connection(server.address, timeout=3.0)
        assert wait_until(lambda: seen, 3.0) and seen[0] == 1
        sock.close()
    finally:
        tcp_server._keepalive = original
