"""On-robot inference: run an exported ``.npz`` policy on the Dofbot's Jetson.

numpy + standard library only, Python 3.6 compatible. Each control tick (60 Hz) the
:class:`OnboardController` turns the servo read-back into the task's 29-value
observation, runs the :class:`~dofbot_rl.sim2real.npz_policy.NumpyPolicy` and returns
joint targets (rad); the caller hands them to the server's safety layer
(:class:`dofbot_rl.sim2real.safety.ArmController`), which clamps, rate- and
step-limits them before any servo moves::

    policy = NumpyPolicy.from_npz("policy.npz")
    onboard = OnboardController(policy, goal=(0.17, 0.15, 0.25))
    ...                                           # every 1/60 s:
    targets = onboard.step(arm_controller.status().readback, time.monotonic())
    arm_controller.command(targets, move_ms)

:class:`dofbot_rl.sim2real.policy_mode.PolicyRunner` runs that loop at the control rate:
the server's policy mode (``dofbot-rl serve --policy policy.npz``) with goals from the
command line or from clients over TCP, and this module's command line standalone,
without a server.

The observation (``dofbot_rl.tasks.reacher_math.compute_observations``, re-implemented
here in numpy and tested equal to it):

* ``[0:6]`` joint positions scaled to ``[-1, 1]`` over the safe limits: servo read-back
  (``robot.servo_deg_to_sim``), a failed read (NaN) keeps that joint's last value;
* ``[6:12]`` joint velocities (rad/s) x ``dof_vel_scale`` (0.2): filtered finite
  differences of the read-back (:class:`VelocityEstimator`);
* ``[12:15]`` goal position (m, robot base frame), ``[15:19]`` goal quaternion
  (w, x, y, z; identity unless given), ``[19:23]`` ``ee_rot * conj(goal_rot)``, the
  link5 orientation from forward kinematics of the read-back (:func:`ee_quaternion`);
* ``[23:29]`` the previous action (gripper slot zeroed, as the task does).

``python -m dofbot_rl.sim2real.onboard --policy policy.npz --goal 0.17,0.15,0.25 --arm sim``
runs it standalone against the simulated servo bus (or ``--arm armlib`` on the robot) and
prints the fingertip's distance to the goal (``benchmarks/onboard_vs_sim.py`` measures
success rates over many goals, through the server).
"""

import collections
import json
import logging
import math
import sys
import threading
import time

try:
    import numpy as np
except ImportError:  # pragma: no cover - the Jetson image ships numpy (python3-numpy)
    raise ImportError("the on-robot policy needs numpy: `sudo apt-get install python3-numpy` "
                      "(or `pip3 install numpy`) on the Jetson")

from .. import robot
from . import protocol as P
from .arms import make_arm
from .cmdline import ArgumentParser, float_list, number
from .npz_policy import NumpyPolicy, PolicyFileError
from .policy_mode import MAX_POLICY_RATE_HZ, PolicyRunner
from .safety import MAX_RATE_HZ, MAX_SERVO_MOVE_MS, MAX_STEP_DEG, ArmController

_log = logging.getLogger(__name__)

#: Defaults used when the policy file does not carry the deployment facts.
DEFAULT_DOF_VEL_SCALE = 0.2
DEFAULT_CONTROL_RATE_HZ = 60.0
DEFAULT_CLIP_OBSERVATIONS = 5.0
IDENTITY_QUAT = (1.0, 0.0, 0.0, 0.0)


# ----------------------------------------------------------------------------------
# The task's math in numpy (reacher_math is torch)
# ----------------------------------------------------------------------------------
def unscale_dof_pos(dof_pos, lower, upper):
    """Joint positions (rad) mapped to ``[-1, 1]`` over the limits: ``(2q - (L + U)) / (U - L)``."""
    q, lo, hi = np.asarray(dof_pos, np.float64), np.asarray(lower, np.float64), np.asarray(upper, np.float64)
    return (2.0 * q - (lo + hi)) / (hi - lo)


