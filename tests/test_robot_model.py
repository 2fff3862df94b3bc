"""The robot facts and the generated models agree with the derived numbers in facts/dofbot-robot.md."""

import math
import xml.etree.ElementTree as ET

import mujoco
import numpy as np
import pytest

from dofbot_rl import assets, robot
from dofbot_rl.paths import robot_model_path


@pytest.mark.parametrize("frame, expected", [
    (0, (0.0, 0.0, 0.0661)), (1, (0.0, 0.0001, 0.1075)), (2, (0.0, 0.0010, 0.1903)),
    (3, (0.0, 0.0019, 0.2732)), (4, (0.0, 0.0011, 0.3470)),
])
def test_zero_pose_link_positions_match_facts(frame, expected):
    pos, _ = robot.link_frames([0.0] * 5)[frame]
    assert np.allclose(pos, expected, atol=1.5e-4)


def test_fingertip_and_q2_example_match_facts():
    assert np.allclose(robot.fingertip_position([0.0] * 5), (0.0, 0.016, 0.447), atol=1e-3)
    # facts: q2 = +0.5 puts link5 at about (0, -0.114, 0.318)
    assert np.allclose(robot.link_frames([0, 0.5, 0, 0, 0])[-1][0], (0.0, -0.114, 0.318), atol=1e-3)


def test_joint_axes_at_zero_pose():
    frames = robot.link_frames([0.0] * 5)
    z = [np.array(rot)[:, 2] for _, rot in frames]
    assert abs(z[0][2]) > 0.999 and abs(z[4][2]) > 0.999  # yaw and wrist roll ~ +-Z
    for k in (1, 2, 3):
        assert abs(z[k][0]) > 0.999  # pitch joints ~ +-X


def test_committed_models_match_the_generator():
    generated = assets.generate()
    assert robot_model_path("mjcf").read_text() == generated["mjcf"], "run `dofbot-rl assets`"
    assert robot_model_path("urdf").read_text() == generated["urdf"], "run `dofbot-rl assets`"


def test_mjcf_forward_kinematics_matches_robot_facts():
    model = mujoco.MjModel.from_xml_path(str(robot_model_path("mjcf")))
    data = mujoco.MjData(model)
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.uniform(robot.SAFE_LIMITS_LOWER, robot.SAFE_LIMITS_UPPER)
        data.qpos[:6] = q
        mujoco.mj_kinematics(model, data)
        pos, rot = robot.link_frames(q)[-1]
        assert np.allclose(data.body("link5").xpos, pos, atol=1e-6)
        assert np.allclose(data.body("link5").xmat.reshape(3, 3), rot, atol=1e-6)
        assert np.allclose(data.site("tip").xpos, robot.fingertip_position(q), atol=1e-6)


def test_model_has_dofbot_joints_masses_and_pd_drives():
    model = mujoco.MjModel.from_xml_path(str(robot_model_path("mjcf")))
    assert [model.joint(i).name for i in range(model.njnt)] == list(robot.JOINT_NAMES)
    assert [model.actuator(i).name for i in range(model.nu)] == list(robot.JOINT_NAMES)
    assert model.opt.timestep == pytest.approx(1 / 120, rel=1e-4)
    inertia = assets.joint_inertias(model)
    for name in robot.JOINT_NAMES:
        kp = model.actuator(name).gainprm[0]
        assert kp == pytest.approx(robot.DRIVE_STIFFNESS * inertia[name], rel=1e-3)
    masses = {model.body(i).name: model.body(i).mass[0] for i in range(model.nbody)}
    assert masses["link2"] == pytest.approx(robot.LINK_MASSES["link2"])


def test_urdf_lists_the_same_joints_with_inertials():
    root = ET.parse(robot_model_path("urdf")).getroot()
    joints = [j.get("name") for j in root.findall("joint")]
    assert joints == list(robot.JOINT_NAMES)
    assert all(link.find("inertial") is not None for link in root.findall("link"))
    j2 = root.find("joint[@name='joint2']/origin")
    assert [float(v) for v in j2.get("rpy").split()] == pytest.approx([0.0, 1.5708, 0.0])


def test_servo_mapping_round_trip_and_reference_values():
    assert robot.sim_to_servo_deg([0.0] * 6)[:5] == pytest.approx([90.0] * 5)
    q = [0.3, -0.5, 0.7, -0.2, 2.0, 0.4]
    assert robot.servo_deg_to_sim(robot.sim_to_servo_deg(q)) == pytest.approx(q)
    assert robot.sim_to_servo_deg([math.radians(45)] + [0.0] * 5)[0] == pytest.approx(135.0)
    with pytest.raises(ValueError):
        robot.sim_to_servo_deg([0.0] * 5)
    with pytest.raises(ValueError):
        robot.sim_to_servo_deg([float("nan")] * 6)


def test_the_fingertip_marker_shows_outside_the_arm():
    """The red fingertip marker (Kit scene, studio, GIFs: one radius) sits at the tip of link5 (a
    capsule): it must be larger than the capsules around it, else the arm hides it (as the studio's
    12 mm and the Kit scene's 10 mm markers in a 15 mm link did)."""
    from dofbot_rl.scene import GOAL_RADIUS, TIP_RADIUS

    assert GOAL_RADIUS > TIP_RADIUS  # a reached goal (see-through) shows the tip inside it

    m = mujoco.MjModel.from_xml_path(str(robot_model_path("mjcf")))
    d = mujoco.MjData(m)
    rng = np.random.default_rng(2)
    for q in [np.zeros(6), *rng.uniform(-1.2, 1.2, size=(5, 6))]:
        d.qpos[:6] = q
        mujoco.mj_kinematics(m, d)
        tip = d.site_xpos[m.site("tip").id]
        for g in range(m.ngeom):
            if m.geom_type[g] != mujoco.mjtGeom.mjGEOM_CAPSULE:
                continue
            radius, half = m.geom_size[g][:2]
            axis = d.geom_xmat[g].reshape(3, 3)[:, 2]
            t = np.clip((tip - d.geom_xpos[g]) @ axis, -half, half)
            inside = radius - np.linalg.norm(tip - d.geom_xpos[g] - t * axis)  # > 0: the tip is in the capsule
            assert TIP_RADIUS > inside + 0.003, (m.geom(g).name, inside)
