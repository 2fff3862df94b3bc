"""Python 3.6 (JetPack 4's) with numpy, for the on-robot tests and benchmarks.

pyenv's 3.6.15 has no numpy; the Jetson ships one. numpy for 3.6 (the last release
with 3.6 wheels, 1.19.5) is pip-installed once into ``~/.cache/dofbot-rl/py36``.
"""

import os
import subprocess

NUMPY_CACHE = os.path.expanduser("~/.cache/dofbot-rl/py36")


def find_python36():
    """Path of pyenv's Python 3.6.15, or None."""
    candidates = []
    try:
        root = subprocess.run(["pyenv", "root"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              universal_newlines=True, timeout=10).stdout.strip()
        if root:
            candidates.append(os.path.join(root, "versions", "3.6.15", "bin", "python"))
    except (OSError, subprocess.SubprocessError):
        pass
    candidates.append(os.path.expanduser("~/.pyenv/versions/3.6.15/bin/python"))
    return next((p for p in candidates if os.path.exists(p)), None)


def _has_numpy(python, extra_path):
    env = dict(os.environ, PYTHONPATH=extra_path)
    env.pop("PYTHONHOME", None)
    out = subprocess.run([python, "-c", "import numpy"], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, timeout=60)
    return out.returncode == 0


def python36_with_numpy():
    """``(python, pythonpath_entry, reason)``: the interpreter and the path entry holding numpy.

    ``python`` is None when 3.6 is absent or numpy cannot be had; ``reason`` says why.
    """
    python = find_python36()
    if python is None:
        return None, "", "pyenv's Python 3.6.15 is not installed"
    if _has_numpy(python, ""):
        return python, "", ""
    if not _has_numpy(python, NUMPY_CACHE):
        try:
            out = subprocess.run([python, "-m", "pip", "install", "--disable-pip-version-check", "-q",
                                  "--target", NUMPY_CACHE, "numpy>=1.13,<1.20"],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                                 timeout=300)
        except (OSError, subprocess.SubprocessError) as exc:
            return None, "", "cannot pip-install numpy for Python 3.6: %s" % exc
        if out.returncode != 0 or not _has_numpy(python, NUMPY_CACHE):
            return None, "", "cannot pip-install numpy for Python 3.6 (network?): %s" % out.stdout[-300:]
    return python, NUMPY_CACHE, ""
