"""The N robots as batched meshes: one mesh per link from the MJCF, one instance per robot.

Plain numpy (plus MuJoCo to read the model once); no viser import, so it is tested alone.
:class:`RobotGeometry` reads the robot's visual geoms (capsules and cylinders) from the same
MJCF the physics runs; :meth:`RobotGeometry.geom_poses` is batched forward kinematics from
joint positions, so every backend (MuJoCo C, MuJoCo Warp) is drawn from the seam's
``dof_pos`` and ``env_origins`` alone.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from dofbot_rl import robot
from dofbot_rl import scene as shared

#: The README's marker colours (dofbot_rl.scene), as viser takes them (RGB 0..255).
GOAL_RGB, TIP_RGB = (tuple(round(255 * c) for c in rgb) for rgb in (shared.GOAL_RGB, shared.TIP_RGB))
#: The selected robot's colour (every link).
SELECTED_RGB = (255, 150, 0)


def quat_to_mat(q: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` from unit quaternions ``(..., 4)`` (w, x, y, z)."""
    w, x, y, z = np.moveaxis(np.asarray(q, dtype=np.float64), -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton products ``a b`` of quaternions ``(..., 4)`` (w, x, y, z); broadcasts."""
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw], -1)


def quat_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectors ``v`` ``(..., 3)`` rotated by unit quaternions ``q`` ``(..., 4)`` (w, x, y, z); broadcasts."""
    u, w = q[..., 1:], q[..., :1]
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


def right_product_matrix(c: np.ndarray) -> np.ndarray:
    """``(4, 4)`` M with ``q @ M == quat_mul(q, c)`` for rows ``q``: one matmul per constant product."""
    return quat_mul(np.eye(4), np.asarray(c, dtype=np.float64))


def rotation_forms(v: np.ndarray) -> np.ndarray:
    """``(4, 12)`` F with ``quat_rotate(q, v) == ((q @ F).reshape(-1, 3, 4) * q[:, None]).sum(-1)``
    for unit rows ``q``: a rotated constant vector is a quadratic form in ``q``."""
    e = np.eye(4)
    v = np.asarray(v, dtype=np.float64)
    forms = np.zeros((3, 4, 4))
    for i in range(4):
        for j in range(4):  # polarisation of q -> R(q) v, which is quadratic in q
            forms[:, i, j] = 0.25 * (_rotate_homogeneous(e[i] + e[j], v) - _rotate_homogeneous(e[i] - e[j], v))
    return forms.transpose(1, 0, 2).reshape(4, 12)


def _rotate_homogeneous(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``quat_rotate`` written as a form of degree 2 in ``q`` (equal for unit ``q``)."""
    w, u = q[0], q[1:]
    return (w * w - u.dot(u)) * v + 2.0 * u.dot(v) * u + 2.0 * w * np.cross(u, v)


def _rotate_by_forms(q: np.ndarray, forms: np.ndarray) -> np.ndarray:
    return np.einsum("nkj,nj->nk", (q @ forms).reshape(q.shape[0], 3, 4), q)


@dataclass
class GeomMesh:
    """One visual geom of the robot: its mesh in the geom frame and its colour."""

    name: str
    body: int  #: MuJoCo body id
    vertices: np.ndarray  #: (V, 3) float32 m, geom frame
    faces: np.ndarray  #: (F, 3) uint32
    rgb: Tuple[int, int, int]
    pos_b: np.ndarray  #: (3,) m, geom origin in its body frame
    quat_b: np.ndarray  #: (4,) w, x, y, z: geom orientation in its body frame


class RobotGeometry:
    """The Dofbot's links as meshes, and batched forward kinematics for N robots.

    Args:
        model_path: the MJCF (default: ``data/robots/dofbot/dofbot.xml``).

    Raises:
        ValueError: the model has a joint that is not a hinge at its body's origin, or lacks
            the Dofbot's joints.
    """

    def __init__(self, model_path: Optional[Path] = None):
        import mujoco
        import trimesh

        from dofbot_rl.paths import robot_model_path

        m = mujoco.MjModel.from_xml_path(str(model_path or robot_model_path("mjcf")))
        self.num_bodies = m.nbody
        self.parent = m.body_parentid.copy()
        self.body_pos = m.body_pos.copy()
        self.body_quat = m.body_quat / np.linalg.norm(m.body_quat, axis=1, keepdims=True)
        self.body_dof = np.full(m.nbody, -1)  # body -> column of dof_pos that turns it (-1: fixed)
        self.joint_axis = np.zeros((m.nbody, 3))
        for i, name in enumerate(robot.JOINT_NAMES):
            try:
                j = m.joint(name).id
            except KeyError:
                raise ValueError(f"the model has no joint {name!r}") from None
            if m.jnt_type[j] != mujoco.mjtJoint.mjJNT_HINGE or np.any(m.jnt_pos[j] != 0):
                raise ValueError(f"joint {name!r} must be a hinge at its body's origin")
            body = m.jnt_bodyid[j]
            self.body_dof[body], self.joint_axis[body] = i, m.jnt_axis[j]
        self.geoms: List[GeomMesh] = []
        for g in range(m.ngeom):
            kind, size = m.geom_type[g], m.geom_size[g]
            if kind == mujoco.mjtGeom.mjGEOM_CAPSULE:
                mesh = trimesh.creation.capsule(height=2 * size[1], radius=size[0], count=[12, 12])
            elif kind == mujoco.mjtGeom.mjGEOM_CYLINDER:
                mesh = trimesh.creation.cylinder(radius=size[0], height=2 * size[1], sections=20)
            else:
                continue  # the floor plane: the studio draws its own grid
            rgb = tuple(int(round(255 * c)) for c in m.geom_rgba[g][:3])
            self.geoms.append(GeomMesh(m.geom(g).name, int(m.geom_bodyid[g]), mesh.vertices.astype(np.float32),
                                       mesh.faces.astype(np.uint32), rgb, m.geom_pos[g].copy(),
                                       m.geom_quat[g] / np.linalg.norm(m.geom_quat[g])))
        # constant factors of the kinematic chain, as matrices (see body_poses)
        self._body_pos_forms = [rotation_forms(v) for v in self.body_pos]
        self._body_quat_right = [right_product_matrix(c) for c in self.body_quat]
        self._axis_right = [right_product_matrix(np.concatenate([[0.0], a])) for a in self.joint_axis]
        self._geom_pos_forms = [rotation_forms(g.pos_b) for g in self.geoms]
        self._geom_quat_right = [right_product_matrix(g.quat_b) for g in self.geoms]

    def body_poses(self, dof_pos: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Forward kinematics in the robot's base frame, in quaternions; every constant
        product is one precomputed matmul (the studio draws 512 robots 20 times a second).

        Args:
            dof_pos: ``(N, 6)`` joint positions (rad), ``robot.JOINT_NAMES`` order.

        Returns:
            ``(pos (N, nbody, 3) m, wxyz (N, nbody, 4))``.
        """
        q = np.asarray(dof_pos, dtype=np.float64)
        n = q.shape[0]
        pos = np.zeros((n, self.num_bodies, 3))
        quat = np.zeros((n, self.num_bodies, 4))
        quat[:, 0, 0] = 1.0
        for b in range(1, self.num_bodies):
            p = self.parent[b]
            pos[:, b] = pos[:, p] + _rotate_by_forms(quat[:, p], self._body_pos_forms[b])
            r = quat[:, p] @ self._body_quat_right[b]
            if self.body_dof[b] >= 0:  # r (x) (cos h, sin h axis) = cos h r + sin h (r (x) (0, axis))
                half = 0.5 * q[:, self.body_dof[b]]
                r = np.cos(half)[:, None] * r + np.sin(half)[:, None] * (r @ self._axis_right[b])
            quat[:, b] = r
        return pos, quat

    def geom_poses(self, dof_pos: np.ndarray, origins: np.ndarray) -> List[Tuple[np.ndarray, np.ndarray]]:
        """World poses of every geom of N robots.

        Args:
            dof_pos: ``(N, 6)`` rad.
            origins: ``(N, 3)`` m, each robot's base in the world (the seam's ``env_origins``).

        Returns:
            Per geom of :attr:`geoms`: ``(positions (N, 3) float32 m, wxyz (N, 4) float32)``.
        """
        pos, quat = self.body_poses(dof_pos)
        origins = np.asarray(origins, dtype=np.float64)
        out = []
        for g, forms, right in zip(self.geoms, self._geom_pos_forms, self._geom_quat_right):
            qb = quat[:, g.body]
            out.append(((origins + pos[:, g.body] + _rotate_by_forms(qb, forms)).astype(np.float32),
                        (qb @ right).astype(np.float32)))
        return out


def sphere_mesh(radius: float) -> Tuple[np.ndarray, np.ndarray]:
    """``(vertices (V, 3) float32 m, faces (F, 3) uint32)`` of a sphere of ``radius`` m (markers)."""
    import trimesh

    mesh = trimesh.creation.icosphere(subdivisions=2, radius=radius)
    return mesh.vertices.astype(np.float32), mesh.faces.astype(np.uint32)
