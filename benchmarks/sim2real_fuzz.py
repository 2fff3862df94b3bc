"""Sim-to-real server under hostile input and link loss: figures for docs/sim2real.md.

Runs, on 127.0.0.1 with the simulated arm:

1. a fuzz run: >= --frames random / truncated / oversized / hostile frames against a
   server with large steps and a high write rate (so hostile targets reach the servos);
   reports the extreme joint angles the arm was ever sent versus the server's per-joint
   limits (the safe limits for joints 1-5, the gripper's full open/close range);
2. hold latency: a real client in a child process streams at 60 Hz and is killed
   (SIGKILL) or frozen (SIGSTOP) --trials times each, against a default server
   (heartbeat 200 ms); reports the time to the server's hold.

Usage: python benchmarks/sim2real_fuzz.py [--frames 10000] [--trials 10] [--seed 0]

The fuzzer and the hold-latency probe are also functions (:func:`fuzz_server`,
:func:`measure_hold_latency`) that ``tests/sim2real`` imports; they are not part of the
``dofbot_rl`` package, which ships only what runs on the robot.
"""

import argparse
import math
import os
import random
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import typing

#: The directory that holds the ``dofbot_rl`` package (for child processes' PYTHONPATH).
PACKAGE_PARENT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "exts",
                              "dofbot.rl_examples")
if PACKAGE_PARENT not in sys.path:
    sys.path.insert(0, PACKAGE_PARENT)

from dofbot_rl import robot  # noqa: E402
from dofbot_rl.sim2real import protocol as P  # noqa: E402
from dofbot_rl.sim2real.arms import SimulatedArm  # noqa: E402
from dofbot_rl.sim2real.safety import LIMITS_LOWER, LIMITS_UPPER  # noqa: E402
from dofbot_rl.sim2real.tcp_server import Sim2RealServer  # noqa: E402


class FuzzReport(typing.NamedTuple):
    """What :func:`fuzz_server` sent and saw."""

    frames: int  #: frames (or garbage chunks) written to the server
    fatal_frames: int  #: of which malformed enough that the server must drop the connection
    sessions: int  #: TCP connections opened
    refused: int  #: sessions answered with REFUSED (busy, auth, version, bad frame)
    acks: int  #: ACKs received for the well-formed frames
    fatal_kept_open: int  #: fatal frames after which the server did NOT hang up (should be 0)
    seconds: float  #: wall time (s)


def _hostile_float(rng):
    pick = rng.random()
    if pick < 0.10:
        return float("nan")
    if pick < 0.18:
        return rng.choice((float("inf"), float("-inf")))
    if pick < 0.28:
        return rng.choice((1.0, -1.0)) * 10.0 ** rng.uniform(2, 308)
    if pick < 0.34:
        return rng.choice((5e-324, -5e-324, 0.0, -0.0))
    if pick < 0.60:  # just around the server's limits
        i = rng.randrange(robot.NUM_DOF)
        edge = rng.choice((LIMITS_LOWER[i], LIMITS_UPPER[i]))
        return edge + rng.uniform(-0.05, 0.05)
    return rng.uniform(-2 * math.pi, 2 * math.pi)


def _frame(msg_type, payload, version=P.FRAME_VERSION, length=None, magic=P.MAGIC):
    length = len(payload) if length is None else length
    return P.HEADER.pack(magic, version, msg_type, length) + payload


def _random_bytes(rng, n):
    return bytes(rng.getrandbits(8) for _ in range(n))


def _hostile_goal(rng):
    """A GOAL with hostile values: NaN / inf / huge / near-zero positions and quaternions."""
    pos = [_hostile_float(rng) if rng.random() < 0.5 else rng.uniform(-0.4, 0.4) for _ in range(3)]
    quat = None
    if rng.random() < 0.5:
        quat = [_hostile_float(rng) if rng.random() < 0.5 else rng.uniform(-1, 1) for _ in range(4)]
    return P.encode(P.Goal(rng.getrandbits(32), pos, quat))  # encode() does not judge values


