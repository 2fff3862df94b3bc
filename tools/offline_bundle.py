"""Build an offline bundle of dofbot-rl's GPU dependencies, for air-gapped clusters.

On a machine with PyPI access (any OS/CPU)::

    python tools/offline_bundle.py build bundle/ --python 3.12 --platform manylinux_2_28_x86_64

copies wheels for the target Python and platform into ``bundle/``: the exact versions this
environment runs (install ``pip install -e '.[gpu]'`` first), each fetched with
``pip download --no-deps``, plus ``install.sh``.
Carry the folder to the cluster, then, in the target environment (a venv or the image's
Python that already holds a CUDA torch)::

    bash bundle/install.sh /path/to/dofbot-rl   # the clone (configs, data) is carried too

torch is left out by default (clusters bring their own CUDA build; ``--with-torch`` adds
it, several GB); ``--skip numpy,tensorboard,...`` leaves out what the target's image already
holds (and what only they need). The largest wheel is warp-lang (~150 MB); transfer tools with a size cap
per file can use ``--split-mb N`` to cut wheels into parts that ``install.sh`` joins.
"""

import argparse
import subprocess
import sys
from pathlib import Path

#: What the GPU path needs beyond torch (pip resolves their dependencies).
REQUIREMENTS = ["mujoco-warp>=3.3", "warp-lang>=1.8", "mujoco>=3.3", "rl-games>=1.6.1,<1.7", "hydra-core>=1.3",
                "omegaconf>=2.3", "tensorboard>=2.14", "matplotlib>=3.7", "tqdm>=4.66"]

INSTALL_SH = """#!/usr/bin/env bash
# Install dofbot-rl's GPU dependencies from this folder, with no network, then the clone
# given as the first argument (default: the folder above this one) in editable mode.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
clone="${1:-$here/..}"
for first in "$here"/*.part000; do          # re-join split wheels
  [ -e "$first" ] || break
  whl="${first%.part000}"; cat "$whl".part* > "$whl" && rm "$whl".part*
done
python3 -m pip install --no-index --find-links "$here" {nodeps}{extras}
python3 -m pip install --no-index --no-deps --no-build-isolation -e "$clone"
python3 -c "import dofbot_rl, mujoco_warp, warp; print('dofbot-rl offline install ok, warp', warp.__version__)"
"""


def closure(requirements, skip=("torch",)):
    """Pinned ``name==version`` of ``requirements`` and everything they need, as installed here.

    The versions are the ones this environment runs (and tests); ``skip`` names packages
    not to descend into (torch: the cluster brings its own CUDA build).

    Raises:
        importlib.metadata.PackageNotFoundError: if a requirement is not installed here
            (install ``pip install -e '.[gpu]'`` first).
    """
    from importlib import metadata

    from packaging.requirements import Requirement

    pinned, todo = {}, [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = req.name.lower().replace("_", "-")
        if name in pinned or name in skip:
            continue
        dist = metadata.distribution(req.name)
        pinned[name] = f"{name}=={dist.version}"
        for dep in dist.requires or []:
            dep_req = Requirement(dep)
            if dep_req.marker is None or dep_req.marker.evaluate({"extra": ""}):
                todo.append(dep_req)
    return sorted(pinned.values())


def build(out: Path, python: str, platforms, with_torch: bool, split_mb: int, skip=()) -> None:
    """Download pinned wheels for the target into ``out`` and write ``install.sh``.

    Pure-Python packages published only as source (antlr4-python3-runtime 4.9.3, which
    omegaconf 2.3 pins) are built into wheels here.

    Raises:
        subprocess.CalledProcessError: if pip can neither download nor build a wheel.
    """
    out.mkdir(parents=True, exist_ok=True)
    skip = tuple(name.lower().replace("_", "-") for name in skip)
    pins = closure(REQUIREMENTS + (["torch"] if with_torch else []), skip=skip + (() if with_torch else ("torch",)))
    plat = [a for p in platforms for a in ("--platform", p)]
    pip = [sys.executable, "-m", "pip"]
    for pin in pins:
        got = subprocess.run(pip + ["download", "--no-deps", "--only-binary=:all:", "--python-version", python,
                                    "--implementation", "cp", *plat, "-d", str(out), pin])
        if got.returncode:
            subprocess.run(pip + ["wheel", "--no-deps", "-w", str(out), pin], check=True)
    if split_mb:
        limit = split_mb * 1024 * 1024
        for whl in out.glob("*.whl"):
            if whl.stat().st_size > limit:
                data = whl.read_bytes()
                for i in range(0, len(data), limit):
                    Path(f"{whl}.part{i // limit:03d}").write_bytes(data[i:i + limit])
                whl.unlink()
    # With --skip the target's own versions stand in for the skipped packages, whatever pins
    # their dependents' metadata sets (rl-games 1.6.5 asks for psutil < 6): install exactly the
    # closure, which this environment resolved and tested.
    (out / "install.sh").write_text(INSTALL_SH.replace("{extras}", " ".join(f'"{p}"' for p in pins))
                                    .replace("{nodeps}", "--no-deps " if skip else ""))
    print(f"bundle written to {out} ({len(pins)} packages): copy it to the cluster and run `bash {out.name}/install.sh /path/to/dofbot-rl`")


def main(argv=None) -> int:
    """Command line: ``build OUT [--python 3.12] [--platform P ...] [--with-torch] [--split-mb N] [--skip A,B]``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="download wheels for the target into a folder")
    b.add_argument("out", type=Path)
    b.add_argument("--python", default="3.12", help="target Python version (default 3.12)")
    b.add_argument("--platform", action="append", default=None,
                   help="pip platform tag(s) of the target (default: manylinux 2_17 .. 2_34 x86_64)")
    b.add_argument("--with-torch", action="store_true", help="include torch (a multi-GB CUDA build)")
    b.add_argument("--split-mb", type=int, default=0, help="split wheels larger than this many MiB")
    b.add_argument("--skip", action="append", default=[],
                   help="comma-separated packages the target already has (left out, with what only they need)")
    args = parser.parse_args(argv)
    platforms = args.platform or [f"manylinux_2_{n}_x86_64" for n in (17, 24, 27, 28, 31, 34)] + ["manylinux2014_x86_64"]
    skip = [name.strip() for arg in args.skip for name in arg.split(",") if name.strip()]
    build(args.out, args.python, platforms, args.with_torch, args.split_mb, skip)
    return 0


if __name__ == "__main__":
    sys.exit(main())
