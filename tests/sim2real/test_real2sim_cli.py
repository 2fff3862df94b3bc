"""``dofbot-rl play sim2real.mode=real2sim`` against a hostile server: one line, no traceback (issue 18.14)."""

import socket
import subprocess
import sys
import threading

import pytest

from dofbot_rl import robot
from dofbot_rl.sim2real import protocol as P


def _serve_bad_readback(listener, bad, good_acks=20):
    """WELCOME, then ``good_acks`` sane ACKs, then ACKs whose joint2 read-back is ``bad``."""
    conn, _ = listener.accept()
    conn.settimeout(60.0)
    dec, n = P.FrameDecoder(), 0
    try:
        while True:
            data = conn.recv(4096)
            if not data:
                break
            for msg in dec.feed(data):
                if isinstance(msg, P.Hello):
                    conn.sendall(P.encode(P.Welcome(257, 200, 60, robot.SAFE_LIMITS_LOWER, robot.SAFE_LIMITS_UPPER)))
                else:
                    n += 1
                    rb = (0.1, bad if n > good_acks else 0.1, 0.0, 0.0, 0.0, 0.0)
                    conn.sendall(P.encode(P.Ack(msg.seq, 0, 5, (float("nan"),) * 6, (0.0,) * 6, rb)))
    except OSError:
        pass
    finally:
        conn.close()


@pytest.mark.parametrize("bad", [float("inf"), 1e308])
def test_play_real2sim_hostile_readback_is_one_line(bad):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(2)
    thread = threading.Thread(target=_serve_bad_readback, args=(listener, bad), daemon=True)
    thread.start()
    try:
        out = subprocess.run([sys.executable, "-c", "import sys; from dofbot_rl.cli import main; sys.exit(main())",
                              "play", "num_envs=2", "episodes=2", "sim2real.enabled=True", "sim2real.mode=real2sim",
                              "sim2real.port=%d" % listener.getsockname()[1]],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=300)
    finally:
        listener.close()
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("dofbot-rl: error: the server sent read-back joint2 = ") and "outside the joint limits" in last
