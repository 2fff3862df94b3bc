"""Wire protocol: round trips, partial reads, bounded and hostile input, HMAC, legacy frames."""

import math
import os
import random
import re
import struct
import sys

import pytest

from dofbot_rl import robot
from dofbot_rl.sim2real import protocol as P

NAN = float("nan")
MESSAGES = [
    P.Hello(1, P.Role.CONTROL, "sim-pc"),
    P.Hello(1, P.Role.OBSERVE, ""),
    P.Hello(1, P.Role.CONTROL, "ünïcødé"),
    P.Challenge(bytes(range(32))),
    P.Auth(b"\xaa" * 32),
    P.Welcome(1, 200, 60, robot.SAFE_LIMITS_LOWER, robot.SAFE_LIMITS_UPPER),
    P.Refused(P.ErrorCode.BUSY, "another client controls the arm"),
    P.Command(0, 0, (0.0,) * 6),
    P.Command(0xFFFFFFFF, 0xFFFF, (0.1, -0.2, 0.3, -0.4, 0.5, -0.06)),
    P.Ack(7, P.ACK_CLAMPED | P.ACK_RAMPING, 12, (0.1,) * 6, (0.2,) * 6, (0.3, NAN, 0.3, 0.3, NAN, 0.3)),
    P.Heartbeat(123456),
    P.Error(P.ErrorCode.TIMEOUT, "no frame for 200 ms"),
    P.Goal(3, (0.17, 0.15, 0.25)),
    P.Goal(0xFFFFFFFF, (0.1, -0.2, 0.3), (0.5, 0.5, -0.5, 0.5)),
    P.Mode(5, P.ServerMode.POLICY),
    P.Mode(6, P.ServerMode.DIRECT),
    P.Error(P.ErrorCode.POLICY_MODE, "policy mode"),
]


def same(a, b):
    """Message equality where NaN == NaN."""
    if type(a) is not type(b):
        return False
    for x, y in zip(a, b):
        if isinstance(x, tuple):
            if len(x) != len(y) or not all(u == v or (math.isnan(u) and math.isnan(v)) for u, v in zip(x, y)):
                return False
        elif x != y:
            return False
    return True


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: type(m).__name__)
def test_round_trip(msg):
    frame = P.encode(msg)
    assert len(frame) <= P.MAX_FRAME
    out = P.FrameDecoder().feed(frame)
    assert len(out) == 1 and same(out[0], msg)


def test_partial_reads_byte_by_byte_and_every_split():
    stream = b"".join(P.encode(m) for m in MESSAGES)
    dec = P.FrameDecoder()
    got = []
    for i in range(len(stream)):
        got.extend(dec.feed(stream[i:i + 1]))
    assert len(got) == len(MESSAGES) and all(same(a, b) for a, b in zip(got, MESSAGES))
    assert dec.buffered == 0
    frame = P.encode(MESSAGES[9])
    for cut in range(1, len(frame)):
        dec = P.FrameDecoder()
        assert dec.feed(frame[:cut]) == []
        assert same(dec.feed(frame[cut:])[0], MESSAGES[9])


def test_many_frames_in_one_chunk():
    stream = b"".join(P.encode(P.Heartbeat(i)) for i in range(100))
    assert [m.seq for m in P.FrameDecoder().feed(stream)] == list(range(100))


def test_explicit_little_endian_layout():
    frame = P.encode(P.Command(1, 300, (1.0, 0, 0, 0, 0, 0)))
    assert frame[:8] == b"DR\x01\x06" + struct.pack("<I", 54)
    assert frame[8:12] == b"\x01\x00\x00\x00"  # seq, little-endian
    assert frame[12:14] == b"\x2c\x01"  # 300 ms
    assert frame[14:22] == struct.pack("<d", 1.0)
    for name in dir(P):
        obj = getattr(P, name)
        if isinstance(obj, struct.Struct):
            assert obj.format.startswith("<"), name


