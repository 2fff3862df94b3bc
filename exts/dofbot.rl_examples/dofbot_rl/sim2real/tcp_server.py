"""The Dofbot server's network side: a TCP server for protocol v1 or legacy, one controlling client.

Standard library only, Python 3.6 compatible (it runs on the Dofbot's Jetson Nano).
:class:`Sim2RealServer` accepts clients and hands their targets (COMMAND frames, or legacy
24-byte frames) or goals (GOAL frames, policy mode) to the safety layer
(:class:`~dofbot_rl.sim2real.safety.ArmController`), which alone talks to the servos.

What the network may cost the arm is bounded here:

* one controlling client at a time; others are refused with a REFUSED frame (v1). When
  the controlling client goes silent for ``heartbeat_ms`` or disconnects, the arm is held
  (or released) *before* the control slot is free, so the next client's WELCOME always
  comes after the hold;
* only authenticated sessions count against ``max_connections``. A connection still in
  its handshake has ``handshake_timeout_s`` to finish it; at most
  ``max_handshakes_per_source`` per source address and ``max_handshakes`` in all are kept,
  and a new connection over either bound evicts the oldest one, so idle sockets cannot
  keep a client with the token out;
* legacy clients get no replies and never reconnect, so a silent legacy client keeps its
  connection (the arm held) until another client connects: after ``heartbeat_ms`` of
  silence that client takes over. TCP keepalive closes connections whose peer vanished;
* malformed, truncated, oversized or hostile input closes that connection, never the
  server; frame sizes are bounded before anything is buffered.
"""

import collections
import logging
import select
import socket
import threading
import time

from . import protocol as P
from .. import robot
from .policy_mode import POLICY_MOVE_MS, PolicyRunner
from .safety import ArmController

_log = logging.getLogger(__name__)

#: Listen backlog: connections the kernel queues before ``accept``.
LISTEN_BACKLOG = 128
#: How long a new controller waits for the previous one's hold to finish (s).
RELEASE_WAIT_S = 2.0
#: TCP keepalive: idle time before the first probe, probe interval (s), probes before the peer counts as gone.
KEEPALIVE = (10, 5, 3)


class _Close(Exception):
    """Ends a session; ``reply`` (a message or None) is sent first."""

    def __init__(self, reason, reply=None):
        Exception.__init__(self, reason)
        self.reply = reply