def _benign(rng, policy=False):
    """A well-formed frame with hostile values: the server must answer, not hang up.

    ``policy``: the server is in policy mode, where GOAL frames are answered and COMMAND
    frames are fatal (ERROR ``POLICY_MODE``).
    """
    kind = rng.random()
    if policy:
        return _hostile_goal(rng) if kind < 0.7 else P.encode(P.Heartbeat(rng.getrandbits(32)))
    if kind < 0.70:
        q = [_hostile_float(rng) for _ in range(robot.NUM_DOF)]
        return P.encode(P.Command(rng.getrandbits(32), rng.randrange(P.MAX_MOVE_MS + 1), q))
    if kind < 0.85:
        return P.encode(P.Heartbeat(rng.getrandbits(32)))
    # Random bit patterns in the float fields (signalling NaNs, denormals, ...).
    return _frame(P.MsgType.COMMAND, struct.pack("<IH", rng.getrandbits(32), rng.getrandbits(16))
                  + _random_bytes(rng, 48))


def _fatal(rng, role):
    """A frame that breaks the protocol.

    Returns ``(bytes, hang_up)``: whether the server must drop the connection at once
    (a truncated frame instead leaves it waiting for the rest until the heartbeat expires).
    """
    kind = rng.randrange(9)
    return _fatal_bytes(rng, role, kind), kind != 8


def _fatal_bytes(rng, role, kind):
    if kind == 0:  # wrong payload size for the type
        size = rng.choice((0, 1, 53, 55, 100))
        return _frame(P.MsgType.COMMAND, _random_bytes(rng, size))
    if kind == 1:  # unknown type
        return _frame(rng.choice((0, 12, 77, 255)), _random_bytes(rng, rng.randrange(16)))
    if kind == 2:  # oversized announcement, followed by junk
        return _frame(P.MsgType.COMMAND, _random_bytes(rng, rng.randrange(600)),
                      length=rng.randrange(P.MAX_PAYLOAD + 1, 1 << 32))
    if kind == 3:  # bad magic
        return _random_bytes(rng, 1) + b"\xff" + _random_bytes(rng, rng.randrange(1, 64))
    if kind == 4:  # unsupported frame version
        return _frame(P.MsgType.HEARTBEAT, b"\0\0\0\0", version=rng.choice((0, 2, 255)))
    if kind == 5:  # pure noise (never starting like a frame)
        return bytes([rng.choice([b for b in range(256) if b != P.MAGIC[0]])]) + _random_bytes(
            rng, rng.randrange(0, 1200))
    if kind == 6:  # a valid frame that is not allowed in a session
        return P.encode(rng.choice((P.Hello(P.PROTOCOL_VERSION, role, "again"), P.Auth(b"\0" * 32),
                                    P.Welcome(1, 200, 60, robot.SAFE_LIMITS_LOWER, robot.SAFE_LIMITS_UPPER),
                                    P.Ack(0, 0, 0, (0.0,) * 6, (0.0,) * 6, (0.0,) * 6),
                                    P.Error(1, "x" * 50), P.Refused(2, "y"))))
    if kind == 7:  # HELLO with a bad version or role
        return _frame(P.MsgType.HELLO, struct.pack("<HB", rng.choice((0, 2, 999)), rng.randrange(256)))
    # A frame header promising more than is ever sent (the session then ends).
    return P.encode(P.Command(1, 1, (0.0,) * 6))[:rng.randrange(1, 8 + 54)]


def _send(sock, data, rng):
    if rng.random() < 0.05 and len(data) > 1:  # fragment: partial reads on the server
        cut = sorted(rng.sample(range(1, len(data)), min(3, len(data) - 1)))
        for a, b in zip([0] + cut, cut + [len(data)]):
            sock.sendall(data[a:b])
            time.sleep(0.0002)
    else:
        sock.sendall(data)


def _read_reply(sock, timeout_s):
    decoder = P.FrameDecoder()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        data = sock.recv(4096)
        if not data:
            return None
        msgs = decoder.feed(data)
        if msgs:
            return msgs[0]
    return None