def test_oversized_frame_rejected_from_the_header():
    dec = P.FrameDecoder()
    header = P.HEADER.pack(P.MAGIC, 1, P.MsgType.COMMAND, P.MAX_PAYLOAD + 1)
    with pytest.raises(P.FrameTooLarge, match="limit 512"):
        dec.feed(header)
    with pytest.raises(P.FrameTooLarge):  # poisoned: framing is lost
        dec.feed(P.encode(P.Heartbeat(1)))
    with pytest.raises(P.FrameTooLarge):
        P.FrameDecoder().feed(P.HEADER.pack(P.MAGIC, 1, P.MsgType.ACK, 0xFFFFFFFF))


def test_garbage_rejected_at_the_first_byte():
    with pytest.raises(P.ProtocolError, match="bad magic"):
        P.FrameDecoder().feed(b"G")
    with pytest.raises(P.ProtocolError, match="bad magic"):
        P.FrameDecoder().feed(b"GET / HTTP/1.1\r\n")
    with pytest.raises(P.ProtocolError, match="bad magic"):
        P.FrameDecoder().feed(b"D\x00")


def test_versions_checked():
    with pytest.raises(P.UnsupportedVersion):
        P.FrameDecoder().feed(b"DR\x02")
    frame = P.HEADER.pack(P.MAGIC, 1, P.MsgType.HELLO, 3) + struct.pack("<HB", 2, 0)
    with pytest.raises(P.UnsupportedVersion, match="protocol version 2"):
        P.FrameDecoder().feed(frame)


def test_unknown_type_and_wrong_sizes():
    with pytest.raises(P.ProtocolError, match="unknown frame type 99"):
        P.FrameDecoder().feed(P.HEADER.pack(P.MAGIC, 1, 99, 0))
    with pytest.raises(P.ProtocolError, match="COMMAND payload must be 54 bytes, got 53"):
        P.FrameDecoder().feed(P.HEADER.pack(P.MAGIC, 1, P.MsgType.COMMAND, 53) + b"\0" * 53)
    with pytest.raises(P.ProtocolError, match="role"):
        P.FrameDecoder().feed(P.HEADER.pack(P.MAGIC, 1, P.MsgType.HELLO, 3) + struct.pack("<HB", 1, 7))


def test_random_bytes_only_raise_protocol_errors():
    rng = random.Random(0)
    for _ in range(3000):
        dec = P.FrameDecoder()
        data = bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 80)))
        if rng.random() < 0.5:
            data = P.MAGIC + bytes([1]) + data
        try:
            for i in range(0, len(data), 7):
                dec.feed(data[i:i + 7])
        except P.ProtocolError:
            pass
        assert dec.buffered <= P.MAX_FRAME


def test_encode_validates():
    with pytest.raises(ValueError):
        P.encode(P.Command(1, 1, (0.0,) * 7))
    with pytest.raises(ValueError):
        P.encode(P.Command(-1, 1, (0.0,) * 6))
    with pytest.raises(ValueError):
        P.encode(P.Command(1, 70000, (0.0,) * 6))
    with pytest.raises(ValueError):
        P.encode(P.Challenge(b"short"))
    with pytest.raises(TypeError):
        P.encode(("not", "a", "message"))


def test_long_texts_are_bounded():
    frame = P.encode(P.Error(1, "x" * 10000))
    assert len(frame) == P.HEADER.size + 2 + P.MAX_REASON_BYTES
    assert len(P.encode(P.Hello(1, 0, "n" * 1000))) == P.HEADER.size + 3 + P.MAX_NAME_BYTES


def test_hmac_challenge_response():
    token, nonce = b"s3cret-token", P.new_nonce()
    mac = P.auth_mac(token, nonce, P.Role.CONTROL)
    assert len(mac) == 32 and len(nonce) == 32 and P.new_nonce() != nonce
    assert P.verify_mac(token, nonce, P.Role.CONTROL, mac)
    assert not P.verify_mac(b"wrong", nonce, P.Role.CONTROL, mac)
    assert not P.verify_mac(token, P.new_nonce(), P.Role.CONTROL, mac)
    assert not P.verify_mac(token, nonce, P.Role.OBSERVE, mac)


