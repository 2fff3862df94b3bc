"""One arm in both engines: the USD (PhysX) and the MJCF (MuJoCo) describe the same dynamics.

Isaac Sim cannot run here, so PhysX is represented by its articulation drive equation as
the PhysX 5 source states it (``DyArticulationCpuGpu.h``: ``computeImplicitDriveParams``;
``DyFeatherstoneArticulation.cpp`` passes the TGS step ``dt / positionIterations``):

* a *force* drive applies ``tau = k (q_target - q) - d qd``, integrated implicitly (the
  drive's position and velocity terms both at the end of the solver step);
* an *acceleration* drive applies the same per unit of the joint's response: ``tau = (k e - d qd) / r``
  with ``r = (M^-1)_jj`` (articulated inertia), so its torque gains depend on the pose;
* ``maxForce`` clamps the drive torque, ``physxJoint:maxJointVelocity`` the joint velocity.

The model reads every number from the USD with usd-core (gains per degree, limits in
degrees) and the joint-space inertia from the MJCF (test_usd_asset.py checks that the
USD's masses and frames are the MJCF's). MuJoCo's step responses must agree with it.
"""

import math

import numpy as np
import pytest

pytest.importorskip("pxr", reason="usd-core is not installed (pip install usd-core)")
mujoco = pytest.importorskip("mujoco")

from pxr import Usd, UsdPhysics  # noqa: E402

from dofbot_rl import robot  # noqa: E402
from dofbot_rl.assets import build_mjcf  # noqa: E402
from dofbot_rl.paths import robot_model_path  # noqa: E402


# ----------------------------------------------------------------------------------
# The USD's drive description, read with usd-core
# ----------------------------------------------------------------------------------
def usd_drives(stage):
    """Per task joint: drive type, stiffness (N m/rad), damping (N m s/rad), max force (N m),
    max joint velocity (rad/s), armature (kg m^2) and limits (rad), converted from the USD's degrees."""
    out = {}
    for name in robot.JOINT_NAMES:
        prim = stage.GetPrimAtPath(f"/Dofbot/joints/{name}")
        joint, drive = UsdPhysics.RevoluteJoint(prim), UsdPhysics.DriveAPI(prim, "angular")
        per_rad = 180.0 / math.pi
        out[name] = {
            "type": drive.GetTypeAttr().Get(),
            "stiffness": drive.GetStiffnessAttr().Get() * per_rad,
            "damping": drive.GetDampingAttr().Get() * per_rad,
            "max_force": drive.GetMaxForceAttr().Get(),
            "max_velocity": math.radians(prim.GetAttribute("physxJoint:maxJointVelocity").Get()),
            "armature": prim.GetAttribute("physxJoint:armature").Get(),
            "limits": (math.radians(joint.GetLowerLimitAttr().Get()), math.radians(joint.GetUpperLimitAttr().Get())),
        }
    return out


class PhysxDriveModel:
    """The arm as PhysX's drive equation sees it, linearised at a pose: ``M`` (6, 6) kg m^2,
    drives from :func:`usd_drives`, ``substeps`` TGS steps per step of ``dt`` s (gravity off)."""

    def __init__(self, drives, mass_matrix, dt, substeps):
        d = [drives[n] for n in robot.JOINT_NAMES]
        self.M = mass_matrix
        response = np.diag(np.linalg.inv(mass_matrix))  # PhysX's unit response of each joint
        scale = np.array([1.0 / r if x["type"] == "acceleration" else 1.0 for x, r in zip(d, response)])
        self.K = scale * np.array([x["stiffness"] for x in d])
        self.D = scale * np.array([x["damping"] for x in d])
        self.max_force = np.array([x["max_force"] for x in d])
        self.max_velocity = np.array([x["max_velocity"] for x in d])
        self.h = dt / substeps
        self.substeps = substeps
        self._implicit = mass_matrix + self.h * np.diag(self.D) + self.h * self.h * np.diag(self.K)

    def step_response(self, target, steps):
        """Joint positions and velocities ``(steps, 6)`` from rest at 0 toward ``target`` (6,) rad."""
        q, v = np.zeros(6), np.zeros(6)
        qs, vs = [], []
        for _ in range(steps):
            for _ in range(self.substeps):
                v_new = np.linalg.solve(self._implicit, self.M @ v + self.h * self.K * (target - q))
                tau = self.K * (target - q - self.h * v_new) - self.D * v_new
                if np.any(np.abs(tau) > self.max_force):  # the drive saturates: explicit clamped torque
                    v_new = v + self.h * np.linalg.solve(self.M, np.clip(tau, -self.max_force, self.max_force))
                v = np.clip(v_new, -self.max_velocity, self.max_velocity)
                q = q + self.h * v
            qs.append(q.copy())
            vs.append(v.copy())
        return np.array(qs), np.array(vs)