def fuzz_server(host, port, num_frames=10000, seed=0, token=None, time_budget_s=60.0, policy=False):
    """Send at least ``num_frames`` random, truncated, oversized or hostile frames.

    Most sessions complete the handshake (as controller or observer, sometimes with a
    wrong HMAC) and then send well-formed COMMAND / HEARTBEAT frames full of NaN, inf,
    huge and near-limit angles and random move times, ending with a fatal frame (wrong
    size, unknown type, oversized length, bad magic or version, noise, a frame not allowed
    in a session, a truncated frame) or an abrupt close; others send garbage before any
    handshake. Stops after ``num_frames`` frames or ``time_budget_s`` seconds.

    ``policy=True`` fuzzes a server in policy mode: controllers send GOAL frames with
    hostile positions and quaternions instead of COMMANDs, and a COMMAND is one of the
    fatal frames (it must be refused).

    Returns:
        A :class:`FuzzReport`.
    """
    rng = random.Random(seed)
    frames = fatal = sessions = refused = acks = kept_open = 0
    start = time.monotonic()
    while frames < num_frames and time.monotonic() - start < time_budget_s:
        sessions += 1
        sock = socket.create_connection((host, port), timeout=2.0)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            role = P.Role.OBSERVE if rng.random() < 0.1 else P.Role.CONTROL
            if rng.random() < 0.12:  # garbage before any handshake
                _send(sock, _fatal(rng, role)[0], rng)
                frames += 1
                fatal += 1
                continue
            sock.sendall(P.encode(P.Hello(P.PROTOCOL_VERSION, role, "fuzz")))
            frames += 1
            reply = _read_reply(sock, 1.0)
            if isinstance(reply, P.Challenge):
                good = token is not None and rng.random() > 0.05
                mac = P.auth_mac(token, reply.nonce, role) if good else _random_bytes(rng, 32)
                sock.sendall(P.encode(P.Auth(mac)))
                frames += 1
                reply = _read_reply(sock, 1.0)
            if not isinstance(reply, P.Welcome):
                refused += 1
                time.sleep(0.002)  # e.g. the previous controller's session is still closing
                continue
            sent_benign, broke = 0, False
            for _ in range(rng.randrange(1, 80)):
                if rng.random() < 0.04:
                    data, broke = _fatal(rng, role)
                    _send(sock, data, rng)
                    frames += 1
                    fatal += 1
                    break
                if role == P.Role.OBSERVE or policy:
                    if rng.random() < 0.2:  # an observer may not command, nor anyone in policy mode: fatal
                        _send(sock, P.encode(P.Command(1, 10, (0.0,) * 6)), rng)
                        frames += 1
                        fatal += 1
                        broke = True
                        break
                    _send(sock, (_benign(rng, policy) if role == P.Role.CONTROL
                                 else P.encode(P.Heartbeat(rng.getrandbits(32)))), rng)
                else:
                    _send(sock, _benign(rng), rng)
                frames += 1
                sent_benign += 1
            # Let the server process everything before the (possibly abrupt) close: wait for
            # an ACK per well-formed frame, or for the server to hang up after a fatal one.
            acks_seen, hung_up = _drain(sock, sent_benign, broke, 2.0)
            acks += acks_seen
            if broke and not hung_up:
                kept_open += 1
        except OSError:
            pass  # the server hung up first: that is its right
        finally:
            if rng.random() < 0.5:  # abrupt close (RST)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
    return FuzzReport(frames, fatal, sessions, refused, acks, kept_open, time.monotonic() - start)


def _drain(sock, expected_acks, want_close, timeout_s):
    """Read replies until ``expected_acks`` ACKs arrived and, if ``want_close``, the server
    closed the connection. Returns ``(acks, server_closed)``."""
    decoder = P.FrameDecoder()
    acks = 0
    deadline = time.monotonic() + timeout_s
    while acks < expected_acks or want_close:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return acks, False
        sock.settimeout(remaining)
        try:
            data = sock.recv(65536)
        except socket.timeout:
            return acks, False
        except OSError:
            return acks, True
        if not data:
            return acks, True
        try:
            acks += sum(isinstance(m, P.Ack) for m in decoder.feed(data))
        except P.ProtocolError:
            return acks, False
    return acks, False


def commanded_extremes_rad(arm):
    """Smallest and largest joint angle (rad) ever sent to a ``SimulatedArm``.

    Returns:
        ``(lowest, highest)``: two lists of 6 angles (rad, task order), or None when the
        arm was never written.
    """
    if not arm.num_writes:
        return None
    a = robot.servo_deg_to_sim(arm.min_sent_deg)
    b = robot.servo_deg_to_sim(arm.max_sent_deg)
    return [min(x, y) for x, y in zip(a, b)], [max(x, y) for x, y in zip(a, b)]