def test_token_file(tmp_path):
    path = tmp_path / "token"
    path.write_bytes(b"  abc123\n")
    os.chmod(str(path), 0o600)
    assert P.read_token_file(str(path)) == b"abc123"
    os.chmod(str(path), 0o644)  # readable by others: refused unless allowed
    with pytest.raises(ValueError, match="readable by other users"):
        P.read_token_file(str(path))
    assert P.read_token_file(str(path), allow_readable=True) == b"abc123"
    os.chmod(str(path), 0o600)
    path.write_bytes(b"\n")
    with pytest.raises(ValueError, match="empty"):
        P.read_token_file(str(path))
    with pytest.raises(ValueError, match="cannot read"):
        P.read_token_file(str(tmp_path / "missing"))


def test_token_file_hostile_files_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(str(fifo), 0o600)  # no writer: a plain open() would block start-up forever
    with pytest.raises(ValueError, match="not a regular file"):
        P.read_token_file(str(fifo))
    with pytest.raises(ValueError, match="not a regular file"):
        P.read_token_file("/dev/zero", allow_readable=True)  # endless: never read
    with pytest.raises(ValueError, match="not a regular file"):
        P.read_token_file(str(tmp_path), allow_readable=True)
    big = tmp_path / "big"
    big.write_bytes(b"x" * (P.MAX_TOKEN_FILE_BYTES + 1))
    os.chmod(str(big), 0o600)
    with pytest.raises(ValueError, match="longer than"):
        P.read_token_file(str(big))


def test_message_types_are_one_table():
    assert set(P.PAYLOADS) == set(P.MsgType) and isinstance(P.MsgType.ACK, int)
    for msg in MESSAGES:
        msg_type, payload = P.encode(msg)[3], P.encode_payload(msg)
        cls, fixed, extra = P.PAYLOADS[msg_type]
        assert type(msg) is cls and fixed.size <= len(payload) <= fixed.size + extra
    assert P.code_name(10) == "BUSY" and P.code_name(99) == "99"
    with pytest.raises(P.ProtocolError, match="ACK payload must be 151 bytes, got 150"):
        P.FrameDecoder().feed(P.HEADER.pack(P.MAGIC, 1, P.MsgType.ACK, 150))  # refused from the header


def test_as_floats_is_the_one_number_check():
    assert P.as_floats([1, 2, 3, 4, 5, 6]) == (1.0, 2.0, 3.0, 4.0, 5.0, 6.0)
    for bad in ([0.0] * 5, [0.0] * 5 + [float("inf")], [0.0] * 5 + [NAN], "abcdef", None, [0.0] * 5 + [10 ** 400]):
        with pytest.raises(ValueError):
            P.as_floats(bad)
    assert math.isnan(P.as_floats([NAN] * 3, 3, finite=False)[0])


def test_legacy_frames_match_the_reference_layout():
    servo = [90.0, 100.5, 80.25, 90.0, 135.0, 90.0]
    frame = P.encode_legacy(servo)
    assert len(frame) == 24
    assert frame == struct.pack("<6f", *servo)
    if sys.byteorder == "little":  # the reference packed natively: identical on these machines
        assert frame == struct.pack("6f", *servo)
    dec = P.LegacyDecoder()
    assert dec.feed(frame[:10]) == []
    assert dec.feed(frame[10:] + frame[:5]) == [tuple(servo)]
    assert dec.buffered == 5
    with pytest.raises(ValueError):
        P.encode_legacy([NAN] * 6)


