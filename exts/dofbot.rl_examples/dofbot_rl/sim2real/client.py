"""The simulator side of the sim-to-real link: a non-blocking client on its own thread.

The sim loop calls :meth:`Sim2RealClient.send_joint_positions` once per control step; the
call only stores the latest target. A worker thread connects, authenticates, sends the
latest target at most ``rate_hz`` times per second, heartbeats when idle, measures the
round-trip time from the server's ACKs, keeps the servo read-back, and reconnects with
exponential backoff when the link drops. Standard library only, Python 3.6 compatible.

Typical use (the top-level ``sim2real:`` block of config/config.yaml)::

    client = Sim2RealClient.from_config(cfg["sim2real"]).start()
    ...
    client.send_joint_positions(dof_pos[env_id, :6].tolist())   # rad, task order
    client.state, client.latency_ms, client.readback()
    ...
    client.stop()

Against a server in policy mode (``dofbot-rl serve --policy policy.npz``, protocol v1.1)
the client sends goals instead, and the server's policy moves the arm::

    client = Sim2RealClient(host="dofbot.local", mode="goal").start()
    client.send_goal(goal_pos[env_id].tolist())                  # m, robot base frame
    client.server_mode                                           # "policy", "direct" or None
"""

import collections
import logging
import math
import select
import socket
import threading
import time
import typing

from .. import robot
from . import protocol as P
from dofbot_rl.errors import DofbotRlError

_log = logging.getLogger(__name__)

DISCONNECTED = "disconnected"
CONNECTING = "connecting"
CONNECTED = "connected"
DEGRADED = "degraded"
#: Link states reported by :attr:`Sim2RealClient.state`.
STATES = (DISCONNECTED, CONNECTING, CONNECTED, DEGRADED)
#: Client modes: drive the arm with joint targets (and goals), observe the read-back only,
#: or send goals to a server's policy (joint targets refused here).
MODES = ("sim2real", "real2sim", "goal")


class Sim2RealError(DofbotRlError, RuntimeError):
    """The link failed (connection, protocol or a server ERROR)."""


class ServerError(Sim2RealError):
    """The server ended the session with an ERROR frame: ``code`` is a ``protocol.ErrorCode`` value."""

    _HINTS = {
        P.ErrorCode.POLICY_MODE: " (client: use mode 'goal' and send_goal(), or takeover=True to send joints)",
        P.ErrorCode.NO_POLICY: " (start the server with --policy policy.npz to send goals)",
    }

    def __init__(self, code, reason):
        Sim2RealError.__init__(self, "server error %s: %s%s" % (P.code_name(code), reason,
                                                               self._HINTS.get(code, "")))
        self.code = code
        self.reason = reason


class LinkRefused(Sim2RealError):
    """The server refused the session: ``code`` is a ``protocol.ErrorCode`` value."""

    def __init__(self, code, reason):
        Sim2RealError.__init__(self, "refused by server (%s): %s" % (P.code_name(code), reason))
        self.code = code
        self.reason = reason


#: Slack (rad) around the joint limits ``robot.JOINT_LIMITS_*`` for angles a server reports (1 deg).
ANGLE_TOLERANCE_RAD = math.radians(1.0)


def check_server_angles(values, what, allow_nan=True):
    """Check 6 angles (rad) received from a server: NaN (when allowed) or within the joint limits.

    Args:
        values: the 6 angles of a WELCOME or ACK field (task order).
        what: names the field in the error.
        allow_nan: NaN marks a failed read or no target (ACK); WELCOME limits must be numbers.

    Raises:
        Sim2RealError: an infinite, huge or out-of-range angle (the reply is not used).
    """
    for v, lo, hi, name in zip(values, robot.JOINT_LIMITS_LOWER, robot.JOINT_LIMITS_UPPER, robot.JOINT_NAMES):
        if allow_nan and v != v:
            continue
        if not lo - ANGLE_TOLERANCE_RAD <= v <= hi + ANGLE_TOLERANCE_RAD:  # also false for NaN
            raise Sim2RealError("the server sent %s %s = %r rad, outside the joint limits [%.4f, %.4f]: "
                                "not a working Dofbot server" % (what, name, v, lo, hi))


