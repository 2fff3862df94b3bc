"""Command-line pieces shared by the server (:mod:`.server`) and the onboard runner (:mod:`.onboard`).

Standard library only, Python 3.6 compatible. Every number option is checked for
finiteness and range as it is parsed, and a bad one is one line on stderr
(``dofbot-rl: error: argument --port: ...``) with exit status 2; nothing starts before.
"""

import argparse
import logging
import logging.handlers
import math
import sys

from . import protocol as P


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one line, ``dofbot-rl: error: ...``, exit status 2."""

    def error(self, message):
        self.exit(2, "dofbot-rl: error: %s\n" % message)


def number(kind, low=None, high=None, low_open=False):
    """An argparse ``type``: a finite ``kind`` (int or float) in ``[low, high]`` (``(low, high]`` with ``low_open``).

    Raises (when parsing):
        argparse.ArgumentTypeError: not a number, not finite, or out of range (one line).
    """
    lo = "" if low is None else ("(%g" if low_open else "[%g") % low
    hi = "" if high is None else "%g]" % high
    expected = "a%s %s%s" % ("n" if kind is int else "", "integer" if kind is int else "number",
                             " in %s, %s" % (lo or "(-inf", hi or "inf)") if lo or hi else "")

    def parse(text):
        try:
            value = kind(text)
        except (TypeError, ValueError):
            value = None
        ok = value is not None and math.isfinite(value)
        if ok and low is not None:
            ok = value > low if low_open else value >= low
        if ok and high is not None:
            ok = value <= high
        if not ok:
            raise argparse.ArgumentTypeError("must be %s, got %r" % (expected, text))
        return value
    return parse


def float_list(n, what):
    """An argparse ``type``: ``n`` comma-separated finite numbers (``what`` names the option in errors)."""
    def parse(text):
        try:
            return list(P.as_floats(text.split(","), n, what))
        except ValueError:
            raise argparse.ArgumentTypeError("%s must be %d comma-separated finite numbers, got %r" % (what, n, text))
    return parse


def configure_logging(log_file, level):
    """Send the root logger to ``log_file`` (rotated at 5 MB, 3 backups) or stderr; returns the handler."""
    root = logging.getLogger()
    if log_file:
        handler = logging.handlers.RotatingFileHandler(log_file, maxBytes=5 * 1024 * 1024, backupCount=3)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(getattr(logging, level))
    return handler
