"""A rendered rollout of one robot: MuJoCo's offscreen renderer, saved as an animated GIF.

Used by ``dofbot-rl play render=True``. The frames are drawn from the task's joint
angles with the same MJCF on any backend (MuJoCo C, MuJoCo Warp), the goal as a green
sphere and the fingertip point as a red one. The camera faces the first goal from the side
(so the arm does not hide it in the first frame), and a head light plus a brighter scene light
keep the arm readable.

Headless machines need an offscreen OpenGL: ``MUJOCO_GL=egl`` with an NVIDIA GPU,
``MUJOCO_GL=osmesa`` on a CPU (``apt install libosmesa6``). OpenGL is touched only here
(:mod:`dofbot_rl.mujoco_gl`): every other command runs without it.
"""

import math
from pathlib import Path
from typing import List

import numpy as np

from dofbot_rl.mujoco_gl import GL_HELP, RenderError, import_mujoco
from dofbot_rl.scene import GOAL_OPACITY, GOAL_RADIUS, GOAL_RGB, TIP_RADIUS, TIP_RGB

__all__ = ["RenderError", "RolloutRecorder"]

#: Colour (RGB 0-255) of the pixels the scene leaves empty (the MJCF has no skybox: they render black).
BACKGROUND_RGB = (196, 204, 214)


class RolloutRecorder:
    """Records one env's rollout as frames.

    Args:
        model_path: the Dofbot MJCF (the one the task runs).
        control_dt: the task's control step (s).
        env_id: which robot to film.
        seconds: how much of the rollout to keep (s).
        fps: frames per second of the GIF.
        size: ``(width, height)`` in pixels.

    Raises:
        RenderError: when no offscreen OpenGL context is available (the message says how
            to get one).
    """

    def __init__(self, model_path, control_dt: float, env_id: int = 0, seconds: float = 8.0, fps: int = 20,
                 size=(480, 480)):
        self._mj = mujoco = import_mujoco(gl=True)
        self.model = mujoco.MjModel.from_xml_path(str(model_path))
        # Light: the MJCF's one top light leaves the arm's sides dark; a head light follows the camera.
        self.model.vis.headlight.ambient[:] = (0.35, 0.35, 0.35)
        self.model.vis.headlight.diffuse[:] = (0.65, 0.65, 0.65)
        self.model.vis.headlight.specular[:] = (0.2, 0.2, 0.2)
        self.model.light_diffuse[:] = np.maximum(self.model.light_diffuse, 0.6)
        self.data = mujoco.MjData(self.model)
        self.env_id = env_id
        self.every = max(1, round(1.0 / (fps * control_dt)))
        self.fps = 1.0 / (self.every * control_dt)
        self.max_frames = int(seconds * self.fps)
        self.frames: List[np.ndarray] = []
        self._steps = 0
        try:
            self.renderer = mujoco.Renderer(self.model, height=size[1], width=size[0])
        except Exception as exc:  # GL errors come in many types
            raise RenderError(f"offscreen rendering is not available ({exc}): {GL_HELP}") from None
        self.camera = mujoco.MjvCamera()
        self.camera.lookat[:] = (0.0, 0.0, 0.22)
        self.camera.distance, self.camera.azimuth, self.camera.elevation = 0.75, 135.0, -22.0
        self._aimed = False

    @property
    def done(self) -> bool:
        """True once ``seconds`` of frames are kept."""
        return len(self.frames) >= self.max_frames

    @staticmethod
    def side_azimuth(goal_xy) -> float:
        """Camera azimuth (deg) that sees the goal at ``goal_xy`` (m, robot base frame) from the side:
        90 deg from the base-to-goal direction, so the upright arm stands beside the goal, not in front."""
        return math.degrees(math.atan2(float(goal_xy[1]), float(goal_xy[0]))) + 90.0

    def capture(self, task) -> None:
        """Call once per control step: keeps every ``every``-th frame of env ``env_id``
        (the first call keeps a frame, showing the first goal)."""
        i = self.env_id
        if not self._aimed:  # goal_pos is in the env frame: the robot base frame
            self.camera.azimuth = self.side_azimuth(task.goal_pos_env[i].detach().cpu().numpy()[:2])
            self._aimed = True
        self._steps += 1
        if self.done or (self._steps - 1) % self.every:
            return
        mujoco = self._mj
        self.data.qpos[: task.dof_pos.shape[1]] = task.dof_pos[i].detach().cpu().numpy()
        mujoco.mj_kinematics(self.model, self.data)
        self.renderer.update_scene(self.data, camera=self.camera)
        self._marker(task.goal_pos_env[i].detach().cpu().numpy(), GOAL_RADIUS, GOAL_RGB + (GOAL_OPACITY,))
        self._marker(task.tip_pos_env[i].detach().cpu().numpy(), TIP_RADIUS, TIP_RGB + (1.0,))
        frame = self.renderer.render().copy()
        frame[(frame == 0).all(axis=-1)] = BACKGROUND_RGB  # nothing drawn there (no skybox): a light backdrop
        self.frames.append(frame)

    def _marker(self, pos, radius, rgba) -> None:
        mujoco = self._mj
        scene = self.renderer.scene
        if scene.ngeom >= scene.maxgeom:
            return
        mujoco.mjv_initGeom(scene.geoms[scene.ngeom], mujoco.mjtGeom.mjGEOM_SPHERE, np.array([radius, 0, 0]),
                            np.asarray(pos, dtype=float), np.eye(3).ravel(), np.asarray(rgba, dtype=np.float32))
        scene.ngeom += 1

    def save(self, path) -> Path:
        """Write the frames as an animated GIF (Pillow); returns the path."""
        from PIL import Image

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        images = [Image.fromarray(f) for f in self.frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / self.fps), loop=0,
                       optimize=True)
        return path

    def close(self) -> None:
        """Release the GL context."""
        self.renderer.close()