def mujoco_step_response(model, target, steps):
    data = mujoco.MjData(model)
    data.ctrl[:] = target
    qs, vs = [], []
    for _ in range(steps):
        mujoco.mj_step(model, data)
        qs.append(data.qpos.copy())
        vs.append(data.qvel.copy())
    return np.array(qs), np.array(vs)


def mass_matrix(model):
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    full = np.zeros((model.nv, model.nv))
    mujoco.mj_fullM(model, data, full)
    return full


@pytest.fixture(scope="module")
def mj():
    model = mujoco.MjModel.from_xml_string(build_mjcf())
    model.opt.gravity[:] = 0.0
    return model


@pytest.fixture(scope="module")
def drives():
    return usd_drives(Usd.Stage.Open(str(robot_model_path("usd"))))


@pytest.fixture(scope="module")
def substeps():
    stage = Usd.Stage.Open(str(robot_model_path("usd")))
    return stage.GetPrimAtPath("/Dofbot").GetAttribute("physxArticulation:solverPositionIterationCount").Get()


# ----------------------------------------------------------------------------------
# Attributes
# ----------------------------------------------------------------------------------
def test_usd_drive_attributes_are_the_mjcf_actuators(drives, mj):
    for name in robot.JOINT_NAMES:
        drive, act, jnt = drives[name], mj.actuator(name), mj.joint(name)
        assert drive["type"] == "force", name  # torque gains, as MuJoCo's position actuators
        assert drive["stiffness"] == pytest.approx(act.gainprm[0], rel=1e-5), name
        assert drive["damping"] == pytest.approx(-act.biasprm[2], rel=1e-5), name
        assert drive["max_force"] == pytest.approx(act.forcerange[1]) and act.forcerange[0] == -act.forcerange[1]
        assert drive["armature"] == pytest.approx(mj.dof_armature[jnt.dofadr[0]], rel=1e-6), name
        np.testing.assert_allclose(drive["limits"], jnt.range, atol=1e-5)


def test_no_velocity_limit_in_either_engine(drives, mj):
    """MuJoCo has no joint velocity limit; the USD's must never bind: far above the fastest
    full-range step MuJoCo makes with the torque-limited drives."""
    fastest = 0.0
    for j, name in enumerate(robot.JOINT_NAMES):
        lower, upper = mj.jnt_range[mj.joint(name).id]
        for start, goal in ((lower, upper), (upper, lower)):
            data = mujoco.MjData(mj)
            data.qpos[j], data.ctrl[:] = start, 0.0
            data.ctrl[j] = goal
            for _ in range(240):
                mujoco.mj_step(mj, data)
                fastest = max(fastest, abs(data.qvel[j]))
    assert 5.0 < fastest < 60.0  # the drives are torque-limited
    for name in robot.JOINT_NAMES:
        assert drives[name]["max_velocity"] > 10 * fastest, name