class Sim2RealServer(object):
    """TCP server for one Dofbot: v1 or legacy protocol, one controlling client.

    Binds in the constructor (``port=0`` picks a free port, see :attr:`address`); call
    :meth:`serve_forever` (blocking, e.g. on a thread in tests) and stop it with the
    ``stop_event`` passed there or :meth:`shutdown`.

    Args:
        arm: an arm driver (servo degrees), see :mod:`dofbot_rl.sim2real.arms`.
        host: interface to bind ("0.0.0.0" all IPv4, "127.0.0.1" local only).
        port: TCP port (0: any free port).
        protocol: ``"v1"`` or ``"legacy"``.
        token: shared secret (bytes) for the v1 HMAC challenge; None: no authentication.
        heartbeat_ms: silence (ms) after which the controlling client is considered gone.
        on_timeout: ``"hold"`` or ``"release"`` (see :class:`ArmController`).
        max_step_deg, max_rate_hz, readback_hz: see :class:`ArmController`.
        handshake_timeout_s: time (s) a new connection has to finish HELLO / AUTH.
        max_connections: simultaneous authenticated sessions (more are refused,
            ``TOO_MANY_CONNECTIONS``); connections still in their handshake do not count.
        max_handshakes: connections in their handshake kept at once (a new one evicts the oldest).
        max_handshakes_per_source: the same, per source address.
        max_observers: simultaneous v1 observe-only (real->sim) clients.
        send_timeout_s: a client that does not read its ACKs for this long (s) is dropped.
        policy: an :class:`~dofbot_rl.sim2real.onboard.OnboardController` to run in policy
            mode (v1 only), or None (direct mode only).
        goal, goal_quat: the policy's first goal (m, base frame; quaternion w, x, y, z) or
            None (the arm stays still until a client's GOAL).
        policy_move_ms: servo move time (ms) sent with the policy's targets.

    Raises:
        ValueError: a bad argument (named).
        OSError: the address cannot be bound.
    """

    def __init__(self, arm, host="0.0.0.0", port=P.DEFAULT_PORT, protocol="v1", token=None,
                 heartbeat_ms=200, on_timeout="hold", max_step_deg=5.0, max_rate_hz=60.0,
                 readback_hz=20.0, handshake_timeout_s=2.0, max_connections=8, max_handshakes=32,
                 max_handshakes_per_source=4, max_observers=2,
                 send_timeout_s=1.0, policy=None, goal=None, goal_quat=None, policy_move_ms=POLICY_MOVE_MS):
        if protocol not in ("v1", "legacy"):
            raise ValueError("protocol must be 'v1' or 'legacy', got %r" % (protocol,))
        if policy is not None and protocol != "v1":
            raise ValueError("policy mode needs protocol v1 (legacy clients cannot send goals)")
        if goal is not None and policy is None:
            raise ValueError("a goal needs a policy (--policy policy.npz)")
        if policy is not None and not readback_hz > 0:
            raise ValueError("policy mode needs servo read-back (readback_hz > 0), got %r" % (readback_hz,))
        if protocol == "legacy" and token is not None:
            raise ValueError("the legacy protocol has no authentication; a token needs protocol v1")
        if token is not None and not isinstance(token, bytes):
            raise ValueError("token must be bytes, got %r" % (type(token).__name__,))
        if not 10 <= int(heartbeat_ms) <= 0xFFFF:
            raise ValueError("heartbeat_ms must be in 10..65535, got %r" % (heartbeat_ms,))
        for name, value in (("max_connections", max_connections), ("max_handshakes", max_handshakes),
                            ("max_handshakes_per_source", max_handshakes_per_source)):
            if int(value) < 1:
                raise ValueError("%s must be >= 1, got %r" % (name, value))
        self.protocol = protocol
        self.token = token
        self.heartbeat_s = int(heartbeat_ms) / 1000.0
        self.handshake_timeout_s = float(handshake_timeout_s)
        self.max_connections = int(max_connections)
        self.max_handshakes = int(max_handshakes)
        self.max_handshakes_per_source = int(max_handshakes_per_source)
        self.max_observers = int(max_observers)
        self.send_timeout_s = float(send_timeout_s)
        self.controller = ArmController(arm, max_step_deg=max_step_deg, max_rate_hz=max_rate_hz,
                                        on_timeout=on_timeout, readback_hz=readback_hz)
        #: The :class:`PolicyRunner` of policy mode, or None.
        self.policy = None
        if policy is not None:
            self.policy = PolicyRunner(policy, self.controller, move_ms=policy_move_ms, goal=goal,
                                       goal_quat=goal_quat)
        self._welcome = P.Welcome(P.welcome_version(), int(heartbeat_ms),
                                  int(min(max(round(max_rate_hz), 1), 0xFFFF)),
                                  self.controller.lower, self.controller.upper)
        #: Move time (ms) for legacy targets, which carry none: two write periods.
        self._legacy_move_ms = int(round(2000.0 / max_rate_hz))
        family, socktype, proto, _, sockaddr = socket.getaddrinfo(
            host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)[0]
        self._sock = socket.socket(family, socktype, proto)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._sock.bind(sockaddr)
            self._sock.listen(LISTEN_BACKLOG)
        except OSError as exc:
            self._sock.close()
            raise OSError(exc.errno, "cannot listen on %s:%s: %s" % (host, port, exc.strerror or exc))
        self._lock = threading.Lock()
        self._slot_free = threading.Condition(self._lock)  # notified when the control slot frees up
        self._sessions = {}  # socket -> thread, every open connection
        self._handshakes = collections.OrderedDict()  # socket -> source address, oldest first (v1)
        self._live = set()  # authenticated sessions (controller and observers)
        self._evicted = {}  # socket -> why the server closed it
        self._controlling = None
        self._releasing = False  # the controller's hold is in progress: the slot is not free yet
        self._control_active_s = 0.0  # last frame (or claim) of the controlling client (s, monotonic)
        self._observers = set()
        self._stopping = threading.Event()
        #: Clock time (s, ``time.monotonic``) of the last frame from the controlling client.
        self.last_control_frame_s = None
        self.stats = {"connections": 0, "refused": 0, "evicted": 0, "protocol_errors": 0, "frames": 0,
                      "commands": 0, "timeouts": 0, "goals": 0, "mode_changes": 0}

    @property
    def address(self):
        """``(host, port)`` actually bound."""
        return self._sock.getsockname()[:2]

    @property
    def has_controller(self):
        """True while a client holds the control slot."""
        with self._lock:
            return self._controlling is not None

    @property
    def num_handshakes(self):
        """Connections in their handshake now."""
        with self._lock:
            return len(self._handshakes)

    def shutdown(self):
        """Ask :meth:`serve_forever` to return (thread-safe)."""
        self._stopping.set()

    # -- main loop --------------------------------------------------------------------

    def serve_forever(self, stop_event=None, poll_s=0.05):
        """Accept and serve clients until ``stop_event`` (or :meth:`shutdown`) is set.

        On return every connection is closed (v1 clients get an ERROR ``SHUTDOWN``), the
        link-loss action (hold / release) has been applied once more, and the listening
        socket is closed: a server serves once.
        """
        stop_event = stop_event or self._stopping
        arm_stop = threading.Event()
        arm_thread = threading.Thread(target=self.controller.run, args=(arm_stop,),
                                      name="dofbot-arm", daemon=True)
        arm_thread.start()
        policy_thread = None
        if self.policy is not None:
            policy_thread = threading.Thread(target=self.policy.run, args=(arm_stop,), name="dofbot-policy",
                                             daemon=True)
            policy_thread.start()
        host, port = self.address
        _log.info("serving %s on %s:%d (heartbeat %d ms, on timeout %s, auth %s, %s)", self.protocol, host,
                  port, int(self.heartbeat_s * 1000), self.controller.on_timeout,
                  "token" if self.token else "none", self._mode_line())
        try:
            while not (stop_event.is_set() or self._stopping.is_set()):
                try:
                    readable, _, _ = select.select([self._sock], [], [], poll_s)
                    if not readable:
                        continue
                    conn, peer = self._sock.accept()
                except OSError as exc:
                    _log.warning("accept failed: %s", exc)
                    time.sleep(poll_s)
                    continue
                self._start_session(conn, peer)
        finally:
            self._stopping.set()
            self._sock.close()
            with self._lock:
                threads = list(self._sessions.values())
            for thread in threads:
                thread.join(timeout=2.0 + RELEASE_WAIT_S)
            arm_stop.set()
            if policy_thread is not None:
                policy_thread.join(timeout=2.0)
            arm_thread.join(timeout=2.0)
            self.controller.final_action("server stopping")
            _log.info("stopped")

    def _mode_line(self):
        if self.policy is None:
            return "direct mode"
        goal = self.policy.goal
        return "policy mode at %.0f Hz, goal %s" % (
            self.policy.rate_hz, "none (waiting for GOAL)" if goal is None else ",".join("%.3f" % v for v in goal[0]))

    def _start_session(self, conn, peer):
        source = peer[0] if isinstance(peer, tuple) and peer else str(peer)
        evict = None
        with self._lock:
            if self.protocol == "v1":  # bound the handshakes: the newest connection wins a slot
                same = [c for c, src in self._handshakes.items() if src == source]
                if len(same) >= self.max_handshakes_per_source:
                    evict = (same[0], "handshakes from %s over %d" % (source, self.max_handshakes_per_source))
                elif len(self._handshakes) >= self.max_handshakes:
                    evict = (next(iter(self._handshakes)), "handshakes over %d" % self.max_handshakes)
                if evict is not None:
                    del self._handshakes[evict[0]]
                self._handshakes[conn] = source
            self.stats["connections"] += 1
            thread = threading.Thread(target=self._session, args=(conn, peer), name="dofbot-session", daemon=True)
            self._sessions[conn] = thread
        if evict is not None:
            self._evict(*evict)
        thread.start()

    def _evict(self, conn, reason):
        """Close another session's connection from this thread (its session thread then ends)."""
        with self._lock:
            if conn not in self._sessions:
                return  # its session has ended already
            self._evicted[conn] = reason
            self.stats["evicted"] += 1
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed

    def _session(self, conn, peer):
        reason, reply = "closed", None
        try:
            conn.settimeout(self.send_timeout_s)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _keepalive(conn)
            if self.protocol == "v1":
                reason = self._v1_session(conn)
            else:
                reason = self._legacy_session(conn)
        except _Close as close:
            reason, reply = str(close), close.reply
        except OSError as exc:
            reason = "socket error: %s" % exc
        except Exception:  # a bug must not take the server down; log it loudly
            _log.exception("session %s failed", _peer(peer))
            reason = "internal error"
        finally:
            with self._lock:
                reason = self._evicted.pop(conn, reason)
            self._release(conn, reason)  # hold first, then tell the client why
            if reply is not None and self.protocol == "v1":  # legacy clients get no replies
                self._try_send(conn, reply)
            try:
                conn.close()
            except OSError:
                pass
            _log.info("%s: session ended: %s", _peer(peer), reason)

    def _release(self, conn, reason):
        """Forget ``conn``; if it controlled the arm, hold (or release) it and only then free the slot."""
        with self._lock:
            self._handshakes.pop(conn, None)
            self._live.discard(conn)
            self._observers.discard(conn)
            controlling = self._controlling is conn
            if controlling:
                self._releasing = True
        if controlling:
            try:
                if self.policy is not None and self.policy.mode == P.ServerMode.POLICY:
                    # The policy drives the arm, not this client: it keeps going to its goal.
                    _log.info("controlling client gone (%s); the policy keeps driving", reason)
                else:
                    # Hold first, then free the slot: a new controller's WELCOME comes after the hold.
                    if not self.controller.link_lost("%s (controlling client)" % reason, wait_s=RELEASE_WAIT_S):
                        _log.warning("the arm thread did not confirm the hold in %.1f s", RELEASE_WAIT_S)
                    if self.policy is not None:
                        self.policy.end_takeover()
            finally:
                with self._lock:
                    self._controlling = None
                    self._releasing = False
                    self._slot_free.notify_all()
        with self._lock:
            self._sessions.pop(conn, None)
            self._evicted.pop(conn, None)

    def _claim(self, conn, role):
        """Open an authenticated session: None, or ``(code, reason)`` when it is refused.

        A controller waits (at most :data:`RELEASE_WAIT_S`) while the previous one's hold
        is in progress; in legacy mode it takes the slot over from a controller that has
        been silent for ``heartbeat_ms``.
        """
        takeover = None
        with self._lock:
            if self.protocol == "v1" and self._handshakes.pop(conn, None) is None:
                return P.ErrorCode.TOO_MANY_CONNECTIONS, "evicted during the handshake"
            if len(self._live) >= self.max_connections:
                return P.ErrorCode.TOO_MANY_CONNECTIONS, "too many connections"
            if role != P.Role.CONTROL:
                if len(self._observers) >= self.max_observers:
                    return P.ErrorCode.BUSY, "observer slots full"
                self._observers.add(conn)
                self._live.add(conn)
                return None
            if (self.protocol == "legacy" and self._controlling is not None and not self._releasing
                    and time.monotonic() - self._control_active_s >= self.heartbeat_s):
                takeover = self._controlling
        if takeover is not None:
            self._evict(takeover, "taken over by a new client after %d ms of silence" % int(self.heartbeat_s * 1000))
        with self._lock:
            deadline = time.monotonic() + RELEASE_WAIT_S
            while self._releasing or (takeover is not None and self._controlling is takeover):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._slot_free.wait(remaining)
            if self._controlling is not None or self._releasing:
                return P.ErrorCode.BUSY, "another client controls the arm"
            self._controlling = conn
            self._control_active_s = time.monotonic()
            self._live.add(conn)
            return None

    def _control_frame(self):
        """Note a frame from the controlling client (for the hold-latency figures and legacy takeover)."""
        now = time.monotonic()
        self.last_control_frame_s = now
        with self._lock:
            self._control_active_s = now

    def _try_send(self, conn, msg):
        try:
            conn.sendall(P.encode(msg))
        except OSError:
            pass

    def _recv(self, conn, deadline):
        """Wait for data until ``deadline``: the bytes, b"" on EOF, None on timeout.

        Raises:
            _Close: the server is stopping.
        """
        while not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            readable, _, _ = select.select([conn], [], [], min(remaining, 0.1))
            if readable:
                return conn.recv(4096)
        raise _Close("server stopping", P.Error(P.ErrorCode.SHUTDOWN, "server stopping"))

    # -- v1 ---------------------------------------------------------------------------

    def _v1_session(self, conn):
        decoder = P.FrameDecoder()
        state, role, nonce = "hello", None, None
        deadline = time.monotonic() + self.handshake_timeout_s
        while True:
            data = self._recv(conn, deadline)
            if data is None:
                self.stats["timeouts"] += 1
                if state == "live":
                    why = "no frame for %d ms" % int(self.heartbeat_s * 1000)
                    raise _Close("heartbeat timeout", P.Error(P.ErrorCode.TIMEOUT, why))
                raise _Close("handshake timeout", P.Error(P.ErrorCode.TIMEOUT, "handshake not finished in time"))
            if not data:
                return "client closed the connection"
            try:
                messages = decoder.feed(data)
            except P.ProtocolError as exc:
                self.stats["protocol_errors"] += 1
                reply = (P.Refused if state != "live" else P.Error)(exc.code, str(exc))
                raise _Close("protocol error: %s" % exc, reply)
            for msg in messages:
                self.stats["frames"] += 1
                if state == "hello":
                    if not isinstance(msg, P.Hello):
                        raise _Close("expected HELLO", P.Error(P.ErrorCode.UNEXPECTED,
                                                               "expected HELLO, got %s" % type(msg).__name__))
                    role = msg.role
                    if self.token is not None:
                        nonce = P.new_nonce()
                        conn.sendall(P.encode(P.Challenge(nonce)))
                        state = "auth"
                        continue
                elif state == "auth":
                    if not isinstance(msg, P.Auth):
                        raise _Close("expected AUTH", P.Error(P.ErrorCode.UNEXPECTED,
                                                              "expected AUTH, got %s" % type(msg).__name__))
                    if not P.verify_mac(self.token, nonce, role, msg.mac):
                        self.stats["refused"] += 1
                        raise _Close("authentication failed", P.Refused(P.ErrorCode.AUTH, "authentication failed"))
                else:
                    self._v1_live(conn, role, msg)
                    deadline = time.monotonic() + self.heartbeat_s
                    if role == P.Role.CONTROL:
                        self._control_frame()
                    continue
                # HELLO without token, or AUTH verified: open the session.
                refused = self._claim(conn, role)
                if refused is not None:
                    self.stats["refused"] += 1
                    raise _Close("refused: %s" % refused[1], P.Refused(*refused))
                conn.sendall(P.encode(self._welcome))
                state = "live"
                deadline = time.monotonic() + self.heartbeat_s

    def _v1_live(self, conn, role, msg):
        name = type(msg).__name__.upper()
        if isinstance(msg, P.Heartbeat):
            flags, seq = P.ACK_HEARTBEAT, msg.seq
        elif not isinstance(msg, (P.Command, P.Goal, P.Mode)):
            raise _Close("unexpected %s" % name, P.Error(P.ErrorCode.UNEXPECTED, "unexpected %s in a session" % name))
        elif role != P.Role.CONTROL:
            raise _Close("observer sent %s" % name,
                         P.Error(P.ErrorCode.UNEXPECTED, "observers cannot send %s (connect as controller)" % name))
        elif isinstance(msg, P.Command):
            if self.policy is not None and self.policy.mode == P.ServerMode.POLICY:
                raise _Close("COMMAND refused in policy mode", P.Error(
                    P.ErrorCode.POLICY_MODE, "policy mode: the server's policy drives the arm; send GOAL, "
                                             "or MODE direct to take over first"))
            self.stats["commands"] += 1
            flags, _ = self.controller.command(msg.q, msg.move_ms)
            seq = msg.seq
        else:
            flags, seq = self._v1_policy_frame(msg), msg.seq
        status = self.controller.status()
        flags |= self.controller.ack_flags(status)
        if self.policy is not None and self.policy.mode == P.ServerMode.POLICY:
            flags |= P.ACK_POLICY
        conn.sendall(P.encode(P.Ack(seq, flags, status.readback_age_ms, status.target, status.applied,
                                    status.readback)))

    def _v1_policy_frame(self, msg):
        """GOAL or MODE from the controlling client; returns ACK flags (``ACK_REJECTED`` for a bad goal)."""
        if self.policy is None:
            if isinstance(msg, P.Mode) and msg.mode == P.ServerMode.DIRECT:
                return 0  # already direct: nothing to take over
            raise _Close("%s without a policy" % type(msg).__name__.upper(), P.Error(
                P.ErrorCode.NO_POLICY, "this server runs no policy (start it with --policy policy.npz)"))
        if isinstance(msg, P.Goal):
            self.stats["goals"] += 1
            try:
                self.policy.set_goal(msg.pos, msg.quat)
            except ValueError as exc:
                _log.warning("goal rejected: %s", exc)
                return P.ACK_REJECTED
            return 0
        self.stats["mode_changes"] += 1
        if msg.mode == P.ServerMode.DIRECT:
            self.policy.take_over("the controlling client took over")
        else:
            self.policy.resume()
        return 0

    # -- legacy -----------------------------------------------------------------------

    def _legacy_session(self, conn):
        refused = self._claim(conn, P.Role.CONTROL)
        if refused is not None:
            self.stats["refused"] += 1
            return "refused: %s" % refused[1]
        decoder = P.LegacyDecoder()
        following = False
        deadline = time.monotonic() + self.heartbeat_s
        while True:
            data = self._recv(conn, deadline)
            if data is None:  # silence: hold, but keep the connection until another client takes over
                if following:
                    self.stats["timeouts"] += 1
                    self.controller.link_lost("legacy client silent for %d ms" % int(self.heartbeat_s * 1000))
                    following = False
                deadline = time.monotonic() + self.heartbeat_s
                continue
            if not data:
                return "client closed the connection"
            for servo in decoder.feed(data):
                self.stats["frames"] += 1
                try:
                    q = robot.servo_deg_to_sim(servo)
                except ValueError:
                    self.stats["protocol_errors"] += 1
                    continue
                self.stats["commands"] += 1
                self.controller.command(q, self._legacy_move_ms)
                following = True
                deadline = time.monotonic() + self.heartbeat_s
                self._control_frame()


def _keepalive(conn):
    """TCP keepalive on ``conn``: a peer that vanished (pulled cable) is noticed within about 25 s."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in zip(("TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT"), KEEPALIVE):
        if hasattr(socket, name):  # Linux; other systems keep their defaults
            conn.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


def _peer(peer):
    try:
        return "%s:%d" % (peer[0], peer[1])
    except (TypeError, IndexError):
        return str(peer)
