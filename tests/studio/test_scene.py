"""The studio's batched forward kinematics against MuJoCo's own, for random joint angles."""

import mujoco
import numpy as np

from dofbot_rl.paths import robot_model_path
from dofbot_rl.studio.scene import RobotGeometry, quat_mul, quat_rotate, quat_to_mat


def test_geom_poses_match_mujoco():
    geo = RobotGeometry()
    m = mujoco.MjModel.from_xml_path(str(robot_model_path("mjcf")))
    d = mujoco.MjData(m)
    rng = np.random.default_rng(0)
    q = rng.uniform(-1.2, 1.2, size=(5, 6))
    origins = rng.uniform(-2, 2, size=(5, 3))
    poses = geo.geom_poses(q, origins)
    assert [g.name for g in geo.geoms] == ["base_link", "link1", "link2", "link3", "link4", "link5", "finger"]
    for i in range(5):
        d.qpos[:6] = q[i]
        mujoco.mj_kinematics(m, d)
        for g, (pos, wxyz) in zip(geo.geoms, poses):
            gid = m.geom(g.name).id
            np.testing.assert_allclose(pos[i], origins[i] + d.geom_xpos[gid], atol=1e-5)
            np.testing.assert_allclose(quat_to_mat(wxyz[i]), d.geom_xmat[gid].reshape(3, 3), atol=1e-5)


def test_quaternion_product_and_rotation_match_matrices():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(2, 100, 4))
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    v = rng.normal(size=(100, 3))
    np.testing.assert_allclose(quat_to_mat(quat_mul(a, b)), quat_to_mat(a) @ quat_to_mat(b), atol=1e-9)
    np.testing.assert_allclose(quat_rotate(a, v), (quat_to_mat(a) @ v[:, :, None])[:, :, 0], atol=1e-9)