def actions_to_joint_targets(actions, lower, upper):
    """Absolute joint targets (rad) for actions in ``[-1, 1]``: ``L + (a + 1) / 2 (U - L)``, clamped to ``[L, U]``."""
    a, lo, hi = np.asarray(actions, np.float64), np.asarray(lower, np.float64), np.asarray(upper, np.float64)
    return np.minimum(np.maximum(lo + 0.5 * (a + 1.0) * (hi - lo), lo), hi)


def quat_mul(a, b):
    """Hamilton product of quaternions (w, x, y, z), ``(4,)`` or ``(..., 4)``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    aw, ax, ay, az = a[..., 0], a[..., 1], a[..., 2], a[..., 3]
    bw, bx, by, bz = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return np.stack((aw * bw - ax * bx - ay * by - az * bz,
                     aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw), axis=-1)


def quat_conjugate(q):
    """Conjugate of quaternions (w, x, y, z)."""
    q = np.array(q, np.float64)
    q[..., 1:] *= -1.0
    return q


def _axis_quat(axis, angle):
    half = 0.5 * angle
    q = [math.cos(half), 0.0, 0.0, 0.0]
    q[1 + axis] = math.sin(half)
    return np.array(q)


def _rpy_quat(rpy):
    """URDF fixed-axis roll-pitch-yaw (rad) as a quaternion ``qz(y) qy(p) qx(r)``."""
    r, p, y = rpy
    return quat_mul(_axis_quat(2, y), quat_mul(_axis_quat(1, p), _axis_quat(0, r)))


_JOINT_ORIGIN_QUATS = [_rpy_quat(rpy) for _, rpy in robot.URDF_JOINT_ORIGINS]


def ee_quaternion(q):
    """Orientation (w, x, y, z) of link5 (``robot.EE_LINK``) in the base frame for arm angles ``q`` (rad).

    The chain ``prod_i origin_i * Rz(q_i)`` composed the way MuJoCo composes body
    quaternions (the same sign as MuJoCo's ``ee_pose``; :func:`build_observation`
    sign-normalises it to ``w >= 0`` as the task does).

    Returns:
        ``(4,)`` float64, unit norm.
    """
    out = np.array(IDENTITY_QUAT)
    for origin, angle in zip(_JOINT_ORIGIN_QUATS, list(q)[:robot.NUM_ARM_JOINTS]):
        out = quat_mul(quat_mul(out, origin), _axis_quat(2, float(angle)))
    return out / np.linalg.norm(out)


def build_observation(dof_pos, dof_vel, goal_pos, goal_rot, ee_rot, actions, lower, upper,
                      dof_vel_scale=DEFAULT_DOF_VEL_SCALE, clip_observations=DEFAULT_CLIP_OBSERVATIONS):
    """The task's 29-value observation for one robot (``compute_observations`` + the task's clamp).

    Args:
        dof_pos: 6 joint positions (rad). dof_vel: 6 joint velocities (rad/s).
        goal_pos: 3 (m, base frame). goal_rot, ee_rot: quaternions (w, x, y, z); ``ee_rot`` is
            used with the sign that makes ``w >= 0``, as in the task.
        actions: the 6 actions applied last (gripper slot already zeroed).
        lower, upper: the 6 joint limits (rad) the task scales with.
        dof_vel_scale: velocity factor (0.2). clip_observations: clamp (+-5).

    Returns:
        ``(29,)`` float32.
    """
    ee_rot = np.asarray(ee_rot, np.float64).reshape(4)
    if ee_rot[0] < 0:
        ee_rot = -ee_rot
    obs = np.concatenate((unscale_dof_pos(dof_pos, lower, upper),
                          dof_vel_scale * np.asarray(dof_vel, np.float64),
                          np.asarray(goal_pos, np.float64).reshape(3),
                          np.asarray(goal_rot, np.float64).reshape(4),
                          quat_mul(ee_rot, quat_conjugate(goal_rot)),
                          np.asarray(actions, np.float64).reshape(-1)))
    return np.clip(obs, -clip_observations, clip_observations).astype(np.float32)


# ----------------------------------------------------------------------------------
# Velocity from servo read-back
# ----------------------------------------------------------------------------------
class VelocityEstimator(object):
    """Joint velocities (rad/s) from position samples: windowed finite differences, low-passed.

    Each :meth:`update` differentiates against the newest sample at least ``window_s``
    old (read-back has 1 deg resolution, so a longer baseline means less quantisation
    noise), then applies a first-order low-pass of time constant ``tau_s``.

    Args:
        num_joints: joints tracked.
        window_s: finite-difference baseline (s, > 0).
        tau_s: low-pass time constant (s, >= 0; 0 = no filter).

    Raises:
        ValueError: for a bad window or time constant.
    """

    def __init__(self, num_joints=robot.NUM_DOF, window_s=0.05, tau_s=0.03):
        if not window_s > 0 or not tau_s >= 0:
            raise ValueError("window_s must be > 0 and tau_s >= 0, got %r, %r" % (window_s, tau_s))
        self.num_joints, self.window_s, self.tau_s = int(num_joints), float(window_s), float(tau_s)
        self.reset()

    def reset(self):
        """Forget the history: the next velocities are zero."""
        self._history = collections.deque()
        self._vel = np.zeros(self.num_joints)
        self._last_t = None

    def update(self, q, now_s):
        """Add the sample ``q`` (rad) taken at ``now_s`` (s); returns the velocities ``(num_joints,)`` rad/s."""
        q = np.asarray(q, np.float64).reshape(self.num_joints)
        if self._last_t is not None and now_s <= self._last_t:
            return self._vel.copy()  # same or older time stamp: nothing new
        self._history.append((float(now_s), q.copy()))
        while len(self._history) > 2 and self._history[1][0] <= now_s - self.window_s:
            self._history.popleft()
        t0, q0 = self._history[0]
        raw = (q - q0) / (now_s - t0) if now_s > t0 else np.zeros(self.num_joints)
        if self._last_t is None or self.tau_s == 0:
            alpha = 1.0 if self._last_t is not None else 0.0
        else:
            dt = now_s - self._last_t
            alpha = dt / (self.tau_s + dt)
        self._vel = self._vel + alpha * (raw - self._vel)
        self._last_t = float(now_s)
        return self._vel.copy()


# ----------------------------------------------------------------------------------
# The controller the server calls every tick
# ----------------------------------------------------------------------------------
class OnboardController(object):
    """Observation -> numpy policy -> joint targets, once per control tick.

    Args:
        policy: a :class:`~dofbot_rl.sim2real.npz_policy.NumpyPolicy`; its ``meta``
            supplies the joint limits, ``dof_vel_scale`` and control rate (defaults:
            ``robot.SAFE_LIMITS_*``, 0.2, 60 Hz).
        goal: goal position (3 floats, m, robot base frame) or None (then :meth:`step`
            holds the arm where it is until :meth:`set_goal`).
        goal_rot: goal quaternion (w, x, y, z); None: identity.
        vel_window_s, vel_tau_s: see :class:`VelocityEstimator`.

    Attributes:
        last_observation: ``(29,)`` float32 of the last :meth:`step` (None before).
        last_action: ``(6,)`` float32 actions of the last step (gripper zeroed).
        joint_positions: ``(6,)`` rad, the last read-back with failed reads filled in.

    Raises:
        ValueError: the policy is not a 29 -> 6 policy, or a bad goal.
    """

    def __init__(self, policy, goal=None, goal_rot=None, vel_window_s=0.05, vel_tau_s=0.03):
        if policy.num_observations != 29 or policy.num_actions != robot.NUM_DOF:
            raise ValueError("policy maps %d observations to %d actions; the Dofbot reacher needs 29 -> %d"
                             % (policy.num_observations, policy.num_actions, robot.NUM_DOF))
        meta = policy.meta
        self.policy = policy
        self.lower = np.array(meta.get("dof_lower", robot.SAFE_LIMITS_LOWER), np.float64)
        self.upper = np.array(meta.get("dof_upper", robot.SAFE_LIMITS_UPPER), np.float64)
        self.dof_vel_scale = float(meta.get("dof_vel_scale", DEFAULT_DOF_VEL_SCALE))
        self.control_rate_hz = float(meta.get("control_rate_hz", DEFAULT_CONTROL_RATE_HZ))
        self.clip_observations = float(policy.obs_clip)
        self.gripper_index = int(meta.get("gripper_index", robot.NUM_DOF - 1))
        self.velocity = VelocityEstimator(robot.NUM_DOF, vel_window_s, vel_tau_s)
        self.goal_pos = None
        self.goal_rot = np.array(IDENTITY_QUAT)
        self.reset()
        if goal is not None:
            self.set_goal(goal, goal_rot)

    def reset(self):
        """Forget velocities, the last action and the last read-back (e.g. after torque was off)."""
        self.velocity.reset()
        self.last_action = np.zeros(robot.NUM_DOF, np.float32)
        self.last_observation = None
        self.joint_positions = None
        self.last_targets = None

    def set_goal(self, goal, goal_rot=None):
        """Set the goal: position (3 floats, m, base frame) and quaternion (w, x, y, z; None: identity).

        Raises:
            ValueError: not 3 finite numbers, or a zero / non-finite quaternion.
        """
        pos, rot = P.check_goal(goal, goal_rot)
        self.goal_pos = np.array(pos, np.float64)
        self.goal_rot = np.array(IDENTITY_QUAT if rot is None else rot, np.float64)

    def _fill(self, readback_rad):
        rb = np.array(P.as_floats(readback_rad, robot.NUM_DOF, "read-back", finite=False), np.float64)
        if self.joint_positions is None:
            previous = self.last_targets if self.last_targets is not None else np.array(robot.DEFAULT_DOF_POS)
        else:
            previous = self.joint_positions
        return np.where(np.isfinite(rb), rb, previous)

    def observe(self, readback_rad, now_s):
        """Update the state from a read-back and return the observation ``(29,)`` float32.

        Args:
            readback_rad: 6 joint angles (rad, task order); NaN where a read failed.
            now_s: time of the read-back (s, monotonic).

        Raises:
            ValueError: no goal set, or a read-back of the wrong size.
        """
        if self.goal_pos is None:
            raise ValueError("no goal set: call set_goal((x, y, z)) first")
        q = self._fill(readback_rad)
        self.joint_positions = q
        qd = self.velocity.update(q, now_s)
        obs = build_observation(q, qd, self.goal_pos, self.goal_rot, ee_quaternion(q), self.last_action,
                                self.lower, self.upper, self.dof_vel_scale, self.clip_observations)
        self.last_observation = obs
        return obs

    def step(self, readback_rad, now_s):
        """One control tick: read-back (rad) at ``now_s`` (s) -> joint targets (rad).

        Args:
            readback_rad: 6 angles (rad); NaN entries (failed reads) keep the last value.
            now_s: monotonic time (s) of the read-back.

        Returns:
            A list of 6 joint targets (rad) within the policy's joint limits. Without a
            goal: the current read-back (hold still).

        Raises:
            ValueError: a read-back of the wrong size.
        """
        if self.goal_pos is None:
            q = self._fill(readback_rad)
            self.joint_positions = q
            return [float(v) for v in q]
        obs = self.observe(readback_rad, now_s)
        action = np.asarray(self.policy.act(obs), np.float32)
        action[self.gripper_index] = 0.0  # the task never uses the gripper
        self.last_action = action
        targets = actions_to_joint_targets(action, self.lower, self.upper)
        self.last_targets = targets
        return [float(v) for v in targets]

    @property
    def fingertip(self):
        """Fingertip position (m, base frame) from forward kinematics of :attr:`joint_positions` (None before)."""
        return None if self.joint_positions is None else robot.fingertip_position(self.joint_positions)


# ----------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------
def build_parser():
    """The ``python -m dofbot_rl.sim2real.onboard`` argument parser (bad values: one line, exit 2)."""
    p = ArgumentParser(prog="python -m dofbot_rl.sim2real.onboard",
                       description="Run an exported .npz Dofbot policy on the arm (or the simulated arm), without "
                                   "the server.")
    p.add_argument("--policy", required=True, help="policy file from `dofbot-rl export format=npz`")
    p.add_argument("--goal", type=float_list(3, "--goal"), required=True,
                   help="goal position x,y,z (m, robot base frame), e.g. 0.17,0.15,0.25")
    p.add_argument("--goal-quat", type=float_list(4, "--goal-quat"), default=None,
                   help="goal orientation w,x,y,z (default identity)")
    p.add_argument("--duration-s", type=number(float, 0.0, 86400.0, low_open=True), default=10.0,
                   help="how long to run (s)")
    p.add_argument("--arm", choices=("sim", "armlib"), default="sim", help="simulated servo bus or Yahboom Arm_Lib")
    p.add_argument("--rate-hz", type=number(float, 0.0, MAX_POLICY_RATE_HZ, low_open=True), default=None,
                   help="control rate (Hz, default: the policy's, 60)")
    p.add_argument("--move-ms", type=number(int, 0, MAX_SERVO_MOVE_MS), default=50,
                   help="servo move time sent with each target (ms)")
    p.add_argument("--max-step-deg", type=number(float, 0.0, MAX_STEP_DEG, low_open=True), default=5.0,
                   help="safety: largest joint change per servo write (deg)")
    p.add_argument("--readback-hz", type=number(float, 0.0, MAX_RATE_HZ, low_open=True), default=30.0,
                   help="servo read-back rate per servo (Hz)")
    p.add_argument("--vel-window-s", type=number(float, 0.0, 10.0, low_open=True), default=0.05,
                   help="velocity finite-difference baseline (s)")
    p.add_argument("--vel-tau-s", type=number(float, 0.0, 10.0), default=0.03, help="velocity low-pass time constant (s)")
    p.add_argument("--sim-read-latency-ms", type=number(float, 0.0, 1000.0), default=3.0,
                   help="simulated arm: time per servo read (ms)")
    p.add_argument("--sim-read-failure-prob", type=number(float, 0.0, 1.0), default=0.02,
                   help="simulated arm: failed-read probability")
    p.add_argument("--json", default=None, help="write the summary to this JSON file")
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="logging level")
    return p


def main(argv=None):
    """Entry point; returns the exit status (0 ok, 1 bad start-up, 2 bad arguments)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level), format="%(asctime)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    try:
        policy = NumpyPolicy.from_npz(args.policy)
        arm = make_arm(args.arm, args.sim_read_latency_ms, args.sim_read_failure_prob)
        onboard = OnboardController(policy, vel_window_s=args.vel_window_s, vel_tau_s=args.vel_tau_s)
        rate_hz = float(args.rate_hz or onboard.control_rate_hz)
        arm_ctrl = ArmController(arm, max_step_deg=args.max_step_deg, max_rate_hz=rate_hz,
                                 readback_hz=args.readback_hz)
        runner = PolicyRunner(onboard, arm_ctrl, move_ms=args.move_ms, rate_hz=rate_hz, goal=args.goal,
                              goal_quat=args.goal_quat)
    except (PolicyFileError, ImportError, ValueError) as exc:
        sys.stderr.write("onboard: error: %s\n" % exc)
        return 1
    t_end = time.monotonic() + args.duration_s
    stop = threading.Event()
    thread = threading.Thread(target=arm_ctrl.run, args=(stop,), name="arm")
    thread.daemon = True
    thread.start()
    ticks, t0 = 0, time.monotonic()
    try:
        ticks = runner.run(stop, on_tick=lambda now: now >= t_end)
    except KeyboardInterrupt:
        _log.info("interrupted")
    finally:
        stop.set()
        thread.join(5.0)
        arm_ctrl.final_action("onboard run ended")
        arm.close()
    elapsed = time.monotonic() - t0
    tip = onboard.fingertip
    dist = math.sqrt(sum((a - b) ** 2 for a, b in zip(tip, args.goal))) if tip is not None else float("nan")
    summary = {"ticks": ticks, "elapsed_s": elapsed, "rate_hz": ticks / elapsed if elapsed > 0 else 0.0,
               "servo_writes": arm_ctrl.num_writes, "python": "%d.%d" % sys.version_info[:2],
               "goal": args.goal, "fingertip": tip, "distance_m": dist}
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(summary, fh, indent=2)
    print("distance_m=%.4f fingertip=%s" % (dist, ",".join("%.4f" % v for v in (tip or []))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
