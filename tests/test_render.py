"""Only `dofbot-rl play render=True` touches OpenGL; it writes an animated GIF of env 0.

The GIF test needs an offscreen OpenGL (OSMesa: Debian's libosmesa6, which .ci/run installs)
and skips with the reason where it is missing. The other tests break ``MUJOCO_GL`` on purpose
(a value MuJoCo rejects at import) and need no OpenGL at all.
"""

import os
import subprocess
import sys

import numpy as np
import pytest


def _cli(*args, gl="bogus", timeout=300):
    env = dict(os.environ, MUJOCO_GL=gl, PYOPENGL_PLATFORM=gl)
    return subprocess.run([sys.executable, "-m", "dofbot_rl.cli", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def test_play_renders_a_rollout_gif(tmp_path):
    proc = _cli("play", "num_envs=2", "episodes=2", "render=True", f"train_dir={tmp_path}", "experiment=gif",
                gl="osmesa")
    if "offscreen rendering is not available" in proc.stderr:
        pytest.skip("no OSMesa here (Debian: apt install libosmesa6): " + proc.stderr.strip().splitlines()[-1])
    assert proc.returncode == 0, proc.stderr[-2000:]
    from PIL import Image

    gif = Image.open(tmp_path / "gif" / "rollout.gif")
    assert gif.n_frames == 160 and gif.size == (480, 480)  # 8 s at 20 fps
    first = np.asarray(gif.convert("RGB"))
    assert first.mean() > 60, first.mean()  # lit, on a light backdrop (this frame averaged ~28 of 255 before)


def test_side_azimuth_looks_past_the_arm():
    from dofbot_rl.render import RolloutRecorder

    assert RolloutRecorder.side_azimuth((0.2, 0.0)) == pytest.approx(90.0)
    assert RolloutRecorder.side_azimuth((0.0, 0.2)) == pytest.approx(180.0)


def test_a_broken_opengl_stops_no_command_but_render(tmp_path):
    """A MUJOCO_GL that cannot load (here: one MuJoCo rejects) must not break --help, train or play."""
    assert _cli("--help").returncode == 0
    proc = _cli("train", "num_envs=4", "max_iterations=1", "train.params.config.horizon_length=8",
                f"train_dir={tmp_path}", "experiment=nogl")
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = _cli("play", "num_envs=2", "episodes=2", f"train_dir={tmp_path}", "experiment=nogl")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "success_rate=" in proc.stdout


def test_render_without_opengl_is_one_line(tmp_path):
    proc = _cli("play", "num_envs=2", "episodes=2", "render=True", f"train_dir={tmp_path}", "experiment=nogl")
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("dofbot-rl: error: offscreen rendering is not available") and "MUJOCO_GL=" in last
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "nogl").exists()  # nothing written


def test_render_without_libosmesa_is_exactly_one_line(tmp_path):
    """The issue's own case, on any machine: MUJOCO_GL=osmesa where libOSMesa cannot be loaded (here every
    load of it fails, as without Debian's libosmesa6). Only the error line is printed: PyOpenGL's INFO
    lines ("Failed to load library", "No OpenGL_accelerate module") do not reach the user."""
    code = ("import ctypes, sys\n"
            "real = ctypes.CDLL.__init__\n"
            "def init(self, name, *a, **k):\n"
            "    if name and 'OSMesa' in str(name):\n"
            "        raise OSError(f'{name}: cannot open shared object file: No such file or directory')\n"
            "    real(self, name, *a, **k)\n"
            "ctypes.CDLL.__init__ = init\n"
            "from dofbot_rl.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    env = dict(os.environ, MUJOCO_GL="osmesa", PYOPENGL_PLATFORM="osmesa")
    proc = subprocess.run([sys.executable, "-c", code, "play", "num_envs=2", "episodes=2", "render=True",
                           f"train_dir={tmp_path}", "experiment=nogl"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dofbot-rl: error: offscreen rendering is not available"), lines
    assert "MUJOCO_GL=osmesa" in lines[0] and "libosmesa6" in lines[0]
    assert not (tmp_path / "nogl").exists()


def test_triton_is_loaded_before_the_opengl_stack(tmp_path):
    """Issue 18 item 20: PyPI's CUDA torch brings triton, whose LLVM crashes (exit 139) when it is
    loaded after Mesa's libLLVM (OSMesa/EGL). With OpenGL, triton must be imported first.

    A probe package named ``triton`` on the path records whether MuJoCo (and so the GL stack) was
    already loaded when it was imported; the CPU torch of CI has no triton of its own.
    """
    probe = tmp_path / "probe" / "triton"
    probe.mkdir(parents=True)
    (probe / "__init__.py").write_text("import sys\nprint('triton imported; mujoco loaded before:', 'mujoco' in sys.modules)\n")
    code = "from dofbot_rl.mujoco_gl import import_mujoco\nimport_mujoco(gl=True)\nprint('mujoco imported')\n"
    env = dict(os.environ, MUJOCO_GL="disable", PYTHONPATH=os.pathsep.join([str(probe.parent), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines() == ["triton imported; mujoco loaded before: False", "mujoco imported"]
