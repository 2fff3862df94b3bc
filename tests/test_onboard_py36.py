"""The exported npz policy and the on-robot controller under Python 3.6 (the Jetson's JetPack 4)."""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from _py36 import python36_with_numpy
from _tiny_policy import tiny_checkpoint
from dofbot_rl.rl import export as ex
from dofbot_rl.sim2real import onboard as ob
from dofbot_rl.sim2real.npz_policy import NumpyPolicy

EXT_DIR = Path(__file__).resolve().parents[1] / "exts" / "dofbot.rl_examples"

SCRIPT = r"""
import sys, json
import numpy as np
assert sys.version_info[:2] == (3, 6), sys.version
from dofbot_rl.sim2real.npz_policy import NumpyPolicy
from dofbot_rl.sim2real.onboard import OnboardController
policy = NumpyPolicy.from_npz(sys.argv[1])
with np.load(sys.argv[2]) as data:
    obs, readback = data["obs"], data["readback"]
ctrl = OnboardController(policy, goal=(0.17, -0.16, 0.22))
targets = [ctrl.step(q, 0.1 * k) for k, q in enumerate(readback)]
np.savez(sys.argv[3], actions=policy.act(obs), targets=np.array(targets),
         last_obs=ctrl.last_observation, numpy=np.array(np.__version__))
"""


@pytest.fixture(scope="module")
def py36():
    python, path, reason = python36_with_numpy()
    if python is None:
        pytest.skip(reason)
    return python, path


def _env(numpy_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(EXT_DIR), numpy_path) if p)
    env.pop("PYTHONHOME", None)
    return env


@pytest.fixture(scope="module")
def npz_file(tmp_path_factory):
    cfg, checkpoint = tiny_checkpoint(tmp_path_factory.mktemp("tiny_runs"))
    return ex.export(checkpoint, "torchscript,npz", tmp_path_factory.mktemp("npz"), cfg).files["npz"]


def test_npz_policy_and_controller_under_python36_equal_python3(py36, npz_file, tmp_path):
    python, numpy_path = py36
    rng = np.random.default_rng(5)
    obs = rng.uniform(-6, 6, (500, 29)).astype(np.float32)
    readback = rng.uniform(-0.7, 0.7, (20, 6))
    readback[4, 2] = np.nan  # a failed read
    np.savez(str(tmp_path / "in.npz"), obs=obs, readback=readback)
    out = subprocess.run([python, "-c", SCRIPT, str(npz_file), str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
                         env=_env(numpy_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         universal_newlines=True, timeout=120)
    assert out.returncode == 0, out.stdout
    with np.load(str(tmp_path / "out.npz")) as data:
        actions36, targets36, last_obs36 = data["actions"], data["targets"], data["last_obs"]
    policy = NumpyPolicy.from_npz(npz_file)
    np.testing.assert_allclose(actions36, policy.act(obs), atol=1e-6)
    ctrl = ob.OnboardController(policy, goal=(0.17, -0.16, 0.22))
    targets = np.array([ctrl.step(q, 0.1 * k) for k, q in enumerate(readback)])
    np.testing.assert_allclose(targets36, targets, atol=1e-5)
    np.testing.assert_allclose(last_obs36, ctrl.last_observation, atol=1e-6)
    # ... and the same as the TorchScript module exported from the same checkpoint.
    module = torch.jit.load(str(npz_file.with_name("policy.pt")))
    with torch.no_grad():
        np.testing.assert_allclose(actions36, module(torch.from_numpy(obs)).numpy(), atol=1e-5)


def test_onboard_runner_under_python36_drives_the_simulated_arm(py36, npz_file, tmp_path):
    python, numpy_path = py36
    summary = tmp_path / "run.json"
    out = subprocess.run([python, "-m", "dofbot_rl.sim2real.onboard", "--policy", str(npz_file),
                          "--goal", "0.17,0.15,0.25", "--arm", "sim", "--duration-s", "1.0",
                          "--sim-read-latency-ms", "1", "--json", str(summary), "--log-level", "WARNING"],
                         env=_env(numpy_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         universal_newlines=True, timeout=60)
    assert out.returncode == 0, out.stdout
    assert out.stdout.strip().splitlines()[-1].startswith("distance_m=")
    data = json.loads(summary.read_text())
    assert data["python"] == "3.6"
    assert 45 <= data["rate_hz"] <= 62 and data["servo_writes"] > 20
    assert len(data["fingertip"]) == 3


def test_onboard_runner_bad_policy_file_under_python36(py36, tmp_path):
    python, numpy_path = py36
    out = subprocess.run([python, "-m", "dofbot_rl.sim2real.onboard", "--policy", str(tmp_path / "missing.npz"),
                          "--goal", "0.17,0.15,0.25"], env=_env(numpy_path), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, universal_newlines=True, timeout=60)
    assert out.returncode == 1 and "cannot read policy file" in out.stdout, out.stdout
