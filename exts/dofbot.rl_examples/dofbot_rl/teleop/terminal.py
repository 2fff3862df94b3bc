"""Drive a :class:`~dofbot_rl.teleop.model.TeleopModel` from a terminal (no Isaac Sim).

Used by ``dofbot-rl play teleop=True``. Keys are read from a TTY one at a time without
Enter (``termios`` cbreak mode, non-blocking ``select``). A terminal reports key presses,
never releases, so holding a key is approximated by the terminal's key repeat: a jog key
counts as held for ``hold_s`` (0.15 s) after the last time it was seen. With the usual
repeat settings (first repeat after ~0.25-0.5 s, then ~30 Hz) a held key jogs for 0.15 s,
pauses until repeat starts, then jogs continuously; a single tap jogs ``speed * 0.15 s``.

Ctrl-C still interrupts (cbreak mode keeps signals). Escape sequences of the arrow / page
keys are decoded; a lone ESC is the release key.

Typical loop (the play loop owns the task)::

    model = TeleopModel(TeleopBindings.from_config(cfg.task.teleop))
    model.select(0, task.dof_pos[0])
    with TerminalTeleop(model, dof_pos_of=lambda i: task.dof_pos[i], num_envs=n) as term:
        while running:
            term.poll()
            drive_task(model, task, dt)
            ...step the policy and the physics...
"""

from __future__ import annotations

import io
import math
import os
import select
import shutil
import sys
import termios
import time
import tty
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from dofbot_rl import robot
from dofbot_rl.teleop.model import TeleopModel
from dofbot_rl.errors import DofbotRlError

__all__ = ["HOLD_S", "NotATerminalError", "TerminalTeleop", "decode_keys", "format_status"]

#: How long (s) a jog key counts as held after it was last read.
HOLD_S = 0.15

_CHAR_KEYS = {
    " ": "SPACE", "'": "APOSTROPHE", ",": "COMMA", "-": "MINUS", ".": "PERIOD", "/": "SLASH",
    ";": "SEMICOLON", "=": "EQUAL", "[": "LEFT_BRACKET", "\\": "BACKSLASH", "]": "RIGHT_BRACKET",
    "`": "GRAVE_ACCENT", "\t": "TAB", "\r": "ENTER", "\n": "ENTER", "\x7f": "BACKSPACE", "\x08": "BACKSPACE",
}
# Final byte of "ESC [ x" / "ESC O x" -> key; "ESC [ n ~" -> key.
_CSI_FINAL = {"A": "UP", "B": "DOWN", "C": "RIGHT", "D": "LEFT", "H": "HOME", "F": "END"}
_CSI_TILDE = {"1": "HOME", "2": "INSERT", "3": "DEL", "4": "END", "5": "PAGE_UP", "6": "PAGE_DOWN",
              "7": "HOME", "8": "END"}
_SELECT_KEYS = frozenset(["KEY_%d" % i for i in range(10)] + ["ENTER", "BACKSPACE"])


class NotATerminalError(DofbotRlError, RuntimeError):
    """stdin is not an interactive terminal (a pipe, a file, or no file descriptor)."""


def decode_keys(text: str, final: bool = False) -> "tuple[list, str]":
    """Split terminal input into key names (``carb.input.KeyboardInput`` spelling).

    Letters map to upper case (``q`` and ``Q`` are both ``"Q"``), digits to ``"KEY_n"``,
    punctuation / Tab / Enter / Backspace to their names, ``ESC [ A`` etc. to the arrow and
    page keys, a lone ESC to ``"ESCAPE"``. Other characters (shifted symbols, control
    characters, unknown escape sequences) are dropped.

    Args:
        text: characters read from the terminal.
        final: no more input follows: a trailing lone ESC is ``"ESCAPE"`` and a trailing
            incomplete sequence is dropped, instead of being returned as ``rest``.

    Returns:
        ``(keys, rest)``: the decoded key names, and a trailing incomplete escape sequence
        (``""`` if none, always ``""`` when ``final``) to prepend to the next read.
    """
    keys = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "\x1b":
            if ch.isascii() and ch.isalpha():
                keys.append(ch.upper())
            elif ch.isascii() and ch.isdigit():
                keys.append("KEY_" + ch)
            elif ch in _CHAR_KEYS:
                keys.append(_CHAR_KEYS[ch])
            i += 1
            continue
        if i + 1 >= n:  # maybe the start of a sequence: decide on the next read
            return (keys + ["ESCAPE"], "") if final else (keys, text[i:])
        intro = text[i + 1]
        if intro not in "[O":
            keys.append("ESCAPE")  # ESC followed by another key (or Alt+key): ESC, then that key
            i += 1
            continue
        j = i + 2
        while j < n and not ("@" <= text[j] <= "~"):
            j += 1
        if j >= n:
            return keys, ("" if final else text[i:])
        params, last = text[i + 2:j], text[j]
        key = _CSI_TILDE.get(params) if last == "~" else _CSI_FINAL.get(last)
        if key is not None:
            keys.append(key)
        i = j + 1
    return keys, ""