def _check_welcome(msg):
    """Raise :class:`Sim2RealError` unless a WELCOME's numbers are usable (limits, heartbeat, rate)."""
    check_server_angles(msg.lower, "lower limit", allow_nan=False)
    check_server_angles(msg.upper, "upper limit", allow_nan=False)
    if any(lo > hi for lo, hi in zip(msg.lower, msg.upper)):
        raise Sim2RealError("the server sent joint limits with lower > upper: %r, %r" % (msg.lower, msg.upper))
    if msg.heartbeat_ms < 10 or msg.max_rate_hz < 1:
        raise Sim2RealError("the server sent heartbeat %d ms and rate %d Hz (need >= 10 ms and >= 1 Hz)"
                            % (msg.heartbeat_ms, msg.max_rate_hz))


def _check_ack(msg):
    """Raise :class:`Sim2RealError` unless every angle of an ACK is NaN or within the joint limits."""
    check_server_angles(msg.target, "target")
    check_server_angles(msg.applied, "applied pose")
    check_server_angles(msg.readback, "read-back")


class Readback(typing.NamedTuple):
    """The latest servo state reported by the server (angles in rad, task order)."""

    q: tuple  #: servo read-back (rad, NaN where a read failed)
    age_s: float  #: age of the oldest servo reading now (s): server age + time since the ACK
    flags: int  #: ``protocol.ACK_*`` bits of that ACK
    target: tuple  #: the clamped target the server follows (rad, NaN when holding)
    applied: tuple  #: last pose the server wrote to the servos (rad)


def validate_settings(host, port, protocol, has_token, rate_hz, mode, heartbeat_ms, takeover=False):
    """Check link settings (the ``sim2real`` config section and the client's arguments alike).

    Raises:
        ValueError: naming the bad or conflicting setting.
    """
    if not math.isfinite(rate_hz):
        raise ValueError("sim2real.rate_hz must be a finite number, got %r" % (rate_hz,))
    if not host:
        raise ValueError("sim2real.host must be a host name or address, got %r" % (host,))
    if not 1 <= port <= 65535:
        raise ValueError("sim2real.port must be in 1..65535, got %r" % (port,))
    if protocol not in ("v1", "legacy"):
        raise ValueError("sim2real.protocol must be 'v1' or 'legacy', got %r" % (protocol,))
    if mode not in MODES:
        raise ValueError("sim2real.mode must be 'sim2real', 'real2sim' or 'goal', got %r" % (mode,))
    if protocol == "legacy" and mode == "real2sim":
        raise ValueError("sim2real.mode real2sim needs protocol v1 (legacy servers send nothing back)")
    if protocol == "legacy" and mode == "goal":
        raise ValueError("sim2real.mode goal needs protocol v1 (legacy servers run no policy)")
    if takeover and mode != "sim2real":
        raise ValueError("sim2real.takeover needs mode sim2real (only joint targets take the arm over), "
                         "got mode %r" % (mode,))
    if takeover and protocol == "legacy":
        raise ValueError("sim2real.takeover needs protocol v1 (legacy servers run no policy)")
    if protocol == "legacy" and has_token:
        raise ValueError("sim2real.token_file needs protocol v1 (legacy has no authentication)")
    if not 0 < rate_hz <= 1000:
        raise ValueError("sim2real.rate_hz must be in (0, 1000], got %r" % (rate_hz,))
    if not 10 <= heartbeat_ms <= 0xFFFF:
        raise ValueError("sim2real.heartbeat_ms must be in 10..65535, got %r" % (heartbeat_ms,))


