"""Wire protocols of the sim-to-real link: ``v1`` (default) and ``legacy``.

Standard library only, Python 3.6 compatible: the server that imports this module runs
on the Dofbot's Jetson Nano (JetPack 4). Nothing here is pickled or evaluated; every
byte received is parsed with :mod:`struct` against a fixed layout and a size bound.

v1 frames
---------
Every frame is an 8-byte header followed by a payload; all integers and floats are
**little-endian** (explicit ``<`` in every :class:`struct.Struct`)::

    offset size field
    0      2    magic   b"DR"
    2      1    version FRAME_VERSION (1)
    3      1    type    MsgType
    4      4    length  payload bytes, uint32, at most MAX_PAYLOAD (512)

Payload layouts (see ``docs/sim2real.md`` for the table):

=========  ========================================================================
HELLO      u16 protocol version, u8 role (0 control, 1 observe), utf-8 name (<= 64 B)
CHALLENGE  32-byte random nonce
AUTH       32-byte HMAC-SHA256(token, AUTH_CONTEXT + nonce + role byte)
WELCOME    u16 version (major + 256 minor), u16 heartbeat timeout (ms), u16 max command
           rate (Hz), 6 f64 lower limits (rad), 6 f64 upper limits (rad) the server clamps to
REFUSED    u16 code, utf-8 reason (<= 200 B); the server closes afterwards
COMMAND    u32 seq, u16 move time (ms), 6 f64 joint angles (rad, task order)
ACK        u32 seq, u8 flags, u16 read-back age (ms), 6 f64 target (rad),
           6 f64 last pose written (rad), 6 f64 servo read-back (rad, NaN = failed)
HEARTBEAT  u32 seq (answered with an ACK whose ``ACK_HEARTBEAT`` flag is set)
ERROR      u16 code, utf-8 reason (<= 200 B); the server closes afterwards
GOAL       u32 seq, u8 flags (bit 0: quaternion given), 3 f64 goal position (m, robot
           base frame), 4 f64 goal quaternion (w, x, y, z); v1.1, answered with an ACK
MODE       u32 seq, u8 mode (0 policy, 1 direct); v1.1, answered with an ACK
=========  ========================================================================

Minor revisions
---------------
HELLO always names version 1 (the major version). The server announces its minor
revision in WELCOME's version field, ``PROTOCOL_VERSION + 256 * minor``; v1.0 clients
ignore that field, so they keep working with newer servers.

* v1.0: the frames above up to ERROR.
* v1.1 (:data:`PROTOCOL_MINOR`): policy mode. GOAL and MODE frames, the ``ACK_POLICY``
  flag, error codes ``POLICY_MODE`` and ``NO_POLICY``. A v1.0 server answers a GOAL or
  MODE frame with ERROR ``BAD_FRAME`` (unknown type), so a client checks the minor
  revision (:func:`split_version`) before sending one.

legacy frames
-------------
Byte-compatible with the reference server: exactly 24 bytes, six IEEE-754 float32 servo
angles (degrees, servos 1-6), no header, no reply. The reference packed them in the
machine's native byte order; every machine involved (Jetson Nano's ARM64 in its default
little-endian mode, x86-64 PCs) is little-endian, so this module writes ``<6f`` explicitly
and stays byte-identical with the reference while no longer depending on the host.
"""

import hashlib
import hmac
import math
import os
import struct
import typing

# ----------------------------------------------------------------------------------
# Constants
# ----------------------------------------------------------------------------------