_STREAMER = """
import math, sys, time
from dofbot_rl.sim2real.client import Sim2RealClient
c = Sim2RealClient(host=sys.argv[1], port=int(sys.argv[2]), token=bytes.fromhex(sys.argv[3]) or None,
                   fail_quietly=True, rate_hz=60.0).start()
t0 = time.monotonic()
while True:
    t = time.monotonic() - t0
    c.send_joint_positions([0.4 * math.sin(t), 0.3 * math.sin(0.7 * t), 0.2, -0.2, 0.5 * math.cos(t), 0.0])
    time.sleep(1.0 / 60.0)
"""


def wait_until(predicate, timeout_s, poll_s=0.0005):
    """Poll ``predicate()`` every ``poll_s`` s until it is truthy or ``timeout_s`` s passed.

    Returns:
        The last value of ``predicate()``.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    return predicate()


class HoldSample(typing.NamedTuple):
    """One hold-latency measurement (ms)."""

    after_loss_ms: float  #: from the moment the client was killed / frozen to the hold
    after_last_frame_ms: float  #: from the last frame the server received to the hold


def measure_hold_latency(server, how="kill", trials=5, token=None, seed=0, python=None):
    """Time from losing the controlling client to the server's hold (or release).

    Each trial starts a real :class:`~dofbot_rl.sim2real.client.Sim2RealClient` in a child
    process streaming a moving target at 60 Hz, waits until the arm follows, then either
    kills it (``how="kill"``, SIGKILL: the kernel closes its socket) or freezes it
    (``how="silent"``, SIGSTOP: the connection stays open and goes quiet, as with a pulled
    cable), and times the server's hold event from that moment.

    Args:
        server: a running :class:`~dofbot_rl.sim2real.server.Sim2RealServer` in this process.
        how: ``"kill"`` or ``"silent"``.
        trials: number of measurements.
        token: the server's token (bytes) or None.
        python: interpreter for the child (default this one).

    Returns:
        A list of :class:`HoldSample`, one per trial.

    Raises:
        RuntimeError: the child never took control or the server never held.
    """
    if how not in ("kill", "silent"):
        raise ValueError("how must be 'kill' or 'silent', got %r" % (how,))
    rng = random.Random(seed)
    host, port = server.address
    env = dict(os.environ)
    env["PYTHONPATH"] = PACKAGE_PARENT + os.pathsep + env.get("PYTHONPATH", "")
    latencies = []
    for _ in range(trials):
        if not wait_until(lambda: not server.has_controller, 5.0):
            raise RuntimeError("the previous controlling client is still attached")
        proc = subprocess.Popen([python or sys.executable, "-c", _STREAMER, host, str(port),
                                 (token or b"").hex()], env=env)
        try:
            if not wait_until(lambda: server.has_controller and not server.controller.status().holding, 10.0):
                raise RuntimeError("the streaming client never took control of the arm")
            time.sleep(rng.uniform(0.05, 0.25))
            seen = server.controller.num_events
            t0 = time.monotonic()
            os.kill(proc.pid, signal.SIGKILL if how == "kill" else signal.SIGSTOP)
            if not wait_until(lambda: server.controller.num_events > seen, 5.0):
                raise RuntimeError("the server did not hold after the client was lost")
            t_hold = server.controller.events[seen - server.controller.num_events][0]
            latencies.append(HoldSample((t_hold - t0) * 1000.0,
                                        (t_hold - server.last_control_frame_s) * 1000.0))
        finally:
            proc.kill()
            proc.wait()
    return latencies


# ----------------------------------------------------------------------------------
# The benchmark
# ----------------------------------------------------------------------------------


def _serve(**kwargs):
    arm = SimulatedArm(read_latency_ms=3.0, read_failure_prob=0.02, seed=0)
    server = Sim2RealServer(arm, host="127.0.0.1", port=0, **kwargs)
    stop = threading.Event()
    thread = threading.Thread(target=server.serve_forever, args=(stop,), daemon=True)
    thread.start()
    return server, arm, stop, thread


def _fmt(values):
    return "[" + ",".join("%.6f" % v for v in values) + "]"


def operator_lockout(server, token, rounds=80, idle=16):
    """The idle-socket attack of issue 18.9: ``rounds`` times, re-open ``idle`` idle sockets, then
    connect with the token. Returns how many of the ``rounds`` handshakes got a WELCOME."""
    host, port = server.address
    attackers, let_in = [], 0
    try:
        for _ in range(rounds):
            for sock in attackers:
                sock.close()
            attackers = [socket.create_connection((host, port), timeout=2.0) for _ in range(idle)]
            sock = socket.create_connection((host, port), timeout=2.0)
            try:
                sock.sendall(P.encode(P.Hello(P.PROTOCOL_VERSION, P.Role.OBSERVE, "operator")))
                reply = _read_reply(sock, 2.0)
                if isinstance(reply, P.Challenge):
                    sock.sendall(P.encode(P.Auth(P.auth_mac(token, reply.nonce, P.Role.OBSERVE))))
                    reply = _read_reply(sock, 2.0)
                let_in += isinstance(reply, P.Welcome)
            except OSError:
                pass
            finally:
                sock.close()
    finally:
        for sock in attackers:
            sock.close()
    return let_in


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=10000, help="frames to fuzz")
    p.add_argument("--trials", type=int, default=10, help="hold-latency trials per kind (kill, silent)")
    p.add_argument("--heartbeat-ms", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    server, arm, stop, thread = _serve(max_step_deg=90.0, max_rate_hz=500.0, heartbeat_ms=args.heartbeat_ms)
    report = fuzz_server(*server.address, num_frames=args.frames, seed=args.seed, time_budget_s=300.0)
    alive = thread.is_alive()
    lowest, highest = commanded_extremes_rad(arm)
    stop.set()
    thread.join(5.0)
    max_abs = [max(abs(a), abs(b)) for a, b in zip(lowest, highest)]
    limit = [max(abs(a), abs(b)) for a, b in zip(LIMITS_LOWER, LIMITS_UPPER)]
    excess = max(max(lo - mn, mx - hi, 0.0) for lo, hi, mn, mx in zip(LIMITS_LOWER, LIMITS_UPPER, lowest, highest))

    server, arm2, stop, thread = _serve(heartbeat_ms=args.heartbeat_ms)
    killed = measure_hold_latency(server, how="kill", trials=args.trials, seed=args.seed)
    silent = measure_hold_latency(server, how="silent", trials=args.trials, seed=args.seed + 1)
    stop.set()
    thread.join(5.0)
    worst = max(s.after_last_frame_ms for s in killed + silent)

    server, _, stop, thread = _serve(heartbeat_ms=args.heartbeat_ms, token=b"operator-token")
    let_in = operator_lockout(server, b"operator-token")
    evicted = server.stats["evicted"]
    stop.set()
    thread.join(5.0)

    print("frames_fuzzed=%d worst_hold_latency_ms=%.1f max_command_rad=%s limit_rad=%s"
          % (report.frames, worst, _fmt(max_abs), _fmt(limit)))
    print("fuzz: %d frames (%d fatal) in %d sessions, %d refused, %d ACKs, %.1f s; server alive: %s; "
          "fatal frames left open: %d; servo writes: %d, rejected by the bus: %d; max limit excess: %.3g rad"
          % (report.frames, report.fatal_frames, report.sessions, report.refused, report.acks, report.seconds,
             alive, report.fatal_kept_open, arm.num_writes, arm.num_rejected, excess))
    for name, samples in (("client killed (SIGKILL)", killed), ("client silent (SIGSTOP)", silent)):
        loss = [s.after_loss_ms for s in samples]
        last = [s.after_last_frame_ms for s in samples]
        print("hold, %s, heartbeat %d ms, %d trials: after the loss mean %.1f max %.1f ms; "
              "after the last frame mean %.1f max %.1f ms"
              % (name, args.heartbeat_ms, len(samples), statistics.mean(loss), max(loss),
                 statistics.mean(last), max(last)))
    print("lock-out: 80 rounds of 16 idle sockets re-opened, then a client with the token: let in %d of 80; "
          "idle handshakes evicted: %d" % (let_in, evicted))
    return 0 if alive and excess <= 1e-9 and report.fatal_kept_open == 0 and let_in == 80 else 1


if __name__ == "__main__":
    sys.exit(main())
