"""Picking: prim path -> env index of the robot it belongs to; multi-selection."""

import pytest

from dofbot_rl.teleop import env_id_from_prim_path, first_robot


@pytest.mark.parametrize(
    "path, expected",
    [
        ("/World/envs/env_12/Dofbot", 12),
        ("/World/envs/env_12/Dofbot/", 12),
        ("/World/envs/env_12/Dofbot/link3/visuals/mesh_0", 12),
        ("/World/envs/env_0/Dofbot/base_link", 0),
        ("/World/envs/env_007/Dofbot/link1", 7),
        ("/World/envs/env_12/goal", None),
        ("/World/envs/env_12/goal/Dofbot", None),
        ("/World/envs/env_12", None),
        ("/World/envs/env_12/DofbotX/link1", None),
        ("/World/envs/env_x/Dofbot", None),
        ("/World/envs/env_-1/Dofbot", None),
        ("/World/envs", None),
        ("/World/envsX/env_1/Dofbot", None),
        ("/World/defaultGroundPlane", None),
        ("/World/Camera", None),
        ("/OmniverseKit_Persp", None),
        ("", None),
    ],
)
def test_env_id_from_prim_path(path, expected):
    assert env_id_from_prim_path(path) == expected


def test_custom_root_and_robot_name_and_path_objects():
    class SdfPathLike:
        def __str__(self):
            return "/Scene/clones/env_3/Arm/link2"

    assert env_id_from_prim_path(SdfPathLike(), env_root="/Scene/clones/", robot_name="Arm") == 3
    assert env_id_from_prim_path("/World/envs/env_3/Dofbot", env_root="/Scene/clones") is None


def test_first_robot_messages():
    assert first_robot([]) == (None, "")
    assert first_robot(["/World/envs/env_4/Dofbot/link5"]) == (4, "env 4 selected")
    env, msg = first_robot(["/World/envs/env_4/goal"])
    assert env is None and "/World/envs/env_4/goal is not a Dofbot" in msg
    env, msg = first_robot(["/World/defaultGroundPlane", "/World/envs/env_1/goal"])
    assert env is None and "none of the 2 selected prims" in msg
    # Several links of one robot: still one robot, no warning.
    assert first_robot(["/World/envs/env_4/Dofbot/link1", "/World/envs/env_4/Dofbot/link2"]) == (4, "env 4 selected")
    # Multi-selection: the first robot in selection order, with a message.
    env, msg = first_robot(["/World/envs/env_9/goal", "/World/envs/env_5/Dofbot/link1", "/World/envs/env_2/Dofbot"])
    assert env == 5 and msg == "2 robots selected; driving the first, env 5"
    # Any iterable, e.g. a generator.
    assert first_robot(p for p in ["/World/envs/env_1/Dofbot"])[0] == 1
