"""Legacy mode: byte-compatible with the reference (24-byte frames of six float32 servo degrees)."""

import math
import socket
import struct
import threading
import time

import pytest

from dofbot_rl.sim2real.stress import wait_until
from dofbot_rl import robot
from dofbot_rl.sim2real.server import LIMITS_LOWER, LIMITS_UPPER


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
    # One controlling client: a second legacy connection is closed at once.
    other = socket.create_connection(server.address, timeout=2.0)
    assert other.recv(10) == b""
    other.close()
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
