"""Where things are on the studio's page (a module of its own: test directories share the
module name ``conftest``, so tests must not import from it)."""

import math

import numpy as np

VIEWPORT = {"width": 1280, "height": 800}


def screen_point(origins, point, view):
    """Pixels ``(x, y)`` of world ``point`` (m; ``(3,)`` or ``(M, 3)``, then ``x`` and ``y`` are
    ``(M,)``) in the studio's camera for robots at ``origins`` ``(N, 3)``, in a 3D view of
    ``view = (width, height)`` pixels (pinhole, vertical fov)."""
    from dofbot_rl.studio.app import CAMERA_FOV_DEG, camera_view

    position, look_at = (np.array(v, dtype=float) for v in camera_view(np.asarray(origins, dtype=float)))
    f = look_at - position
    f /= np.linalg.norm(f)
    r = np.cross(f, [0.0, 0.0, 1.0])
    r /= np.linalg.norm(r)
    u = np.cross(r, f)
    d = np.asarray(point, dtype=float) - position
    w, h = view
    focal = (h / 2) / math.tan(math.radians(CAMERA_FOV_DEG) / 2)
    return w / 2 + focal * (d @ r) / (d @ f), h / 2 - focal * (d @ u) / (d @ f)


def robot_origins(num_envs, spacing=1.0):
    """The robots' base positions ``(N, 3)`` (m), as the physics places them."""
    import torch

    from dofbot_rl.physics.base import grid_origins

    return grid_origins(num_envs, spacing, torch.device("cpu")).numpy()


def robot_screen_point(num_envs, env_id, view, spacing=1.0, height_m=0.033):
    """Pixel ``(x, y)`` of robot ``env_id``'s base in a 3D view of ``view = (width, height)`` pixels."""
    origins = robot_origins(num_envs, spacing)
    return screen_point(origins, origins[env_id] + [0.0, 0.0, height_m], view)