#: Version of the v1 application protocol (named in HELLO and WELCOME).
PROTOCOL_VERSION = 1
#: Minor revision this side speaks: 1 adds policy mode (GOAL, MODE, ``ACK_POLICY``).
#: Announced by the server in WELCOME's version field (see :func:`welcome_version`).
PROTOCOL_MINOR = 1
#: Version byte in every v1 frame header.
FRAME_VERSION = 1
#: First two bytes of every v1 frame.
MAGIC = b"DR"
#: Header layout: magic, frame version, message type, payload length (little-endian).
HEADER = struct.Struct("<2sBBI")
#: Largest payload a v1 peer accepts (bytes); anything larger is rejected unread.
MAX_PAYLOAD = 512
#: Largest v1 frame (bytes).
MAX_FRAME = HEADER.size + MAX_PAYLOAD
#: Default TCP port (the reference's).
DEFAULT_PORT = 65432
#: Number of joint values in COMMAND / ACK frames (task order, ``robot.JOINT_NAMES``).
NUM_JOINTS = 6
#: Bytes of the HMAC challenge nonce and of the HMAC-SHA256 tag.
NONCE_BYTES = 32
MAC_BYTES = 32
#: Prefix of the authenticated message, so a tag cannot be replayed in another protocol.
AUTH_CONTEXT = b"dofbot-rl/sim2real/v1/auth"
#: Longest client name in HELLO and longest reason in ERROR / REFUSED (utf-8 bytes).
MAX_NAME_BYTES = 64
MAX_REASON_BYTES = 200
#: Largest move time a COMMAND can carry (ms, u16).
MAX_MOVE_MS = 0xFFFF
#: Read-back age reported when a servo was never read (ms, u16 saturated).
AGE_UNKNOWN_MS = 0xFFFF

#: Legacy frame: six float32 servo angles (deg), little-endian (see module docstring).
LEGACY_FRAME = struct.Struct("<6f")
#: Servo-6 (gripper) angle the reference client always sent (deg).
LEGACY_GRIPPER_DEG = 90.0


class MsgType(object):
    """v1 message type codes (the header's ``type`` byte)."""

    HELLO = 1
    CHALLENGE = 2
    AUTH = 3
    WELCOME = 4
    REFUSED = 5
    COMMAND = 6
    ACK = 7
    HEARTBEAT = 8
    ERROR = 9
    GOAL = 10  #: v1.1
    MODE = 11  #: v1.1


class Role(object):
    """What a client asks for in HELLO: drive the arm, or only watch its read-back."""

    CONTROL = 0
    OBSERVE = 1


class ServerMode(object):
    """Who drives the arm of a server that runs a policy (the MODE frame's byte).

    ``POLICY``: the server's onboard policy drives the arm toward the last GOAL; COMMAND
    frames are refused (ERROR ``POLICY_MODE``). ``DIRECT``: the controlling client's
    COMMAND frames drive the arm; the policy is paused.
    """

    POLICY = 0
    DIRECT = 1

    NAMES = {0: "policy", 1: "direct"}


class ErrorCode(object):
    """Codes carried by ERROR and REFUSED frames."""

    BAD_FRAME = 1  #: unparseable bytes: bad magic, unknown type, wrong payload size
    UNEXPECTED = 2  #: a well-formed frame that is not allowed in this state
    FRAME_TOO_LARGE = 3  #: header announced more than MAX_PAYLOAD bytes
    TIMEOUT = 4  #: handshake or heartbeat deadline missed
    BUSY = 10  #: another client controls the arm (or the observer slots are full)
    AUTH = 11  #: token missing or HMAC wrong
    VERSION = 12  #: unsupported frame or protocol version
    TOO_MANY_CONNECTIONS = 13  #: connection limit reached
    SHUTDOWN = 14  #: the server is stopping
    POLICY_MODE = 15  #: a COMMAND while the server's policy drives the arm (v1.1)
    NO_POLICY = 16  #: a GOAL or MODE policy frame to a server that runs no policy (v1.1)

    NAMES = {
        1: "BAD_FRAME", 2: "UNEXPECTED", 3: "FRAME_TOO_LARGE", 4: "TIMEOUT", 10: "BUSY",
        11: "AUTH", 12: "VERSION", 13: "TOO_MANY_CONNECTIONS", 14: "SHUTDOWN", 15: "POLICY_MODE",
        16: "NO_POLICY",
    }


