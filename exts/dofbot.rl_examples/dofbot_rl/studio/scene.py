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

#: README colours: goal green, fingertip red (RGB 0..255).
GOAL_RGB = (40, 200, 60)
TIP_RGB = (230, 40, 40)
#: The selected robot's colour (every link).
SELECTED_RGB = (255, 150, 0)
#: Marker sphere radius (m).
MARKER_RADIUS_M = 0.012


def quat_to_mat(q: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` from unit quaternions ``(..., 4)`` (w, x, y, z)."""
    w, x, y, z = np.moveaxis(np.asarray(q, dtype=np.float64), -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def mat_to_quat(m: np.ndarray) -> np.ndarray:
    """Unit quaternions ``(..., 4)`` (w, x, y, z) from rotation matrices ``(..., 3, 3)``."""
    m = np.asarray(m, dtype=np.float64)
    t = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    cands = np.stack([
        np.stack([1 + t, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1),
        np.stack([m[..., 2, 1] - m[..., 1, 2], 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2],
                  m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0]], -1),
        np.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0],
                  1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2], m[..., 1, 2] + m[..., 2, 1]], -1),
        np.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1],
                  1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2]], -1),
    ], -2)  # (..., 4 candidates, 4); the one with the largest norm is well conditioned
    best = np.argmax(np.linalg.norm(cands, axis=-1), axis=-1)
    q = np.take_along_axis(cands, best[..., None, None], axis=-2)[..., 0, :]
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    return q * np.where(q[..., :1] < 0, -1.0, 1.0)


def _axis_rotations(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """``(N, 3, 3)`` rotations by ``angle`` (N,) rad about the unit ``axis`` (3,) (Rodrigues)."""
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    s, c = np.sin(angle)[:, None, None], np.cos(angle)[:, None, None]
    return np.eye(3) + s * k + (1 - c) * (k @ k)


@dataclass
class GeomMesh:
    """One visual geom of the robot: its mesh in the geom frame and its colour."""

    name: str
    body: int  #: MuJoCo body id
    vertices: np.ndarray  #: (V, 3) float32 m, geom frame
    faces: np.ndarray  #: (F, 3) uint32
    rgb: Tuple[int, int, int]
    pos_b: np.ndarray  #: (3,) m, geom origin in its body frame
    rot_b: np.ndarray  #: (3, 3) geom rotation in its body frame


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
        self.body_rot = quat_to_mat(m.body_quat)
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
                                       quat_to_mat(m.geom_quat[g])))

    def body_poses(self, dof_pos: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Forward kinematics in the robot's base frame.

        Args:
            dof_pos: ``(N, 6)`` joint positions (rad), ``robot.JOINT_NAMES`` order.

        Returns:
            ``(pos (N, nbody, 3) m, rot (N, nbody, 3, 3))``.
        """
        q = np.asarray(dof_pos, dtype=np.float64)
        n = q.shape[0]
        pos = np.zeros((n, self.num_bodies, 3))
        rot = np.tile(np.eye(3), (n, self.num_bodies, 1, 1))
        for b in range(1, self.num_bodies):
            p = self.parent[b]
            pos[:, b] = pos[:, p] + rot[:, p] @ self.body_pos[b]
            r = rot[:, p] @ self.body_rot[b]
            if self.body_dof[b] >= 0:
                r = r @ _axis_rotations(self.joint_axis[b], q[:, self.body_dof[b]])
            rot[:, b] = r
        return pos, rot

    def geom_poses(self, dof_pos: np.ndarray, origins: np.ndarray) -> List[Tuple[np.ndarray, np.ndarray]]:
        """World poses of every geom of N robots.

        Args:
            dof_pos: ``(N, 6)`` rad.
            origins: ``(N, 3)`` m, each robot's base in the world (the seam's ``env_origins``).

        Returns:
            Per geom of :attr:`geoms`: ``(positions (N, 3) float32 m, wxyz (N, 4) float32)``.
        """
        pos, rot = self.body_poses(dof_pos)
        origins = np.asarray(origins, dtype=np.float64)
        out = []
        for g in self.geoms:
            rb = rot[:, g.body]
            out.append(((origins + pos[:, g.body] + rb @ g.pos_b).astype(np.float32),
                        mat_to_quat(rb @ g.rot_b).astype(np.float32)))
        return out


def sphere_mesh(radius: float = MARKER_RADIUS_M) -> Tuple[np.ndarray, np.ndarray]:
    """``(vertices (V, 3) float32 m, faces (F, 3) uint32)`` of a small sphere (markers)."""
    import trimesh

    mesh = trimesh.creation.icosphere(subdivisions=2, radius=radius)
    return mesh.vertices.astype(np.float32), mesh.faces.astype(np.uint32)
