"""The training image (``Dockerfile``), built and run with podman on this machine.

The base is plain Debian made here from the Debian mirror (``mmdebstrap ... | podman import``),
so it has no torch and the Dockerfile installs ``TORCH_SPEC`` itself. The container trains
3 epochs, plays and exports the checkpoint as an unprivileged user with ``runs/`` mounted from the
host; the test checks the final lines, that every file the container wrote is in the
mounted folder and belongs to that user, and that the named cache volume took that user's
caches. A last test runs docs/containers.md's torchrun line on the CPU (2 ranks, gloo).

Slow (minutes: the first run also makes the base and installs torch in the image); skipped
without podman or mmdebstrap. Not in the default selection. One command (docs/containers.md)::

    python -m pytest -m slow tests/test_container.py -s

Host workarounds live here, not in the Dockerfile:

- ``--runtime runc``: crun refuses this host's hybrid cgroup layout;
- ``--ulimit nofile=20000:20000 --ulimit nproc=32768:32768``: the OCI defaults exceed what
  this host lets a container set;
- pip inside the build uses the host's pip configuration: the settings ``pip config list``
  shows are written to a temporary ``pip.conf`` mounted at ``/etc/pip.conf`` for the build,
  and the local files and folders it names (the folder holding the CPU torch wheel, local
  indexes, the CA bundle) are mounted read-only at the same paths. Build-time mounts are not
  part of any layer: nothing of the host's configuration lands in the image (checked; podman
  leaves the empty mount-point file ``/etc/pip.conf`` behind).
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed (Debian: apt-get install podman runc)"),
]

ROOT = Path(__file__).resolve().parents[1]
BASE = "localhost/dofbot-rl-base:bookworm"
IMAGE = "localhost/dofbot-rl:test"
CACHE_VOLUME = "dofbot-rl-test-cache"
ULIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"]
PIP_PATH_KEYS = ("find-links", "index-url", "extra-index-url", "cert", "client-cert", "constraint")
TRAIN_LINE = re.compile(r"^checkpoint=(\S+) goals_per_episode=(\S+) success_rate=(\S+) epochs=3$")
PLAY_LINE = re.compile(r"^success_rate=([0-9.]+) goals_per_episode=([0-9.]+) episodes=(\d+)$")
EXPORT_LINE = re.compile(r"^max_abs_diff=\S+ samples=\d+ formats=\S*onnx\S*$")


def podman(*args, timeout=3600, check=True, **kwargs):
    """Run ``podman [--runtime runc] ARGS``; returns the CompletedProcess (text)."""
    runtime = ["--runtime", "runc"] if shutil.which("runc") else []
    cmd = ["podman", *runtime, *args]
    result = subprocess.run(cmd, text=True, capture_output=True, timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        pytest.fail(f"{shlex.join(cmd)} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def host_pip_mounts(conf: Path):
    """Write the host's effective pip settings to ``conf``; return the build's ``-v`` options."""
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], text=True, capture_output=True, check=True)
    settings = {}
    for line in listed.stdout.splitlines():  # e.g. global.find-links='/opt/wheels', :env:.cert='...'
        name, sep, value = line.partition("=")
        if sep:
            settings[name.rpartition(".")[2]] = value.strip("'\"")
    conf.write_text("[global]\n" + "".join(f"{key} = {value}\n" for key, value in settings.items()))
    mounts = ["-v", f"{conf}:/etc/pip.conf:ro"]
    paths = set()
    for key in PIP_PATH_KEYS:
        for token in settings.get(key, "").split():
            path = token[len("file://"):] if token.startswith("file://") else token
            if key.endswith("index-url"):  # a local index's pages link files beside it: <root>/simple, <root>/files
                path = os.path.dirname(path.rstrip("/"))
            if path.startswith("/") and os.path.exists(path):
                paths.add(path)
    for path in sorted(paths):
        mounts += ["-v", f"{path}:{path}:ro"]
    return mounts


@pytest.fixture(scope="module")
def base_image():
    """The plain Debian base (made once from the Debian mirror, then reused)."""
    if podman("image", "exists", BASE, check=False).returncode == 0:
        return BASE
    if shutil.which("mmdebstrap") is None:
        pytest.skip(f"{BASE} is missing and mmdebstrap is not installed to make it (Debian: apt-get install mmdebstrap)")
    start = time.monotonic()
    debstrap = subprocess.Popen(
        ["mmdebstrap", "--variant=apt", "--include=ca-certificates,python3,python3-venv", "bookworm", "-",
         "http://deb.debian.org/debian"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    imported = subprocess.run(["podman", "import", "-", BASE], stdin=debstrap.stdout, capture_output=True, text=True,
                              timeout=3600)
    debstrap.stdout.close()
    assert debstrap.wait(timeout=60) == 0 and imported.returncode == 0, imported.stderr
    print(f"\nbase image {BASE}: made in {time.monotonic() - start:.0f} s")
    return BASE


@pytest.fixture(scope="module")
def image(base_image, tmp_path_factory):
    """The training image, built from the Dockerfile on ``base_image`` (podman reuses cached layers)."""
    mounts = host_pip_mounts(tmp_path_factory.mktemp("pip") / "pip.conf")
    start = time.monotonic()
    podman("build", *ULIMITS, *mounts, "--build-arg", f"BASE={base_image}", "-t", IMAGE, str(ROOT))
    size = int(podman("image", "inspect", IMAGE, "--format", "{{.Size}}").stdout)
    print(f"\nimage {IMAGE}: built in {time.monotonic() - start:.0f} s (cached layers reused), {size / 1e9:.2f} GB")
    return IMAGE


def run_in_image(image, runs: Path, *args):
    """``dofbot-rl ARGS`` in the image as the host user (uid of ``runs``), ``runs`` mounted at /workspace/runs."""
    owner = runs.stat()
    user = ["--userns=keep-id"] if os.getuid() != 0 else ["--user", f"{owner.st_uid}:{owner.st_gid}"]
    return podman("run", "--rm", *ULIMITS, *user, "-v", f"{runs}:/workspace/runs", "-v", f"{CACHE_VOLUME}:/cache",
                  image, *args)


def test_image_trains_and_plays_as_host_user(image, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    # Rootless podman maps the invoking user (--userns=keep-id). Run as root (CI), the "host
    # user" is an unprivileged uid owning the folder: files must not come back as root.
    if os.getuid() == 0:
        os.chown(runs, 4321, 4321)
    uid = runs.stat().st_uid
    try:
        start = time.monotonic()
        train = run_in_image(image, runs, "train", "num_envs=64", "max_iterations=3")
        print(f"\ntrain in the container: {time.monotonic() - start:.0f} s; {train.stdout.strip().splitlines()[-1]}")
        play = run_in_image(image, runs, "play", "num_envs=64", "episodes=64")
        print(f"play in the container: {play.stdout.strip().splitlines()[-1]}")
        exported = run_in_image(image, runs, "export", "format=all", "verify=True", "samples=1000")
        cache_owner = podman("run", "--rm", *ULIMITS, "-v", f"{CACHE_VOLUME}:/cache", "--entrypoint", "stat", image,
                             "-c", "%u", "/cache/matplotlib").stdout.strip()
    finally:
        podman("volume", "rm", "-f", CACHE_VOLUME, check=False)

    match = TRAIN_LINE.match(train.stdout.strip().splitlines()[-1])
    assert match, train.stdout
    checkpoint = Path(match.group(1))
    assert checkpoint.parts[:2] == ("runs", "DofbotReacher") and checkpoint.suffix == ".pth"
    on_host = tmp_path / checkpoint
    assert on_host.is_file() and on_host.stat().st_uid == uid
    assert (runs / "DofbotReacher" / "learning_curve.png").is_file()

    match = PLAY_LINE.match(play.stdout.strip().splitlines()[-1])
    assert match, play.stdout
    assert 0.0 <= float(match.group(1)) <= 1.0 and int(match.group(3)) >= 64

    assert EXPORT_LINE.match(exported.stdout.strip().splitlines()[-1]), exported.stdout
    assert {p.name for p in (runs / "DofbotReacher" / "export").iterdir()} >= {"policy.onnx", "policy.npz"}

    assert cache_owner == str(uid)  # the named cache volume is writable by the host user

    written = list(runs.rglob("*"))
    assert written and all(path.stat().st_uid == uid for path in written), [
        (str(p), p.stat().st_uid) for p in written if p.stat().st_uid != uid]


def test_image_holds_no_host_pip_configuration(image):
    """The build's pip settings and CA bundle were mounted, not copied; torch came from TORCH_SPEC."""
    probe = podman("run", "--rm", *ULIMITS, "--entrypoint", "sh", image, "-c",
                   "test ! -s /etc/pip.conf && python -c 'import torch, mujoco_warp; print(torch.__version__)'")
    print(f"\ntorch in the image: {probe.stdout.strip()}")
    host_bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    if host_bundle.is_file() and any(Path("/usr/local/share/ca-certificates").glob("*.crt")):  # host adds CAs
        image_bundle = podman("run", "--rm", *ULIMITS, "--entrypoint", "cat", image, str(host_bundle)).stdout
        assert image_bundle != host_bundle.read_text()


def test_image_runs_torchrun_on_cpu(image, tmp_path):
    """docs/containers.md's several-GPU line, on the CPU: torchrun as entrypoint, 2 ranks (gloo)."""
    runs = tmp_path / "runs"
    runs.mkdir()
    if os.getuid() == 0:
        os.chown(runs, 4321, 4321)
    user = ["--userns=keep-id"] if os.getuid() != 0 else ["--user", "4321:4321"]
    result = podman("run", "--rm", *ULIMITS, "--ipc=host", *user, "-v", f"{runs}:/workspace/runs",
                    "--entrypoint", "torchrun", image, "--standalone", "--nproc_per_node=2", "-m", "dofbot_rl.cli",
                    "train", "multi_gpu=True", "sim_device=cpu", "num_envs=64", "max_iterations=3")
    assert TRAIN_LINE.match(result.stdout.strip().splitlines()[-1]), result.stdout
    assert "2 ranks: policy weights identical across ranks" in result.stderr
    assert len(list((runs / "DofbotReacher" / "nn").glob("*.pth"))) == 1