# ACK flag bits.
ACK_CLAMPED = 0x01  #: the command was outside the safe limits and was clamped
ACK_REJECTED = 0x02  #: the command held non-finite values and was ignored
ACK_RAMPING = 0x04  #: the arm is still stepping toward the target (step limit)
ACK_HOLDING = 0x08  #: the server holds the last safe pose (no live target)
ACK_TORQUE_OFF = 0x10  #: servo torque is released
ACK_HEARTBEAT = 0x20  #: this ACK answers a HEARTBEAT, not a COMMAND
ACK_POLICY = 0x40  #: the server's onboard policy drives the arm (policy mode, v1.1)

#: GOAL flag bit: the frame carries a goal quaternion (else the identity is meant).
GOAL_HAS_QUAT = 0x01

# ----------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------


class ProtocolError(ValueError):
    """Bytes that do not form a valid frame. ``code`` is an :class:`ErrorCode` value."""

    code = ErrorCode.BAD_FRAME


class FrameTooLarge(ProtocolError):
    """A header announced a payload larger than the decoder's bound."""

    code = ErrorCode.FRAME_TOO_LARGE


class UnsupportedVersion(ProtocolError):
    """A frame header or HELLO named a version this side does not speak."""

    code = ErrorCode.VERSION


# ----------------------------------------------------------------------------------
# Messages
# ----------------------------------------------------------------------------------


class Hello(typing.NamedTuple):
    """Client -> server, first frame: protocol version, role (:class:`Role`), a name."""

    version: int
    role: int
    name: str = ""


class Challenge(typing.NamedTuple):
    """Server -> client when a token is configured: ``nonce`` (32 random bytes)."""

    nonce: bytes


class Auth(typing.NamedTuple):
    """Client -> server: ``mac`` = :func:`auth_mac` of the challenge (32 bytes)."""

    mac: bytes


class Welcome(typing.NamedTuple):
    """Server -> client: the session is open.

    ``version``: ``PROTOCOL_VERSION + 256 * minor`` (:func:`split_version`);
    ``heartbeat_ms``: the server holds the arm when nothing arrives for this long (ms);
    ``max_rate_hz``: most servo writes per second; ``lower``/``upper``: the joint limits
    (rad) the server clamps every target to.
    """

    version: int
    heartbeat_ms: int
    max_rate_hz: int
    lower: tuple
    upper: tuple


class Refused(typing.NamedTuple):
    """Server -> client: the session is refused (``code`` an :class:`ErrorCode`)."""

    code: int
    reason: str


class Command(typing.NamedTuple):
    """Client -> server: move to ``q`` (6 rad, task order) over ``move_ms`` ms."""

    seq: int
    move_ms: int
    q: tuple


class Ack(typing.NamedTuple):
    """Server -> client: answer to the COMMAND or HEARTBEAT numbered ``seq``.

    ``flags``: ``ACK_*`` bits; ``readback_age_ms``: age of the oldest servo reading (ms);
    ``target``: the clamped target (rad, NaN when none); ``applied``: the last pose
    written to the servos (rad, NaN when none); ``readback``: servo read-back (rad, NaN
    where the last read of that servo failed or none was made).
    """

    seq: int
    flags: int
    readback_age_ms: int
    target: tuple
    applied: tuple
    readback: tuple


class Heartbeat(typing.NamedTuple):
    """Client -> server: keep-alive; the server answers with an ACK for ``seq``."""

    seq: int


class Error(typing.NamedTuple):
    """Either direction: fatal error (``code`` an :class:`ErrorCode`); the sender closes."""

    code: int
    reason: str


class Goal(typing.NamedTuple):
    """Client -> server (v1.1): the policy's goal; answered with an ACK for ``seq``.

    ``pos``: 3 floats (m, robot base frame, the frame of ``robot.fingertip_position``);
    ``quat``: 4 floats (w, x, y, z) or None (the identity).
    """

    seq: int
    pos: tuple
    quat: typing.Optional[tuple] = None


class Mode(typing.NamedTuple):
    """Client -> server (v1.1): switch who drives the arm (``mode`` a :class:`ServerMode`)."""

    seq: int
    mode: int


