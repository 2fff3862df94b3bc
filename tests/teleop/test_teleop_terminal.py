"""Terminal driver through a pseudo-terminal: key decoding, hold by key repeat, ESC, reset,
env selection, status line, terminal restore and the non-TTY error."""

import io
import math
import os
import pty
import select
import termios

import pytest
import torch

from dofbot_rl.teleop import TeleopBindings, TeleopModel, drive_task
from dofbot_rl.teleop.terminal import HOLD_S, NotATerminalError, TerminalTeleop, decode_keys, format_status

DT = 0.05


class Clock:
    """Manual monotonic clock (s)."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    """The status line is cut to the terminal width; make it independent of the test runner's."""
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture
def pty_pair():
    master, slave = pty.openpty()
    stream_in = os.fdopen(slave, "r", closefd=True)
    yield master, stream_in
    stream_in.close()
    os.close(master)


def type_keys(master, stream_in, data: bytes):
    """Write ``data`` as if typed and wait until the slave side can read it."""
    os.write(master, data)
    assert select.select([stream_in.fileno()], [], [], 2.0)[0], "pty delivered nothing"


def make(stream_in, clock, **kwargs):
    model = TeleopModel()
    out = io.StringIO()
    term = TerminalTeleop(model, stream_in, out, clock=clock, **kwargs)
    return model, term, out


def test_decode_keys():
    assert decode_keys("qA1 ,\r\n\t\x7f") == (["Q", "A", "KEY_1", "SPACE", "COMMA", "ENTER", "ENTER", "TAB", "BACKSPACE"], "")
    assert decode_keys("\x1b[A\x1b[B\x1bOC\x1b[D\x1b[5~\x1b[3~") == (["UP", "DOWN", "RIGHT", "LEFT", "PAGE_UP", "DEL"], "")
    assert decode_keys("q\x1b") == (["Q"], "\x1b")  # maybe a sequence: wait
    assert decode_keys("\x1b", final=True) == (["ESCAPE"], "")
    assert decode_keys("\x1b[") == ([], "\x1b[")
    assert decode_keys("\x1b[", final=True) == ([], "")
    assert decode_keys("\x1bq") == (["ESCAPE", "Q"], "")
    assert decode_keys("\x1b[1;5A\x1b[99~!\x03") == (["UP"], "")  # ctrl-up, unknown sequence, shifted symbol, ctrl-c byte


def test_not_a_tty_is_a_clear_error():
    with pytest.raises(NotATerminalError, match="not a TTY"):
        TerminalTeleop(TeleopModel(), io.StringIO(), io.StringIO())
    r, w = os.pipe()
    try:
        with os.fdopen(r, "r", closefd=False) as pipe_in, pytest.raises(NotATerminalError, match="interactive terminal"):
            TerminalTeleop(TeleopModel(), pipe_in, io.StringIO())
    finally:
        os.close(r)
        os.close(w)


def test_bad_arguments(pty_pair):
    _, stream_in = pty_pair
    with pytest.raises(ValueError, match="hold_s"):
        TerminalTeleop(TeleopModel(), stream_in, io.StringIO(), hold_s=0.0)
    with pytest.raises(ValueError, match="num_envs"):
        TerminalTeleop(TeleopModel(), stream_in, io.StringIO(), dof_pos_of=lambda i: [0.0] * 6)
    digits = TeleopBindings.from_config({"bindings": {"joint1": ["1", "2"]}})
    with pytest.raises(ValueError, match=r"KEY_1.*select envs"):
        TerminalTeleop(TeleopModel(digits), stream_in, io.StringIO(), dof_pos_of=lambda i: [0.0] * 6, num_envs=2)
    with pytest.raises(RuntimeError, match="before open"):
        TerminalTeleop(TeleopModel(), stream_in, io.StringIO()).poll()


def test_cbreak_mode_and_restore(pty_pair):
    _, stream_in = pty_pair
    fd = stream_in.fileno()
    before = termios.tcgetattr(fd)
    assert before[3] & termios.ICANON and before[3] & termios.ECHO
    model, term, out = make(stream_in, Clock())
    with pytest.raises(KeyError):
        with term:
            during = termios.tcgetattr(fd)
            assert not during[3] & termios.ICANON and not during[3] & termios.ECHO
            assert during[3] & termios.ISIG  # Ctrl-C still interrupts
            term.poll()
            raise KeyError("boom")  # restored on error too
    assert termios.tcgetattr(fd) == before
    assert out.getvalue().endswith("\n")
    term.close()  # idempotent