# ----------------------------------------------------------------------------------
# Step responses
# ----------------------------------------------------------------------------------
@pytest.mark.parametrize("joint", range(robot.NUM_DOF))
def test_small_step_response_matches_physx_drive_equation(joint, drives, mj, substeps):
    """A 0.05 rad step (linear, unsaturated), the other joints held: at a 16x finer time step
    both integrators are close to the continuous dynamics, so what is left is the description
    (gains, inertia); at the task's dt they differ by MuJoCo's own discretisation."""
    target = np.zeros(6)
    target[joint] = 0.05
    fine = mujoco.MjModel.from_xml_string(build_mjcf())
    fine.opt.gravity[:] = 0.0
    fine.opt.timestep = mj.opt.timestep / 16
    q_mj, _ = mujoco_step_response(fine, target, 16 * 120)
    q_px, _ = PhysxDriveModel(drives, mass_matrix(mj), fine.opt.timestep, 1).step_response(target, 16 * 120)
    assert np.abs(q_mj[:, joint] - q_px[:, joint]).max() < 0.015 * 0.05
    q_mj, _ = mujoco_step_response(mj, target, 120)
    q_px, _ = PhysxDriveModel(drives, mass_matrix(mj), mj.opt.timestep, substeps).step_response(target, 120)
    assert np.abs(q_mj[:, joint] - q_px[:, joint]).max() < 0.04 * 0.05
    assert q_mj[-1, joint] == pytest.approx(0.05, abs=1e-3) and q_px[-1, joint] == pytest.approx(0.05, abs=1e-3)


@pytest.mark.parametrize("joint", range(robot.NUM_DOF))
def test_large_step_response_matches_physx_drive_equation(joint, drives, mj, substeps):
    """A large step saturates the 2 N m drive: peak speed and trajectory agree (no velocity cap)."""
    target = np.zeros(6)
    target[joint] = 0.9 if joint == 5 else 1.2  # inside every joint's range (the gripper's is 60 deg)
    q_mj, v_mj = mujoco_step_response(mj, target, 120)
    q_px, v_px = PhysxDriveModel(drives, mass_matrix(mj), mj.opt.timestep, substeps).step_response(target, 120)
    assert np.abs(v_mj[:, joint]).max() == pytest.approx(np.abs(v_px[:, joint]).max(), rel=0.05)
    assert np.abs(q_mj[:, joint] - q_px[:, joint]).max() < 0.06
    assert abs(q_mj[-1, joint] - target[joint]) < 2e-3 and abs(q_px[-1, joint] - target[joint]) < 2e-3


def test_gravity_sag_matches_physx_drive_equation(drives):
    """Holding a bent pose under gravity: the drive's stiffness sets the sag, ``K e = tau_g``."""
    model = mujoco.MjModel.from_xml_string(build_mjcf())
    data = mujoco.MjData(model)
    pose = np.array([0.3, 0.7, 0.7, 0.6, 0.0, 0.0])
    data.qpos[:] = data.ctrl[:] = pose
    for _ in range(600):
        mujoco.mj_step(model, data)
    sag_mj = data.qpos - pose
    held = mujoco.MjData(model)
    held.qpos[:] = data.qpos
    mujoco.mj_forward(model, held)
    gravity = -held.qfrc_bias  # joint torques of gravity at the sagged pose (at rest)
    physx = PhysxDriveModel(drives, mass_matrix(model), model.opt.timestep, 1)
    sag_px = gravity / physx.K
    assert np.abs(sag_mj[1:4]).min() > 0.01  # the shoulder, elbow and wrist visibly sag
    np.testing.assert_allclose(sag_mj, sag_px, rtol=0.02, atol=1e-5)