_HELLO = struct.Struct("<HB")
_WELCOME = struct.Struct("<HHH12d")
_CODE = struct.Struct("<H")
_COMMAND = struct.Struct("<IH6d")
_ACK = struct.Struct("<IBH18d")
_HEARTBEAT = struct.Struct("<I")
_GOAL = struct.Struct("<IB7d")
_MODE = struct.Struct("<IB")
_IDENTITY_QUAT = (1.0, 0.0, 0.0, 0.0)

_TYPE_OF = {
    Hello: MsgType.HELLO, Challenge: MsgType.CHALLENGE, Auth: MsgType.AUTH,
    Welcome: MsgType.WELCOME, Refused: MsgType.REFUSED, Command: MsgType.COMMAND,
    Ack: MsgType.ACK, Heartbeat: MsgType.HEARTBEAT, Error: MsgType.ERROR, Goal: MsgType.GOAL,
    Mode: MsgType.MODE,
}
_NAME_OF = {
    MsgType.HELLO: "HELLO", MsgType.CHALLENGE: "CHALLENGE", MsgType.AUTH: "AUTH",
    MsgType.WELCOME: "WELCOME", MsgType.REFUSED: "REFUSED", MsgType.COMMAND: "COMMAND",
    MsgType.ACK: "ACK", MsgType.HEARTBEAT: "HEARTBEAT", MsgType.ERROR: "ERROR", MsgType.GOAL: "GOAL",
    MsgType.MODE: "MODE",
}


def _six(values, what):
    return _floats(values, NUM_JOINTS, what)


def _floats(values, n, what):
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError("%s: expected %d numbers, got %r" % (what, n, values))
    if len(out) != n:
        raise ValueError("%s: expected %d numbers, got %d" % (what, n, len(out)))
    return out


def welcome_version(minor=PROTOCOL_MINOR):
    """WELCOME's version field for protocol 1.``minor``: ``PROTOCOL_VERSION + 256 * minor``."""
    return PROTOCOL_VERSION + 256 * int(minor)


def split_version(version):
    """``(major, minor)`` of a WELCOME version field (a v1.0 server sends 1: ``(1, 0)``)."""
    return int(version) & 0xFF, int(version) >> 8


def check_goal(pos, quat=None):
    """Validate a goal: ``(pos, quat)`` as tuples of floats (quat normalised, None kept).

    Args:
        pos: 3 numbers (m, robot base frame). quat: 4 numbers (w, x, y, z) or None.

    Raises:
        ValueError: not 3 finite numbers, or a quaternion that is not 4 finite numbers
            with a non-zero norm.
    """
    try:
        pos = tuple(float(v) for v in pos)
    except (TypeError, ValueError):
        raise ValueError("goal must be 3 numbers (m), got %r" % (pos,))
    if len(pos) != 3 or not all(math.isfinite(v) for v in pos):
        raise ValueError("goal must be 3 finite numbers (m), got %r" % (pos,))
    if quat is None:
        return pos, None
    try:
        quat = tuple(float(v) for v in quat)
    except (TypeError, ValueError):
        raise ValueError("goal quaternion must be 4 numbers (w, x, y, z), got %r" % (quat,))
    big = max(abs(v) for v in quat) if len(quat) == 4 else 0.0
    if not (all(math.isfinite(v) for v in quat) and big > 0):
        raise ValueError("goal quaternion must be 4 finite numbers (w, x, y, z), not all zero, got %r" % (quat,))
    quat = tuple(v / big for v in quat)  # scaled first: no overflow for huge components
    norm = math.sqrt(sum(v * v for v in quat))
    return pos, tuple(v / norm for v in quat)


def _utf8(text, limit):
    return text.encode("utf-8")[:limit]