def format_status(model: TeleopModel, hint: str = "") -> str:
    """One-line status: the selected env and its 6 joint targets in degrees.

    Example: ``"teleop env 0 | j1 +12.0 j2  -4.0 j3  +0.0 j4  +0.0 j5  +0.0 grip +10.0 deg | ESC release, Z reset"``;
    ``hint`` (if any) is appended after ``" | "``, replacing the key reminder.
    """
    b = model.bindings
    if model.selected_env is None:
        line = "teleop: no robot selected, the policy drives all"
    else:
        names = ["j%d" % (i + 1) for i in range(robot.NUM_ARM_JOINTS)] + ["grip"]
        angles = " ".join("%s %+5.1f" % (n, math.degrees(q)) for n, q in zip(names, model.targets))
        line = "teleop env %d | %s deg" % (model.selected_env, angles)
        if not hint:
            hint = "%s release, %s reset" % (b.release_key.replace("ESCAPE", "ESC"), b.reset_key)
    return line + (" | " + hint if hint else "")


class TerminalTeleop:
    """Feeds a :class:`TeleopModel` from a terminal and renders a one-line status.

    Use as a context manager (puts the terminal in cbreak mode, restores it on exit, also on
    error) and call :meth:`poll` once per control step. It only feeds keys; the play loop
    calls :func:`~dofbot_rl.teleop.model.drive_task` to advance the model and apply targets.

    Optional env selection: with ``dof_pos_of`` and ``num_envs``, typing an env number and
    Enter selects that env (Enter alone re-selects the last env driven, initially env 0).

    Args:
        model: the teleop model to feed.
        stream_in: the terminal to read; must have a ``fileno()`` that is a TTY (``None``: ``sys.stdin``).
        stream_out: where the status line goes, ``write`` / ``flush`` (``None``: ``sys.stdout``).
        dof_pos_of: ``env_id -> 6 joint positions (rad)`` (sequence or ``(6,)`` tensor), used to select an env.
        num_envs: number of envs, bounds the typed env number; required with ``dof_pos_of``.
        hold_s: how long (s) a jog key counts as held after it was last read.
        clock: monotonic time source (s), injectable for tests.

    Raises:
        NotATerminalError: if ``stream_in`` has no file descriptor or is not a TTY.
        ValueError: if ``hold_s <= 0``, ``dof_pos_of`` comes without ``num_envs >= 1``, or the
            bindings use a digit / Enter / Backspace while env selection is on.
    """

    def __init__(
        self,
        model: TeleopModel,
        stream_in: "TextIO | None" = None,
        stream_out: "TextIO | None" = None,
        *,
        dof_pos_of: "Callable[[int], Sequence[float] | Any] | None" = None,
        num_envs: "int | None" = None,
        hold_s: float = HOLD_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        stream_in = sys.stdin if stream_in is None else stream_in
        stream_out = sys.stdout if stream_out is None else stream_out
        if not hold_s > 0.0:
            raise ValueError("hold_s must be > 0 s, got %r" % (hold_s,))
        if dof_pos_of is not None:
            if num_envs is None or num_envs < 1:
                raise ValueError("num_envs (>= 1) is required with dof_pos_of, got %r" % (num_envs,))
            clash = sorted(model.bindings.keys & _SELECT_KEYS)
            if clash:
                raise ValueError(
                    "keys %s are bound in teleop.bindings but select envs in the terminal; "
                    "bind other keys or pass dof_pos_of=None" % clash)
        try:
            fd = stream_in.fileno()
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            fd = None
        if fd is None or not os.isatty(fd):
            raise NotATerminalError(
                "terminal teleop needs an interactive terminal on stdin, but %r is not a TTY "
                "(a pipe or a file?); run `dofbot-rl play teleop=True` in a terminal or tmux, "
                "or drop teleop=True" % (getattr(stream_in, "name", stream_in),))
        self._model = model
        self._fd = fd
        self._out = stream_out
        self._dof_pos_of = dof_pos_of
        self._num_envs = num_envs
        self._hold_s = float(hold_s)
        self._clock = clock
        self._saved_attrs = None
        self._pending = ""
        self._held = {}  # jog key -> time (s) it was last read
        self._typed = ""
        self._last_env = model.selected_env if model.selected_env is not None else 0
        self._hint = ""
        self._shown = None

    # -- terminal mode -------------------------------------------------------------

    def open(self) -> "TerminalTeleop":
        """Save the terminal attributes and switch to cbreak mode (no echo, no line buffering)."""
        if self._saved_attrs is None:
            self._saved_attrs = termios.tcgetattr(self._fd)
            tty.setcbreak(self._fd, termios.TCSANOW)
        return self

    def close(self) -> None:
        """Release held keys, end the status line and restore the terminal. Idempotent."""
        for key in list(self._held):
            self._model.key_up(key)
        self._held.clear()
        if self._saved_attrs is not None:
            try:
                termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved_attrs)
            finally:
                self._saved_attrs = None
                if self._shown is not None:
                    self._out.write("\n")
                    self._out.flush()
                    self._shown = None

    def __enter__(self) -> "TerminalTeleop":
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- per step ------------------------------------------------------------------

    def poll(self) -> list:
        """Read the keys typed since the last call (never blocks), feed them to the model,
        expire jog keys not seen for ``hold_s`` and redraw the status line if it changed.

        Returns:
            The key names read this call.

        Raises:
            RuntimeError: if called outside the context manager / before :meth:`open`.
        """
        if self._saved_attrs is None:
            raise RuntimeError("TerminalTeleop.poll() called before open() / outside its `with` block")
        now = self._clock()
        text = self._read()
        # A pending ESC with nothing after it one poll later was a lone ESC press.
        keys, self._pending = decode_keys(self._pending + text, final=not text)
        model = self._model
        for key in keys:
            if self._dof_pos_of is not None and key in _SELECT_KEYS:
                self._select_key(key)
            elif model.bindings.jog_of(key) is not None:
                if model.key_down(key):
                    self._held[key] = now
            else:
                model.key_down(key)
                model.key_up(key)
        for key, seen in list(self._held.items()):
            if now - seen >= self._hold_s or model.selected_env is None:
                model.key_up(key)
                del self._held[key]
        if model.selected_env is not None:
            self._last_env = model.selected_env
        self._render()
        return keys

    def _read(self) -> str:
        chunks = []
        while select.select([self._fd], [], [], 0.0)[0]:
            data = os.read(self._fd, 1024)
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks).decode("utf-8", errors="ignore")

    def _select_key(self, key: str) -> None:
        if key != "ENTER":
            self._typed = self._typed[:-1] if key == "BACKSPACE" else (self._typed + key[-1])[-6:]
            self._hint = "env %s_ (Enter selects)" % self._typed if self._typed else ""
            return
        env_id = int(self._typed) if self._typed else self._last_env
        self._typed = ""
        if env_id >= self._num_envs:
            self._hint = "no env %d (num_envs %d)" % (env_id, self._num_envs)
            return
        for held in list(self._held):
            self._model.key_up(held)
        self._held.clear()
        self._model.select(env_id, self._dof_pos_of(env_id))
        self._hint = ""

    def _render(self) -> None:
        hint = self._hint
        if not hint and self._model.selected_env is None and self._dof_pos_of is not None:
            hint = "Enter drives env %d, or type an env number + Enter" % self._last_env
        line = format_status(self._model, hint)
        width = shutil.get_terminal_size((120, 24)).columns
        line = line[: max(width - 1, 20)]
        if line != self._shown:
            self._out.write("\r" + line + "\x1b[K")
            self._out.flush()
            self._shown = line