class Sim2RealClient(object):
    """Streams one robot's joint targets to a Dofbot server without blocking the caller.

    Args:
        host, port: the server (the Dofbot's Jetson).
        protocol: ``"v1"`` (acknowledged, read-back, latency) or ``"legacy"`` (the
            reference's 24-byte servo-degree frames; gripper always 90 deg as in the
            reference; targets are clamped to the safe limits here because a reference
            server does not clamp).
        token: shared secret (bytes) for servers started with ``--token-file``; v1 only.
        fail_quietly: True: link errors are logged and the client keeps reconnecting
            with backoff. False (the reference's default): the first link error stops
            the client and is raised by the next :meth:`send_joint_positions` /
            :meth:`check` call.
        rate_hz: most frames per second sent (Hz); the latest target wins.
        mode: ``"sim2real"`` (drive the arm with joint targets), ``"real2sim"`` (observe
            only: poll the read-back at ``rate_hz``, see :meth:`readback`) or ``"goal"``
            (send goals to a server in policy mode, see :meth:`send_goal`, and poll the
            read-back at ``rate_hz``; joint targets are refused). ``sim2real`` and
            ``goal`` take the server's control slot.
        heartbeat_ms: the client keeps the server's watchdog fed at a quarter of the
            smaller of this and the server's timeout, and reports ``degraded`` when
            replies are later than half of it (ms).
        move_ms: move time sent with each command (ms); default two send periods.
        name: client name sent in HELLO (shown in the server log).
        connect_timeout_s: TCP connect and handshake timeout (s).
        backoff_initial_s, backoff_max_s: reconnect delay, doubling from the first to
            the second (s).
        takeover: mode ``"sim2real"`` against a server in policy mode: True sends MODE
            ``direct`` after every (re)connect, before any joint target, so the targets
            drive the arm (the policy pauses; when this client leaves, the server holds
            and its policy waits for a new goal). False: joint targets sent while the
            server's policy drives are refused with ERROR ``POLICY_MODE``.

    Raises:
        ValueError: a bad argument (named).
    """

    def __init__(self, host="127.0.0.1", port=P.DEFAULT_PORT, protocol="v1", token=None, fail_quietly=False,
                 rate_hz=60.0, mode="sim2real", heartbeat_ms=200, move_ms=None, name="dofbot-rl",
                 connect_timeout_s=1.0, backoff_initial_s=0.1, backoff_max_s=5.0, takeover=False):
        validate_settings(host, int(port), protocol, token is not None, float(rate_hz), mode, int(heartbeat_ms),
                  bool(takeover))
        if token is not None and not isinstance(token, bytes):
            raise ValueError("token must be bytes, got %r" % (type(token).__name__,))
        if move_ms is None:
            move_ms = int(round(2000.0 / rate_hz))
        if not 0 <= int(move_ms) <= P.MAX_MOVE_MS:
            raise ValueError("move_ms must be in 0..65535, got %r" % (move_ms,))
        if not 0 < backoff_initial_s <= backoff_max_s:
            raise ValueError("need 0 < backoff_initial_s <= backoff_max_s, got %r, %r"
                             % (backoff_initial_s, backoff_max_s))
        self.host, self.port, self.protocol, self.mode = host, int(port), protocol, mode
        self.fail_quietly = bool(fail_quietly)
        self.rate_hz = float(rate_hz)
        self.heartbeat_ms = int(heartbeat_ms)
        self.move_ms = int(move_ms)
        self.name = name
        self.connect_timeout_s = float(connect_timeout_s)
        self.backoff_initial_s, self.backoff_max_s = float(backoff_initial_s), float(backoff_max_s)
        self.takeover = bool(takeover)
        self._token = token
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self._state = DISCONNECTED
        self._state_changed = threading.Condition(self._lock)
        self._target = None
        self._target_version = 0
        self._goal = None  # (pos, quat or None)
        #: P.ServerMode value sent once per connection, before targets and goals, or None.
        self._mode_request = P.ServerMode.DIRECT if takeover else None
        self._server_minor = None  # minor protocol revision of the connected server
        self._server_mode = None  # "policy" | "direct" from this connection's last ACK
        self._error = None
        self._latency_ms = None
        self._ack = None  # (Ack, receive time)
        self._stats = {"frames_sent": 0, "commands_sent": 0, "goals_sent": 0, "acks": 0, "connects": 0,
                       "clamped_acks": 0, "rejected_acks": 0, "latency_ms_sum": 0.0, "latency_ms_max": 0.0}

    @classmethod
    def from_config(cls, cfg):
        """Build a client (not started) from the ``sim2real`` config section.

        Args:
            cfg: the typed section (``dofbot_rl.config.Sim2RealSection``, already validated at
                load) or a dict with some of its keys (the others take the defaults). ``enabled``
                is not looked at here: the caller decides whether to build one.

        Raises:
            ValueError: a bad value, or an unreadable ``token_file``.
        """
        get = cfg.get if hasattr(cfg, "get") else lambda key, default: getattr(cfg, key, default)
        token_file = get("token_file", None)
        token = P.read_token_file(token_file, allow_readable=True) if token_file else None
        return cls(host=get("host", "127.0.0.1"), port=get("port", P.DEFAULT_PORT), protocol=get("protocol", "v1"),
                   token=token, fail_quietly=get("fail_quietly", False), rate_hz=get("rate_hz", 60.0),
                   mode=get("mode", "sim2real"), heartbeat_ms=get("heartbeat_ms", 200),
                   takeover=get("takeover", False))

    # -- lifecycle --------------------------------------------------------------------

    def start(self):
        """Start the worker thread (returns at once) and clear any stored error. Returns ``self``.

        Raises:
            RuntimeError: already started.
        """
        if self._thread is not None:
            raise RuntimeError("Sim2RealClient already started")
        self._stop.clear()
        self._error = None
        self._thread = threading.Thread(target=self._run, name="sim2real-client", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s=2.0):
        """Close the link and join the worker (waits at most ``timeout_s`` s).

        The server sees the connection close and holds (or releases) the arm.
        """
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- the caller's side (never blocks on the network) ------------------------------

    def send_joint_positions(self, q):
        """Offer the latest joint targets; the worker sends the newest at its own rate.

        Args:
            q: 6 joint angles (rad, task order: ``robot.JOINT_NAMES``); a list, tuple or
                a CPU tensor (each element goes through ``float``).

        Raises:
            ValueError: not 6 finite numbers.
            RuntimeError: the client is in ``real2sim`` mode.
            Sim2RealError: ``fail_quietly`` is False and the link has failed.
        """
        self.check()
        if self.mode != "sim2real":
            raise RuntimeError("send_joint_positions() needs mode 'sim2real', this client is in %r%s" % (
                self.mode, " (use send_goal)" if self.mode == "goal" else ""))
        vals = P.as_floats(q, what="joint angles (rad)")
        with self._lock:
            self._target = vals
            self._target_version += 1

    def send_goal(self, xyz, quat=None):
        """Offer a goal for the server's policy (protocol v1.1, server in policy mode).

        The worker sends it once (and again after a reconnect); calling again with the
        same goal sends nothing new. The server answers ERROR ``NO_POLICY`` when it runs
        no policy; a v1.0 server cannot take goals (a link error, see ``fail_quietly``).

        Args:
            xyz: goal position, 3 numbers (m, robot base frame: the frame of
                ``robot.fingertip_position``; the task's ``goal_pos`` of the env).
            quat: goal orientation (w, x, y, z) or None (identity; the policy was never
                rewarded for orientation).

        Raises:
            ValueError: not 3 finite numbers, or a quaternion that is not 4 finite
                numbers with a non-zero norm.
            RuntimeError: the client is in ``real2sim`` mode (observers cannot send goals)
                or speaks the legacy protocol.
            Sim2RealError: ``fail_quietly`` is False and the link has failed.
        """
        self.check()
        if self.mode == "real2sim":
            raise RuntimeError("send_goal() needs mode 'goal' or 'sim2real', this client is in 'real2sim'")
        if self.protocol != "v1":
            raise RuntimeError("send_goal() needs protocol v1 (legacy servers run no policy)")
        goal = P.check_goal(xyz, quat)
        with self._lock:
            self._goal = goal

    def request_mode(self, mode):
        """Ask a v1.1 server to switch who drives the arm: ``"direct"`` (take over) or ``"policy"``.

        Sent once per connection, before any joint target or goal. ``takeover=True`` is
        ``request_mode("direct")`` at start. Against a v1.0 server ``"direct"`` is a no-op
        (it has no policy mode) and ``"policy"`` a link error.

        Raises:
            ValueError: another mode name.
            RuntimeError: the client is in ``real2sim`` mode or speaks the legacy protocol.
        """
        codes = {m.label: m for m in P.ServerMode}
        if mode not in codes:
            raise ValueError("mode must be 'direct' or 'policy', got %r" % (mode,))
        if self.mode == "real2sim" or self.protocol != "v1":
            raise RuntimeError("request_mode() needs a controlling v1 client, this one is %s in mode %r"
                               % (self.protocol, self.mode))
        with self._lock:
            self._mode_request = codes[mode]

    @property
    def server_mode(self):
        """``"policy"`` while the server's policy drives the arm (ACK flag ``POLICY``), else ``"direct"``.

        None before the first ACK of a connection, and for the legacy protocol.
        """
        return self._server_mode

    @property
    def server_minor(self):
        """Minor protocol revision of the connected v1 server (0: no policy mode), None when not connected."""
        return self._server_minor

    def check(self):
        """Raise the stored link error when ``fail_quietly`` is False (else do nothing).

        Raises:
            Sim2RealError: the error that stopped the client.
        """
        if self._error is not None and not self.fail_quietly:
            raise self._error

    @property
    def state(self):
        """Link state: ``"disconnected"``, ``"connecting"``, ``"connected"`` or ``"degraded"``."""
        return self._state

    @property
    def latency_ms(self):
        """Round-trip time of the last acknowledged frame (ms), None before the first ACK."""
        return self._latency_ms

    @property
    def last_error(self):
        """The last link error (an exception) or None."""
        return self._error

    def readback(self):
        """The latest servo read-back as a :class:`Readback`, or None before the first ACK.

        Every angle in it is NaN (a failed read, or no target) or within the joint limits
        ``robot.JOINT_LIMITS_*``: a reply with anything else ends the link (see :meth:`check`).

        Raises:
            Sim2RealError: ``fail_quietly`` is False and the link has failed.
        """
        self.check()
        with self._lock:
            if self._ack is None:
                return None
            ack, received = self._ack
        age = ack.readback_age_ms / 1000.0 + (time.monotonic() - received)
        return Readback(ack.readback, age, ack.flags, ack.target, ack.applied)

    def stats(self):
        """Counters: frames_sent, commands_sent, goals_sent, acks, connects, clamped_acks, rejected_acks,
        latency_ms_mean/max."""
        with self._lock:
            out = dict(self._stats)
        acks = out.pop("latency_ms_sum")
        out["latency_ms_mean"] = acks / out["acks"] if out["acks"] else None
        return out

    def wait_for_state(self, states, timeout_s):
        """Block until :attr:`state` is one of ``states`` (a string or a collection).

        For tests and command-line tools, never for the sim loop. Returns True when reached.
        """
        states = (states,) if isinstance(states, str) else tuple(states)
        deadline = time.monotonic() + timeout_s
        with self._state_changed:
            while self._state not in states:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._state_changed.wait(remaining)
        return True

    # -- worker -----------------------------------------------------------------------

    def _set_state(self, state):
        with self._state_changed:
            if state != self._state:
                # Connects and drops at INFO; connect attempts and degraded flapping at DEBUG.
                up = (CONNECTED, DEGRADED)
                level = logging.INFO if (state in up) != (self._state in up) else logging.DEBUG
                _log.log(level, "sim2real link %s:%d: %s -> %s", self.host, self.port, self._state, state)
                self._state = state
                self._state_changed.notify_all()

    def _run(self):
        backoff = self.backoff_initial_s
        last_logged = None
        while not self._stop.is_set():
            self._set_state(CONNECTING)
            sock = None
            error = None
            try:
                sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout_s)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.protocol == "v1":
                    decoder = P.FrameDecoder()
                    welcome = self._handshake(sock, decoder)
                    self._server_minor = P.split_version(welcome.version)[1]
                    with self._lock:
                        self._stats["connects"] += 1
                    self._set_state(CONNECTED)
                    backoff = self.backoff_initial_s
                    self._stream_v1(sock, decoder, welcome)
                else:
                    with self._lock:
                        self._stats["connects"] += 1
                    self._set_state(CONNECTED)
                    backoff = self.backoff_initial_s
                    self._stream_legacy(sock)
            except (OSError, P.ProtocolError, Sim2RealError) as exc:
                error = exc
            except Exception as exc:  # a bug: report it like a link failure, never die silently
                _log.exception("sim2real client worker failed")
                error = Sim2RealError("sim2real client error: %r" % (exc,))
            finally:
                if sock is not None:
                    sock.close()
                self._server_minor = self._server_mode = None
            self._set_state(DISCONNECTED)
            if self._stop.is_set():
                break
            if error is None:
                continue
            if not isinstance(error, Sim2RealError):
                error = Sim2RealError("sim2real link to %s:%d failed: %s" % (self.host, self.port, error))
            self._error = error
            if not self.fail_quietly:
                _log.error("%s (fail_quietly is off: the client stops)", error)
                break
            level = logging.WARNING if str(error) != last_logged else logging.DEBUG
            _log.log(level, "%s; retrying in %.1f s", error, backoff)
            last_logged = str(error)
            self._stop.wait(backoff)
            backoff = min(backoff * 2.0, self.backoff_max_s)

    def _read_messages(self, sock, decoder, timeout_s):
        readable, _, _ = select.select([sock], [], [], max(timeout_s, 0.0))
        if not readable:
            return None
        data = sock.recv(65536)
        if not data:
            raise Sim2RealError("server %s:%d closed the connection" % (self.host, self.port))
        return decoder.feed(data)

    def _handshake(self, sock, decoder):
        role = P.Role.OBSERVE if self.mode == "real2sim" else P.Role.CONTROL
        sock.settimeout(self.connect_timeout_s)
        sock.sendall(P.encode(P.Hello(P.PROTOCOL_VERSION, role, self.name)))
        deadline = time.monotonic() + self.connect_timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._stop.is_set():
                raise Sim2RealError("no answer to HELLO from %s:%d" % (self.host, self.port))
            for msg in self._read_messages(sock, decoder, remaining) or ():
                if isinstance(msg, P.Challenge):
                    if self._token is None:
                        raise LinkRefused(P.ErrorCode.AUTH, "the server requires a token (set sim2real.token_file)")
                    sock.sendall(P.encode(P.Auth(P.auth_mac(self._token, msg.nonce, role))))
                elif isinstance(msg, P.Welcome):
                    _check_welcome(msg)
                    return msg
                elif isinstance(msg, P.Refused):
                    raise LinkRefused(msg.code, msg.reason)
                elif isinstance(msg, P.Error):
                    raise ServerError(msg.code, msg.reason)
                else:
                    raise Sim2RealError("unexpected %s during the handshake" % type(msg).__name__)

    def _stream_v1(self, sock, decoder, welcome):
        hb_s = min(self.heartbeat_ms, welcome.heartbeat_ms) / 1000.0
        keepalive_s, late_s, dead_s = hb_s / 4.0, hb_s / 2.0, 4.0 * hb_s
        period = 1.0 / self.rate_hz
        sock.settimeout(hb_s)  # a sendall that cannot finish in time means the link is gone
        outstanding = collections.OrderedDict()  # seq -> send time
        seq, sent_version, last_send = 0, 0, 0.0
        sent_mode, sent_goal = None, None  # what this connection has told the server
        next_tick = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_tick:
                next_tick += period
                if next_tick < now:
                    next_tick = now + period
                with self._lock:
                    target, version = self._target, self._target_version
                    goal, mode_request = self._goal, self._mode_request
                msg = None
                if mode_request is not None and mode_request != sent_mode:
                    sent_mode = mode_request
                    if self._server_minor >= 1:
                        msg = P.Mode(seq, mode_request)
                    elif mode_request == P.ServerMode.POLICY:
                        raise Sim2RealError("server %s:%d speaks protocol v1.0 and has no policy mode"
                                            % (self.host, self.port))
                    # else: a v1.0 server has no policy to take the arm from
                elif goal is not None and goal != sent_goal:
                    sent_goal = goal
                    if self._server_minor < 1:
                        with self._lock:
                            if self._goal == goal:
                                self._goal = None  # do not offer it again on the next connection
                        raise Sim2RealError("server %s:%d speaks protocol v1.0: it takes no goals (update it and "
                                            "start it with --policy)" % (self.host, self.port))
                    msg = P.Goal(seq, goal[0], goal[1])
                elif self.mode == "sim2real" and target is not None and version != sent_version:
                    msg, sent_version = P.Command(seq, self.move_ms, target), version
                elif self.mode != "sim2real" or now - last_send >= keepalive_s:
                    msg = P.Heartbeat(seq)  # observers and goal senders poll the read-back every tick
                if msg is not None:
                    sock.sendall(P.encode(msg))
                    outstanding[seq] = now
                    if len(outstanding) > 1024:
                        outstanding.popitem(last=False)
                    seq, last_send = (seq + 1) & 0xFFFFFFFF, now
                    with self._lock:
                        self._stats["frames_sent"] += 1
                        self._stats["commands_sent"] += isinstance(msg, P.Command)
                        self._stats["goals_sent"] += isinstance(msg, P.Goal)
            if outstanding:
                oldest = next(iter(outstanding.values()))
                if now - oldest > dead_s:
                    raise Sim2RealError("no reply from %s:%d for %d ms" % (self.host, self.port, (now - oldest) * 1000))
            late = (outstanding and now - next(iter(outstanding.values())) > late_s) or (
                self._latency_ms is not None and self._latency_ms > late_s * 1000.0)
            self._set_state(DEGRADED if late else CONNECTED)
            for msg in self._read_messages(sock, decoder, next_tick - time.monotonic()) or ():
                self._handle_reply(msg, outstanding)

    def _handle_reply(self, msg, outstanding):
        if isinstance(msg, P.Ack):
            _check_ack(msg)  # before anything of it is kept: readback() never returns a bad number
            now = time.monotonic()
            sent = None
            if msg.seq in outstanding:
                # Replies come in order: frames sent before this one are answered or lost.
                while sent is None:
                    seq, t_sent = outstanding.popitem(last=False)
                    if seq == msg.seq:
                        sent = t_sent
            self._server_mode = "policy" if msg.flags & P.ACK_POLICY else "direct"
            with self._lock:
                self._ack = (msg, now)
                self._stats["acks"] += 1
                self._stats["clamped_acks"] += bool(msg.flags & P.ACK_CLAMPED)
                self._stats["rejected_acks"] += bool(msg.flags & P.ACK_REJECTED)
                if sent is not None:
                    latency = (now - sent) * 1000.0
                    self._latency_ms = latency
                    self._stats["latency_ms_sum"] += latency
                    self._stats["latency_ms_max"] = max(self._stats["latency_ms_max"], latency)
        elif isinstance(msg, P.Error):
            raise ServerError(msg.code, msg.reason)
        elif isinstance(msg, P.Refused):
            raise LinkRefused(msg.code, msg.reason)
        else:
            raise Sim2RealError("unexpected %s from the server" % type(msg).__name__)

    def _stream_legacy(self, sock):
        period = 1.0 / self.rate_hz
        sock.settimeout(max(self.heartbeat_ms / 1000.0, period))
        next_tick = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_tick:
                next_tick += period
                if next_tick < now:
                    next_tick = now + period
                with self._lock:
                    target = self._target
                if target is not None:
                    servo = robot.sim_to_servo_deg(robot.clamp_to_limits(target))
                    servo[5] = P.LEGACY_GRIPPER_DEG  # the reference always sent 90 for the gripper
                    sock.sendall(P.encode_legacy(servo))
                    with self._lock:
                        self._stats["frames_sent"] += 1
                        self._stats["commands_sent"] += 1
            readable, _, _ = select.select([sock], [], [], max(next_tick - time.monotonic(), 0.0))
            if readable and not sock.recv(4096):  # a legacy server never writes: only EOF matters
                raise Sim2RealError("server %s:%d closed the connection" % (self.host, self.port))