def encode_payload(msg):
    """Serialise a message's payload (no header).

    Args:
        msg: one of the message tuples of this module.

    Returns:
        The payload bytes.

    Raises:
        ValueError: a field is out of range (e.g. a negative seq, 7 joint values,
            a nonce that is not 32 bytes).
        TypeError: ``msg`` is not a message of this module.
    """
    try:
        if isinstance(msg, Hello):
            return _HELLO.pack(msg.version, msg.role) + _utf8(msg.name, MAX_NAME_BYTES)
        if isinstance(msg, (Challenge, Auth)):
            blob = msg.nonce if isinstance(msg, Challenge) else msg.mac
            if not isinstance(blob, bytes) or len(blob) != NONCE_BYTES:
                raise ValueError("%s needs exactly 32 bytes, got %r" % (type(msg).__name__, blob))
            return blob
        if isinstance(msg, Welcome):
            lims = _six(msg.lower, "WELCOME lower") + _six(msg.upper, "WELCOME upper")
            return _WELCOME.pack(msg.version, msg.heartbeat_ms, msg.max_rate_hz, *lims)
        if isinstance(msg, (Refused, Error)):
            return _CODE.pack(msg.code) + _utf8(msg.reason, MAX_REASON_BYTES)
        if isinstance(msg, Command):
            return _COMMAND.pack(msg.seq, msg.move_ms, *_six(msg.q, "COMMAND q"))
        if isinstance(msg, Ack):
            vals = (_six(msg.target, "ACK target") + _six(msg.applied, "ACK applied")
                    + _six(msg.readback, "ACK readback"))
            return _ACK.pack(msg.seq, msg.flags, msg.readback_age_ms, *vals)
        if isinstance(msg, Heartbeat):
            return _HEARTBEAT.pack(msg.seq)
        if isinstance(msg, Goal):
            pos = _floats(msg.pos, 3, "GOAL pos")
            if msg.quat is None:
                return _GOAL.pack(msg.seq, 0, *(pos + _IDENTITY_QUAT))
            return _GOAL.pack(msg.seq, GOAL_HAS_QUAT, *(pos + _floats(msg.quat, 4, "GOAL quat")))
        if isinstance(msg, Mode):
            if msg.mode not in ServerMode.NAMES:
                raise ValueError("MODE mode must be 0 (policy) or 1 (direct), got %r" % (msg.mode,))
            return _MODE.pack(msg.seq, msg.mode)
    except struct.error as exc:
        raise ValueError("cannot encode %r: %s" % (msg, exc))
    raise TypeError("not a sim2real message: %r" % (msg,))


def encode(msg):
    """Serialise a message into one complete v1 frame (header + payload).

    Raises:
        ValueError, TypeError: as :func:`encode_payload`.
    """
    payload = encode_payload(msg)
    return HEADER.pack(MAGIC, FRAME_VERSION, _TYPE_OF[type(msg)], len(payload)) + payload


def _expect_size(payload, size, name):
    if len(payload) != size:
        raise ProtocolError("%s payload must be %d bytes, got %d" % (name, size, len(payload)))


def _text(payload):
    return payload.decode("utf-8", "replace")


