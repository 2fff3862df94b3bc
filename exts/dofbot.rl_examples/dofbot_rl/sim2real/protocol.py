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

import enum
import hashlib
import hmac
import math
import os
import stat
import struct
import typing

from dofbot_rl.errors import DofbotRlError
from dofbot_rl.robot import as_floats  # noqa: F401 - the one number check, used as P.as_floats

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


class MsgType(enum.IntEnum):
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


class Role(enum.IntEnum):
    """What a client asks for in HELLO: drive the arm, or only watch its read-back."""

    CONTROL = 0
    OBSERVE = 1


class ServerMode(enum.IntEnum):
    """Who drives the arm of a server that runs a policy (the MODE frame's byte).

    ``POLICY``: the server's onboard policy drives the arm toward the last GOAL; COMMAND
    frames are refused (ERROR ``POLICY_MODE``). ``DIRECT``: the controlling client's
    COMMAND frames drive the arm; the policy is paused. ``ServerMode.POLICY.label`` is
    the lower-case name clients use (``"policy"``, ``"direct"``).
    """

    POLICY = 0
    DIRECT = 1

    @property
    def label(self):
        """``"policy"`` or ``"direct"``."""
        return self.name.lower()


class ErrorCode(enum.IntEnum):
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


def code_name(code):
    """The name of an :class:`ErrorCode` value (``"BUSY"``), or the number itself when unknown."""
    try:
        return ErrorCode(code).name
    except ValueError:
        return str(code)


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


class ProtocolError(DofbotRlError, ValueError):
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


#: The one table of payload layouts: message type -> (message class, struct of the fixed
#: part, most extra bytes). The extra bytes are HELLO's client name and the reason of
#: REFUSED / ERROR (utf-8); every other type has a fixed size. The decoder checks a
#: header's length against this table before it buffers the payload.
PAYLOADS = {
    MsgType.HELLO: (Hello, struct.Struct("<HB"), MAX_NAME_BYTES),
    MsgType.CHALLENGE: (Challenge, struct.Struct("<%ds" % NONCE_BYTES), 0),
    MsgType.AUTH: (Auth, struct.Struct("<%ds" % MAC_BYTES), 0),
    MsgType.WELCOME: (Welcome, struct.Struct("<HHH12d"), 0),
    MsgType.REFUSED: (Refused, struct.Struct("<H"), MAX_REASON_BYTES),
    MsgType.COMMAND: (Command, struct.Struct("<IH6d"), 0),
    MsgType.ACK: (Ack, struct.Struct("<IBH18d"), 0),
    MsgType.HEARTBEAT: (Heartbeat, struct.Struct("<I"), 0),
    MsgType.ERROR: (Error, struct.Struct("<H"), MAX_REASON_BYTES),
    MsgType.GOAL: (Goal, struct.Struct("<IB7d"), 0),
    MsgType.MODE: (Mode, struct.Struct("<IB"), 0),
}
_TYPES = frozenset(MsgType)
_TYPE_OF = {cls: msg_type for msg_type, (cls, _, _) in PAYLOADS.items()}
_IDENTITY_QUAT = (1.0, 0.0, 0.0, 0.0)


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
    pos = as_floats(pos, 3, "goal")
    if quat is None:
        return pos, None
    quat = as_floats(quat, 4, "goal quaternion (w, x, y, z)")
    big = max(abs(v) for v in quat)
    if not big > 0:
        raise ValueError("goal quaternion (w, x, y, z) must not be all zero, got %r" % (quat,))
    quat = tuple(v / big for v in quat)  # scaled first: no overflow for huge components
    norm = math.sqrt(sum(v * v for v in quat))
    return pos, tuple(v / norm for v in quat)


def _utf8(text, limit):
    return text.encode("utf-8")[:limit]


def _fields(msg):
    """The values packed into ``msg``'s fixed part, and its extra bytes."""
    if isinstance(msg, Hello):
        return (msg.version, msg.role), _utf8(msg.name, MAX_NAME_BYTES)
    if isinstance(msg, (Challenge, Auth)):
        blob = msg[0]
        if not isinstance(blob, bytes) or len(blob) != NONCE_BYTES:
            raise ValueError("%s needs exactly 32 bytes, got %r" % (type(msg).__name__, blob))
        return (blob,), b""
    if isinstance(msg, Welcome):
        lims = as_floats(msg.lower, what="WELCOME lower", finite=False) + as_floats(
            msg.upper, what="WELCOME upper", finite=False)
        return (msg.version, msg.heartbeat_ms, msg.max_rate_hz) + lims, b""
    if isinstance(msg, (Refused, Error)):
        return (msg.code,), _utf8(msg.reason, MAX_REASON_BYTES)
    if isinstance(msg, Command):
        return (msg.seq, msg.move_ms) + as_floats(msg.q, what="COMMAND q", finite=False), b""
    if isinstance(msg, Ack):
        vals = (as_floats(msg.target, what="ACK target", finite=False)
                + as_floats(msg.applied, what="ACK applied", finite=False)
                + as_floats(msg.readback, what="ACK readback", finite=False))
        return (msg.seq, msg.flags, msg.readback_age_ms) + vals, b""
    if isinstance(msg, Heartbeat):
        return (msg.seq,), b""
    if isinstance(msg, Goal):
        pos = as_floats(msg.pos, 3, "GOAL pos", finite=False)
        if msg.quat is None:
            return (msg.seq, 0) + pos + _IDENTITY_QUAT, b""
        return (msg.seq, GOAL_HAS_QUAT) + pos + as_floats(msg.quat, 4, "GOAL quat", finite=False), b""
    if msg.mode not in tuple(ServerMode):  # Mode
        raise ValueError("MODE mode must be 0 (policy) or 1 (direct), got %r" % (msg.mode,))
    return (msg.seq, msg.mode), b""


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
    msg_type = _TYPE_OF.get(type(msg))
    if msg_type is None:
        raise TypeError("not a sim2real message: %r" % (msg,))
    fixed, extra = _fields(msg)
    try:
        return PAYLOADS[msg_type][1].pack(*fixed) + extra
    except struct.error as exc:
        raise ValueError("cannot encode %r: %s" % (msg, exc))


