"""Run the timing-sensitive tests again and again on a loaded machine, and count what fails.

    python tools/flake_hunt.py [--rounds=5] [--hogs=2] [pytest paths or -k ...]

CI runs on 2 busy cores; a test that waits for the wrong signal (an intermediate event instead
of the state it then asserts) passes on a quiet machine and fails there once in a while. This
runs the given tests (default: the threaded and networked ones) ``rounds`` times while
``hogs`` processes spin on the CPU, and prints each failing test with its failure count.
Exit status 1 when anything failed.
"""

import multiprocessing
import re
import subprocess
import sys
from collections import Counter

DEFAULT = ["tests/sim2real", "tests/studio", "tests/panel", "tests/teleop", "tests/test_threaded_bridge.py"]


def _spin():
    while True:
        pass


def main(argv):
    opts = dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)
    rest = [a for a in argv if not (a.startswith("--") and "=" in a)] or DEFAULT
    hogs = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(int(opts.get("hogs", 2)))]
    for h in hogs:
        h.start()
    failures = Counter()
    rounds = int(opts.get("rounds", 5))
    try:
        for i in range(rounds):
            r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rf", *rest], capture_output=True, text=True)
            failed = re.findall(r"^FAILED (\S+)", r.stdout, re.M)
            failures.update(failed)
            print(f"round {i + 1}/{rounds}: {r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr[-200:]}",
                  flush=True)
    finally:
        for h in hogs:
            h.terminate()
    for test, n in failures.most_common():
        print(f"{n}/{rounds}  {test}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