def decode_payload(msg_type, payload):
    """Parse one payload of type ``msg_type`` into its message tuple.

    Args:
        msg_type: a :class:`MsgType` code.
        payload: the payload bytes (no header).

    Returns:
        The message tuple (floats may be NaN / inf: judging values is the receiver's job).

    Raises:
        ProtocolError: unknown type or a payload of the wrong size.
        UnsupportedVersion: a HELLO naming another protocol version.
    """
    payload = bytes(payload)
    if msg_type == MsgType.HELLO:
        if len(payload) < _HELLO.size or len(payload) > _HELLO.size + MAX_NAME_BYTES:
            raise ProtocolError("HELLO payload must be %d-%d bytes, got %d"
                                % (_HELLO.size, _HELLO.size + MAX_NAME_BYTES, len(payload)))
        version, role = _HELLO.unpack_from(payload)
        if version != PROTOCOL_VERSION:
            raise UnsupportedVersion("protocol version %d is not supported (this side speaks %d)"
                                     % (version, PROTOCOL_VERSION))
        if role not in (Role.CONTROL, Role.OBSERVE):
            raise ProtocolError("HELLO role must be 0 (control) or 1 (observe), got %d" % role)
        return Hello(version, role, _text(payload[_HELLO.size:]))
    if msg_type == MsgType.CHALLENGE:
        _expect_size(payload, NONCE_BYTES, "CHALLENGE")
        return Challenge(payload)
    if msg_type == MsgType.AUTH:
        _expect_size(payload, MAC_BYTES, "AUTH")
        return Auth(payload)
    if msg_type == MsgType.WELCOME:
        _expect_size(payload, _WELCOME.size, "WELCOME")
        vals = _WELCOME.unpack(payload)
        return Welcome(vals[0], vals[1], vals[2], vals[3:9], vals[9:15])
    if msg_type in (MsgType.REFUSED, MsgType.ERROR):
        name = _NAME_OF[msg_type]
        if len(payload) < _CODE.size or len(payload) > _CODE.size + MAX_REASON_BYTES:
            raise ProtocolError("%s payload must be %d-%d bytes, got %d"
                                % (name, _CODE.size, _CODE.size + MAX_REASON_BYTES, len(payload)))
        cls = Refused if msg_type == MsgType.REFUSED else Error
        return cls(_CODE.unpack_from(payload)[0], _text(payload[_CODE.size:]))
    if msg_type == MsgType.COMMAND:
        _expect_size(payload, _COMMAND.size, "COMMAND")
        vals = _COMMAND.unpack(payload)
        return Command(vals[0], vals[1], vals[2:8])
    if msg_type == MsgType.ACK:
        _expect_size(payload, _ACK.size, "ACK")
        vals = _ACK.unpack(payload)
        return Ack(vals[0], vals[1], vals[2], vals[3:9], vals[9:15], vals[15:21])
    if msg_type == MsgType.HEARTBEAT:
        _expect_size(payload, _HEARTBEAT.size, "HEARTBEAT")
        return Heartbeat(_HEARTBEAT.unpack(payload)[0])
    if msg_type == MsgType.GOAL:
        _expect_size(payload, _GOAL.size, "GOAL")
        vals = _GOAL.unpack(payload)
        if vals[1] & ~GOAL_HAS_QUAT:
            raise ProtocolError("GOAL flags must be 0 or 1, got %d" % vals[1])
        return Goal(vals[0], vals[2:5], vals[5:9] if vals[1] & GOAL_HAS_QUAT else None)
    if msg_type == MsgType.MODE:
        _expect_size(payload, _MODE.size, "MODE")
        seq, mode = _MODE.unpack(payload)
        if mode not in ServerMode.NAMES:
            raise ProtocolError("MODE mode must be 0 (policy) or 1 (direct), got %d" % mode)
        return Mode(seq, mode)
    raise ProtocolError("unknown frame type %d" % msg_type)


class FrameDecoder(object):
    """Incremental v1 decoder: feed it whatever ``recv`` returned, get whole messages.

    Partial frames are kept until the rest arrives; several frames in one chunk are all
    returned. The buffer never holds more than one frame (``HEADER.size + max_payload``
    bytes), so a peer cannot make it grow. After an error the decoder is poisoned: the
    stream has lost its framing and every later :meth:`feed` raises again.

    Args:
        max_payload: largest payload accepted (bytes), at most :data:`MAX_PAYLOAD`.
    """

    def __init__(self, max_payload=MAX_PAYLOAD):
        if not 0 < max_payload <= MAX_PAYLOAD:
            raise ValueError("max_payload must be in 1..%d, got %r" % (MAX_PAYLOAD, max_payload))
        self.max_payload = max_payload
        self._buf = bytearray()
        self._error = None

    @property
    def buffered(self):
        """Number of bytes held while waiting for the rest of a frame."""
        return len(self._buf)

    def feed(self, data):
        """Add received bytes; return the list of messages they complete (maybe empty).

        Raises:
            ProtocolError: bad magic, unknown frame version or type, a payload of the wrong
                size for its type.
            FrameTooLarge: a header announced more than ``max_payload`` bytes; raised as
                soon as the header is seen, before any payload is buffered.
            UnsupportedVersion: the frame header or a HELLO names another version.
        """
        if self._error is not None:
            raise self._error
        try:
            return self._feed(data)
        except ProtocolError as exc:
            self._error = exc
            self._buf = bytearray()
            raise

    def _feed(self, data):
        self._buf.extend(data)
        out = []
        while True:
            buf = self._buf
            # Reject garbage as early as the bytes allow, before a full header arrives.
            if len(buf) >= 1 and buf[0] != MAGIC[0] or len(buf) >= 2 and bytes(buf[:2]) != MAGIC:
                raise ProtocolError("bad magic %r (expected %r): not a sim2real v1 stream"
                                    % (bytes(buf[:2]), MAGIC))
            if len(buf) >= 3 and buf[2] != FRAME_VERSION:
                raise UnsupportedVersion("frame version %d is not supported (expected %d)"
                                         % (buf[2], FRAME_VERSION))
            if len(buf) < HEADER.size:
                return out
            _, _, msg_type, length = HEADER.unpack_from(buf)
            if msg_type not in _NAME_OF:
                raise ProtocolError("unknown frame type %d" % msg_type)
            if length > self.max_payload:
                raise FrameTooLarge("%s frame announces %d payload bytes (limit %d)"
                                    % (_NAME_OF[msg_type], length, self.max_payload))
            end = HEADER.size + length
            if len(buf) < end:
                return out
            payload = bytes(buf[HEADER.size:end])
            del buf[:end]
            out.append(decode_payload(msg_type, payload))


