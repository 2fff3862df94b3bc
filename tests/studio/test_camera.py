"""The studio's first camera shows every robot whole (the panel is docked beside the 3D view,
so the view can be as narrow as it is high)."""

import itertools

import numpy as np
import pytest

from studio_geometry import robot_origins, screen_point


@pytest.mark.parametrize("num_envs", [1, 3, 4, 64, 512, 2048])
@pytest.mark.parametrize("view", [(892, 800), (800, 800), (1536, 864)])
def test_every_robot_is_in_view(num_envs, view):
    origins = robot_origins(num_envs)
    # a box around each robot: its reach (0.35 m) and height (0.45 m)
    box = np.array(list(itertools.product((-0.35, 0.35), (-0.35, 0.35), (0.0, 0.45))))
    points = (origins[:, None, :] + box[None]).reshape(-1, 3)
    x, y = screen_point(origins, points, view)
    w, h = view
    inside = (x >= 0) & (x <= w) & (y >= 0) & (y <= h)
    assert inside.all(), (num_envs, view, points[~inside][:3], x[~inside][:3], y[~inside][:3])