def test_no_pickle_or_eval_in_sim2real():
    here = os.path.dirname(P.__file__)
    for name in os.listdir(here):
        if name.endswith(".py"):
            with open(os.path.join(here, name)) as fh:
                src = fh.read()
            assert not re.search(r"\bimport pickle\b|\bpickle\.|\bmarshal\.|(?<![\w.])eval\(|(?<![\w.])exec\(",
                                 src), name


def test_goal_and_mode_frames():
    frame = P.encode(P.Goal(7, (0.17, 0.15, 0.25)))
    assert frame[:8] == b"DR\x01\x0a" + struct.pack("<I", 61)
    assert frame[8:] == struct.pack("<IB7d", 7, 0, 0.17, 0.15, 0.25, 1.0, 0.0, 0.0, 0.0)
    with_quat = P.encode(P.Goal(7, (0.17, 0.15, 0.25), (0.0, 1.0, 0.0, 0.0)))
    assert with_quat[12] == P.GOAL_HAS_QUAT
    assert P.encode(P.Mode(9, P.ServerMode.DIRECT)) == b"DR\x01\x0b" + struct.pack("<I", 5) + struct.pack("<IB", 9, 1)
    with pytest.raises(P.ProtocolError, match="GOAL flags"):
        P.FrameDecoder().feed(P.HEADER.pack(P.MAGIC, 1, P.MsgType.GOAL, 61) + struct.pack("<IB7d", 1, 2, *[0.0] * 7))
    with pytest.raises(P.ProtocolError, match="GOAL payload must be 61 bytes"):
        P.FrameDecoder().feed(P.HEADER.pack(P.MAGIC, 1, P.MsgType.GOAL, 24) + b"\0" * 24)
    with pytest.raises(P.ProtocolError, match="MODE mode"):
        P.FrameDecoder().feed(P.HEADER.pack(P.MAGIC, 1, P.MsgType.MODE, 5) + struct.pack("<IB", 1, 2))
    with pytest.raises(ValueError):
        P.encode(P.Mode(1, 7))
    with pytest.raises(ValueError):
        P.encode(P.Goal(1, (0.0, 0.0)))
    # Values are the receiver's to judge: NaN goes over the wire as NaN.
    nan_goal = P.FrameDecoder().feed(P.encode(P.Goal(1, (NAN, 0.0, 0.0))))[0]
    assert math.isnan(nan_goal.pos[0]) and nan_goal.quat is None


def test_minor_version_in_welcome():
    assert P.welcome_version() == P.PROTOCOL_VERSION + 256 * P.PROTOCOL_MINOR == 257
    assert P.split_version(1) == (1, 0)  # a v1.0 server
    assert P.split_version(P.welcome_version()) == (1, 1)
    welcome = P.FrameDecoder().feed(P.encode(P.Welcome(257, 200, 60, (0.0,) * 6, (1.0,) * 6)))[0]
    assert welcome.version == 257
    # The WELCOME layout is unchanged (v1.0 clients decode it with a fixed size).
    assert len(P.encode(welcome)) == P.HEADER.size + 102


def test_check_goal():
    assert P.check_goal([0.1, 0.2, 0.3]) == ((0.1, 0.2, 0.3), None)
    pos, quat = P.check_goal((0, 0, 0.2), (2.0, 0.0, 0.0, 0.0))
    assert quat == (1.0, 0.0, 0.0, 0.0)
    assert P.check_goal((0, 0, 0.2), (1e300, 1e300, 0.0, 0.0))[1] == pytest.approx((2 ** -0.5, 2 ** -0.5, 0, 0))
    for bad in ([0.1, 0.2], [0.1, NAN, 0.3], [float("inf"), 0, 0], "abc", None):
        with pytest.raises(ValueError, match="goal"):
            P.check_goal(bad)
    for bad in ((0, 0, 0, 0), (1, 0, 0), (NAN, 1, 0, 0), (1, NAN, 0, 0), (float("inf"), 0, 0, 0)):
        with pytest.raises(ValueError, match="quaternion"):
            P.check_goal((0.1, 0.1, 0.2), bad)
