"""`dofbot-rl play render=True` writes an animated GIF of env 0 (needs an offscreen OpenGL)."""

import os
import subprocess
import sys

import pytest


def test_play_renders_a_rollout_gif(tmp_path):
    env = dict(os.environ, MUJOCO_GL="osmesa", PYOPENGL_PLATFORM="osmesa")
    proc = subprocess.run([sys.executable, "-m", "dofbot_rl.cli", "play", "num_envs=2", "episodes=2", "render=True",
                           f"train_dir={tmp_path}", "experiment=gif"], capture_output=True, text=True, env=env,
                          timeout=300)
    if "offscreen rendering is not available" in proc.stderr:
        pytest.skip("no OSMesa here (apt install libosmesa6): " + proc.stderr.strip().splitlines()[-1])
    assert proc.returncode == 0, proc.stderr[-2000:]
    from PIL import Image

    gif = Image.open(tmp_path / "gif" / "rollout.gif")
    assert gif.n_frames == 160 and gif.size == (320, 320)  # 8 s at 20 fps
