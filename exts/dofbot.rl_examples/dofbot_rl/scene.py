"""Where the panel's scene lives on the USD stage, and how its markers look.

Standard-library only (no ``pxr``, no Kit): the Kit layer, the robot picker, the USD
helpers of :mod:`dofbot_rl.usd_asset` and the MuJoCo renderer all read their paths and
colours here, so they cannot drift apart.

Layout of the scene that Load builds (``dofbot_rl.app.commands``)::

    /World/envs/env_<i>/Dofbot   robot i: env_0 defined once, env_1.. full copies of it
                                 (GridCloner, copy_from_source=True: no inherit arcs)
    /World/envs/markers          one UsdGeom.PointInstancer: instance i is env i's goal,
                                 instance num_envs + i its fingertip (world positions)

The markers sit outside the cloned ``env_<i>`` prims, so a marker write never touches an
env prim, and a selected marker never selects a robot.
"""

WORLD = "/World"
#: Parent of the cloned envs (the cloner's base env path).
ENV_ROOT = WORLD + "/envs"
#: Env prims are ``ENV_ROOT/env_<i>``.
ENV_PREFIX = "env_"
#: The cloner's ``generate_paths`` root: it makes ``CLONER_ROOT_<i>`` = ``ENV_ROOT/env_<i>``.
CLONER_ROOT = ENV_ROOT + "/env"
#: The robot prim under each env prim (the default prim of ``dofbot.usda``).
ROBOT_NAME = "Dofbot"
#: The goal/tip marker instancer (outside the cloned envs).
MARKERS_PATH = ENV_ROOT + "/markers"
#: Prototype names under :data:`MARKERS_PATH`, in prototype-index order.
MARKER_PROTOTYPES = ("goal", "tip")

#: Marker colours (linear RGB, 0..1): a green goal and a red fingertip, in the Kit scene, the
#: studio, the MuJoCo renderer's GIFs and the README alike.
GOAL_RGB = (0.2, 0.9, 0.3)
TIP_RGB = (0.95, 0.2, 0.15)
#: Marker sphere radii (m), in every front-end: the fingertip's is larger than link5's 15 mm
#: capsule (the tip lies on that capsule's axis; a smaller sphere hides inside the arm), the
#: goal's larger still and drawn see-through (:data:`GOAL_OPACITY`) where the renderer can, so
#: a reached goal shows the tip inside it.
GOAL_RADIUS, TIP_RADIUS = 0.025, 0.022
#: Opacity of the goal marker (0..1) where the renderer draws transparency (studio, GIFs).
GOAL_OPACITY = 0.6


def env_path(env_id: int) -> str:
    """``/World/envs/env_<env_id>``."""
    return f"{ENV_ROOT}/{ENV_PREFIX}{int(env_id)}"


def robot_path(env_id: int) -> str:
    """``/World/envs/env_<env_id>/Dofbot``."""
    return f"{env_path(env_id)}/{ROBOT_NAME}"


#: Prim-path expression of every robot (the articulation view's ``prim_paths_expr``).
ROBOTS_EXPR = f"{ENV_ROOT}/{ENV_PREFIX}.*/{ROBOT_NAME}"


def robot_link_expr(link: str) -> str:
    """Prim-path expression of one link of every robot, e.g. ``/World/envs/env_.*/Dofbot/link5``."""
    return f"{ROBOTS_EXPR}/{link}"