# ----------------------------------------------------------------------------------
# Authentication
# ----------------------------------------------------------------------------------


def new_nonce():
    """32 random bytes from the OS CSPRNG for a CHALLENGE."""
    return os.urandom(NONCE_BYTES)


def auth_mac(token, nonce, role):
    """HMAC-SHA256 tag proving knowledge of ``token`` for one challenge.

    Args:
        token: the shared secret (bytes).
        nonce: the server's 32-byte challenge.
        role: the :class:`Role` asked for in HELLO (bound into the tag).

    Returns:
        32 bytes.
    """
    return hmac.new(token, AUTH_CONTEXT + nonce + bytes([role]), hashlib.sha256).digest()


def verify_mac(token, nonce, role, mac):
    """Constant-time check of a client's AUTH tag (:func:`hmac.compare_digest`)."""
    return hmac.compare_digest(auth_mac(token, nonce, role), mac)


def read_token_file(path):
    """Read a shared token: the file's bytes with surrounding whitespace stripped.

    Raises:
        ValueError: the file cannot be read or holds no token.
    """
    try:
        with open(path, "rb") as fh:
            token = fh.read().strip()
    except OSError as exc:
        raise ValueError("cannot read token file %r: %s" % (path, exc))
    if not token:
        raise ValueError("token file %r is empty" % (path,))
    return token


def token_file_is_private(path):
    """True when group and others have no access to ``path`` (POSIX mode ``0o?00``)."""
    return os.name != "posix" or (os.stat(path).st_mode & 0o077) == 0


# ----------------------------------------------------------------------------------
# Legacy protocol
# ----------------------------------------------------------------------------------


def encode_legacy(servo_deg):
    """Pack six servo angles (deg, servos 1-6) into one 24-byte legacy frame.

    Raises:
        ValueError: not 6 finite numbers.
    """
    vals = _six(servo_deg, "legacy servo angles")
    if not all(math.isfinite(v) for v in vals):
        raise ValueError("legacy servo angles must be finite, got %r" % (vals,))
    return LEGACY_FRAME.pack(*vals)


class LegacyDecoder(object):
    """Reassembles the reference's 24-byte frames from a TCP stream.

    The reference server called ``recv(24)`` and assumed a whole frame; this decoder
    keeps partial reads until a frame is complete. Values are returned as sent (they may
    be NaN or out of range: judging them is the receiver's job).
    """

    def __init__(self):
        self._buf = bytearray()

    @property
    def buffered(self):
        """Number of bytes of an incomplete frame held."""
        return len(self._buf)

    def feed(self, data):
        """Add received bytes; return a list of 6-tuples of servo angles (deg)."""
        self._buf.extend(data)
        size = LEGACY_FRAME.size
        count = len(self._buf) // size
        out = [LEGACY_FRAME.unpack_from(self._buf, i * size) for i in range(count)]
        del self._buf[:count * size]
        return out
