"""Where things are on the studio's page (a module of its own: test directories share the
module name ``conftest``, so tests must not import from it)."""

import math

import numpy as np

VIEWPORT = {"width": 1280, "height": 800}


def robot_screen_point(num_envs, env_id, spacing=1.0, height_m=0.033, viewport=VIEWPORT):
    """Pixel ``(x, y)`` of robot ``env_id``'s base in the studio's camera (pinhole, vertical fov)."""
    import torch

    from dofbot_rl.physics.base import grid_origins
    from dofbot_rl.studio.app import CAMERA_FOV_DEG, camera_view

    origins = grid_origins(num_envs, spacing, torch.device("cpu")).numpy()
    position, look_at = (np.array(v, dtype=float) for v in camera_view(origins))
    f = look_at - position
    f /= np.linalg.norm(f)
    r = np.cross(f, [0.0, 0.0, 1.0])
    r /= np.linalg.norm(r)
    u = np.cross(r, f)
    d = origins[env_id] + [0.0, 0.0, height_m] - position
    w, h = viewport["width"], viewport["height"]
    focal = (h / 2) / math.tan(math.radians(CAMERA_FOV_DEG) / 2)
    return w / 2 + focal * d.dot(r) / d.dot(f), h / 2 - focal * d.dot(u) / d.dot(f)