def test_jog_hold_by_key_repeat_release_and_status(pty_pair):
    master, stream_in = pty_pair
    clock = Clock()
    model, term, out = make(stream_in, clock)
    model.select(0, [0.0] * 6)
    with term:
        type_keys(master, stream_in, b"a")
        assert term.poll() == ["A"]
        assert model.held_keys == {"A"}
        # Key repeat every 0.05 s keeps it held for 10 steps.
        for step in range(10):
            model.update(DT)
            clock.now += DT
            if step < 9:
                type_keys(master, stream_in, b"a")
            term.poll()
        assert model.targets[0] == pytest.approx(10 * DT)
        # No repeat any more: released after HOLD_S, then the target holds.
        clock.now += HOLD_S
        assert term.poll() == []
        assert model.held_keys == frozenset()
        held = model.targets
        model.update(1.0)
        assert model.targets == held
        status = out.getvalue().rsplit("\r", 1)[-1]
        assert status.startswith("teleop env 0 | j1 +%.1f" % math.degrees(held[0]))
        assert status.endswith("\x1b[K") and "\n" not in out.getvalue()
        # Reset key, then lone ESC (decided one poll later, when nothing follows it).
        type_keys(master, stream_in, b"z")
        term.poll()
        assert model.targets == pytest.approx([0.0] * 6)
        type_keys(master, stream_in, b"\x1b")
        assert term.poll() == []
        assert model.selected_env == 0
        assert term.poll() == ["ESCAPE"]
        assert model.selected_env is None
        assert "no robot selected" in out.getvalue().rsplit("\r", 1)[-1]
        # Keys do nothing while released.
        type_keys(master, stream_in, b"a")
        term.poll()
        assert model.held_keys == frozenset()


def test_arrow_keys_are_not_taken_for_escape(pty_pair):
    master, stream_in = pty_pair
    model, term, _ = make(stream_in, Clock())
    model.select(1, [0.0] * 6)
    with term:
        type_keys(master, stream_in, b"\x1b[A")
        assert term.poll() == ["UP"]
        assert model.selected_env == 1


def test_select_env_by_typing_its_number(pty_pair):
    master, stream_in = pty_pair
    poses = torch.tensor([[0.0] * 6, [0.1] * 6, [0.2] * 6, [0.3] * 6])
    model, term, out = make(stream_in, Clock(), dof_pos_of=lambda i: poses[i], num_envs=4)
    with term:
        term.poll()
        assert "Enter drives env 0" in out.getvalue()
        type_keys(master, stream_in, b"\n")
        term.poll()
        assert model.selected_env == 0
        type_keys(master, stream_in, b"35\x7f")
        term.poll()
        assert "env 3_ (Enter selects)" in out.getvalue().rsplit("\r", 1)[-1]
        type_keys(master, stream_in, b"\r")
        term.poll()
        assert model.selected_env == 3 and model.targets == pytest.approx([0.3] * 6)
        assert model.take_released_envs() == (0,)
        type_keys(master, stream_in, b"9\n")
        term.poll()
        assert model.selected_env == 3
        assert "no env 9 (num_envs 4)" in out.getvalue().rsplit("\r", 1)[-1]
        type_keys(master, stream_in, b"\x1b")
        term.poll()
        term.poll()
        assert model.selected_env is None
        type_keys(master, stream_in, b"\n")  # Enter alone: the last env driven
        term.poll()
        assert model.selected_env == 3


def test_end_to_end_with_stub_task(pty_pair, make_task):
    master, stream_in = pty_pair
    clock = Clock()
    task = make_task(num_envs=2)
    policy = torch.full((2, 6), 0.05)
    model, term, _ = make(stream_in, clock)
    model.select(0, policy[0])
    with term:
        for step in range(20):  # hold W (joint2 minus) by repeat for 1 s
            type_keys(master, stream_in, b"w")
            term.poll()
            drive_task(model, task, DT)
            task.apply_policy(policy)
            clock.now += DT
    assert task.joint_pos_targets[0, 1].item() == pytest.approx(max(0.05 - 20 * DT, -math.pi / 4), abs=1e-6)
    assert torch.equal(task.joint_pos_targets[1], policy[1])
    assert model.held_keys == frozenset()  # closing released the held key


def test_format_status_without_selection():
    assert format_status(TeleopModel()) == "teleop: no robot selected, the policy drives all"
    assert format_status(TeleopModel(), "hint").endswith(" | hint")


def test_status_line_fits_the_terminal_width(pty_pair, monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    _, stream_in = pty_pair
    model, term, out = make(stream_in, Clock())
    model.select(0, [0.0] * 6)
    with term:
        term.poll()
    line = out.getvalue().strip("\n").rsplit("\r", 1)[-1]
    assert line.endswith("\x1b[K") and len(line) - len("\x1b[K") == 39