def encode(msg):
    """Serialise a message into one complete v1 frame (header + payload).

    Raises:
        ValueError, TypeError: as :func:`encode_payload`.
    """
    payload = encode_payload(msg)
    return HEADER.pack(MAGIC, FRAME_VERSION, _TYPE_OF[type(msg)], len(payload)) + payload


def check_payload_size(msg_type, length):
    """Check a payload length against :data:`PAYLOADS` (from the header, before reading it).

    Raises:
        ProtocolError: unknown type, or a length this type cannot have.
    """
    try:
        msg_type = MsgType(msg_type)
    except ValueError:
        raise ProtocolError("unknown frame type %d" % msg_type)
    _, fixed, extra = PAYLOADS[msg_type]
    if not fixed.size <= length <= fixed.size + extra:
        size = "%d" % fixed.size if not extra else "%d-%d" % (fixed.size, fixed.size + extra)
        raise ProtocolError("%s payload must be %s bytes, got %d" % (msg_type.name, size, length))
    return msg_type


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
        ProtocolError: unknown type, a payload of the wrong size, a bad role, mode or flag.
        UnsupportedVersion: a HELLO naming another protocol version.
    """
    payload = bytes(payload)
    msg_type = check_payload_size(msg_type, len(payload))
    cls, fixed, _ = PAYLOADS[msg_type]
    vals = fixed.unpack_from(payload)
    extra = payload[fixed.size:]
    if msg_type == MsgType.HELLO:
        version, role = vals
        if version != PROTOCOL_VERSION:
            raise UnsupportedVersion("protocol version %d is not supported (this side speaks %d)"
                                     % (version, PROTOCOL_VERSION))
        if role not in tuple(Role):
            raise ProtocolError("HELLO role must be 0 (control) or 1 (observe), got %d" % role)
        return Hello(version, Role(role), _text(extra))
    if msg_type in (MsgType.REFUSED, MsgType.ERROR):
        return cls(vals[0], _text(extra))
    if msg_type == MsgType.WELCOME:
        return Welcome(vals[0], vals[1], vals[2], vals[3:9], vals[9:15])
    if msg_type == MsgType.COMMAND:
        return Command(vals[0], vals[1], vals[2:8])
    if msg_type == MsgType.ACK:
        return Ack(vals[0], vals[1], vals[2], vals[3:9], vals[9:15], vals[15:21])
    if msg_type == MsgType.GOAL:
        if vals[1] & ~GOAL_HAS_QUAT:
            raise ProtocolError("GOAL flags must be 0 or 1, got %d" % vals[1])
        return Goal(vals[0], vals[2:5], vals[5:9] if vals[1] & GOAL_HAS_QUAT else None)
    if msg_type == MsgType.MODE:
        if vals[1] not in tuple(ServerMode):
            raise ProtocolError("MODE mode must be 0 (policy) or 1 (direct), got %d" % vals[1])
        return Mode(vals[0], ServerMode(vals[1]))
    return cls(*vals)  # CHALLENGE, AUTH, HEARTBEAT


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
            if msg_type not in _TYPES:
                raise ProtocolError("unknown frame type %d" % msg_type)
            if length > self.max_payload:
                raise FrameTooLarge("%s frame announces %d payload bytes (limit %d)"
                                    % (MsgType(msg_type).name, length, self.max_payload))
            check_payload_size(msg_type, length)  # a wrong size is refused before its bytes are buffered
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


#: Longest token file read (bytes): a token is a line of text, not a stream.
MAX_TOKEN_FILE_BYTES = 4096


def read_token_file(path, allow_readable=False):
    """Read a shared token: the file's bytes with surrounding whitespace stripped.

    ``~`` in ``path`` is expanded. The file is opened without blocking and must be a regular
    file (a FIFO, a device or a directory is refused, never waited on), at most
    :data:`MAX_TOKEN_FILE_BYTES` long, and (on POSIX) not readable by group or others unless
    ``allow_readable``.

    Raises:
        ValueError: the file cannot be read, is not a regular file, is too long, holds
            no token, or is readable by other users (each named, one line).
    """
    path = os.path.expanduser(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise ValueError("cannot read token file %r: %s" % (path, exc))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("token file %r is not a regular file" % (path,))
        if not allow_readable and os.name == "posix" and info.st_mode & 0o077:
            raise ValueError("token file %r is readable by other users (mode %03o): chmod 600 it"
                             % (path, info.st_mode & 0o777))
        data = os.read(fd, MAX_TOKEN_FILE_BYTES + 1)
    except OSError as exc:
        raise ValueError("cannot read token file %r: %s" % (path, exc))
    finally:
        os.close(fd)
    if len(data) > MAX_TOKEN_FILE_BYTES:
        raise ValueError("token file %r is longer than %d bytes" % (path, MAX_TOKEN_FILE_BYTES))
    token = data.strip()
    if not token:
        raise ValueError("token file %r is empty" % (path,))
    return token


# ----------------------------------------------------------------------------------
# Legacy protocol
# ----------------------------------------------------------------------------------


def encode_legacy(servo_deg):
    """Pack six servo angles (deg, servos 1-6) into one 24-byte legacy frame.

    Raises:
        ValueError: not 6 finite numbers.
    """
    return LEGACY_FRAME.pack(*as_floats(servo_deg, what="legacy servo angles (deg)"))


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