def test_the_old_acceleration_drives_fail_these_checks(drives, mj, substeps):
    """The USD before this change (acceleration drives 1048 / 53 per rad, 6 rad/s cap) differs
    from MuJoCo by more than the tolerances above: the checks can tell the two apart."""
    old = {name: dict(d, type="acceleration", stiffness=robot.DRIVE_STIFFNESS, damping=robot.DRIVE_DAMPING,
                      max_velocity=6.0) for name, d in drives.items()}
    target = np.zeros(6)
    target[0] = 1.2
    _, v_mj = mujoco_step_response(mj, target, 120)
    _, v_px = PhysxDriveModel(old, mass_matrix(mj), mj.opt.timestep, substeps).step_response(target, 120)
    assert np.abs(v_mj[:, 0]).max() > 1.5 * np.abs(v_px[:, 0]).max()
    fine = mujoco.MjModel.from_xml_string(build_mjcf())
    fine.opt.gravity[:] = 0.0
    fine.opt.timestep = mj.opt.timestep / 16
    target = np.zeros(6)
    target[1] = 0.05
    q_mj, _ = mujoco_step_response(fine, target, 16 * 120)
    q_px, _ = PhysxDriveModel(old, mass_matrix(mj), fine.opt.timestep, 1).step_response(target, 16 * 120)
    assert np.abs(q_mj[:, 1] - q_px[:, 1]).max() > 0.03 * 0.05


# ----------------------------------------------------------------------------------
# The end-effector quaternion's sign
# ----------------------------------------------------------------------------------
def test_ee_quaternion_sign_is_normalised_in_the_observation():
    """q and -q are one pose; MuJoCo reports w < 0 for some reachable poses, PhysX may pick
    the other sign: the observation is the same either way (task and onboard policy)."""
    import torch

    from dofbot_rl.sim2real import onboard
    from dofbot_rl.tasks import reacher_math as rm

    model = mujoco.MjModel.from_xml_string(build_mjcf())
    data = mujoco.MjData(model)
    rng = np.random.default_rng(0)
    lower, upper = np.array(robot.JOINT_LIMITS_LOWER), np.array(robot.JOINT_LIMITS_UPPER)
    quats = []
    for _ in range(200):
        data.qpos[:] = rng.uniform(lower, upper)
        mujoco.mj_kinematics(model, data)
        quats.append(data.xquat[model.body(robot.EE_LINK).id].copy())
    quats = torch.tensor(np.array(quats), dtype=torch.float32)
    assert (quats[:, 0] < 0).any() and (quats[:, 0] > 0).any()  # MuJoCo's sign is not normalised
    n = quats.shape[0]
    goal_rot = rm.sample_goal_rotations(n, torch.device("cpu"), torch.Generator().manual_seed(0))
    args = (torch.zeros(n, 6), torch.zeros(n, 6), torch.zeros(n, 3), goal_rot)
    lims = (torch.tensor(robot.SAFE_LIMITS_LOWER), torch.tensor(robot.SAFE_LIMITS_UPPER), 0.2)
    obs = rm.compute_observations(*args, quats, torch.zeros(n, 6), *lims)
    flipped = rm.compute_observations(*args, -quats, torch.zeros(n, 6), *lims)
    torch.testing.assert_close(obs, flipped)
    for i in range(0, n, 37):
        a = onboard.build_observation(np.zeros(6), np.zeros(6), np.zeros(3), goal_rot[i].numpy(), quats[i].numpy(),
                                      np.zeros(6), robot.SAFE_LIMITS_LOWER, robot.SAFE_LIMITS_UPPER)
        b = onboard.build_observation(np.zeros(6), np.zeros(6), np.zeros(3), goal_rot[i].numpy(), -quats[i].numpy(),
                                      np.zeros(6), robot.SAFE_LIMITS_LOWER, robot.SAFE_LIMITS_UPPER)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, obs[i].numpy(), atol=1e-5)


def test_quat_positive_w():
    import torch

    from dofbot_rl.tasks.reacher_math import quat_positive_w

    q = torch.tensor([[0.5, 0.5, 0.5, 0.5], [-0.5, 0.5, -0.5, 0.5], [0.0, 1.0, 0.0, 0.0]])
    torch.testing.assert_close(quat_positive_w(q), torch.tensor([[0.5, 0.5, 0.5, 0.5], [0.5, -0.5, 0.5, -0.5],
                                                                 [0.0, 1.0, 0.0, 0.0]]))
