"""On-robot inference vs the simulator: the same policy's success rate in both.

1. Exports the checkpoint to ``policy.npz`` (``dofbot_rl.rl.export``).
2. **Sim**: the rl_games player (torch) on the headless MuJoCo task
   (``dofbot_rl.rl.play.evaluate``): goals reached / goals counted over whole episodes.
3. **Onboard, end to end**: the one-file server (``dofbot_server.pyz``) runs under
   Python 3.6 when available (the Jetson's JetPack 4) with ``--policy policy.npz --arm sim``:
   the numpy policy, observations from servo read-back (1 deg resolution, 3 ms per read,
   2 % failed reads), targets through the server's safety layer (clamp, 5 deg step limit,
   60 Hz) to the simulated servo bus (linear moves over the move time). This process is
   the client, on 127.0.0.1 over TCP (protocol v1.1, ``Sim2RealClient(mode="goal")``): it
   samples goals like the task, sends each as a GOAL frame, and counts a goal reached when
   the forward kinematics of the read-back angles in the server's ACKs put the fingertip
   within 5 cm. Goals are counted like the task's (10 s episodes; a goal up 2 s or more at
   the episode's end counts as missed). This part runs in real time: about 10 s per episode.

Usage::

    python benchmarks/onboard_vs_sim.py [--checkpoint data/checkpoints/DofbotReacher.pth]
        [--sim-episodes 64] [--onboard-episodes 6] [--goal-rot identity|random] [--python PATH]

The last line: ``sim_success_rate=... onboard_success_rate=... difference_points=...``.
"""

import argparse
import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXT_DIR = Path(__file__).resolve().parents[1] / "exts" / "dofbot.rl_examples"
NUMPY36_CACHE = os.path.expanduser("~/.cache/dofbot-rl/py36")


def _python36():
    """``(python, extra_path)`` for pyenv's 3.6.15 with numpy importable, or None."""
    try:
        root = subprocess.run(["pyenv", "root"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              universal_newlines=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    python = os.path.join(root, "versions", "3.6.15", "bin", "python")
    if not root or not os.path.exists(python):
        return None
    for extra in ("", NUMPY36_CACHE):
        env = dict(os.environ, PYTHONPATH=extra)
        if subprocess.run([python, "-c", "import numpy"], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0:
            return python, extra
    return None


# The evaluation harness: goals counted like the task's (not part of the robot's runtime).


def sample_goal_position(rng, goal_region):
    """One goal (m) like ``reacher_math.sample_goal_positions``: ``|x|, |y|`` in [xy_min, xy_max], z in [z_min, z_max]."""
    xy_min, xy_max, z_min, z_max = goal_region
    u = [rng.uniform(-1.0, 1.0) for _ in range(3)]
    sign = [1.0 if v > 0 else (-1.0 if v < 0 else 0.0) for v in u]
    return [(xy_max - xy_min) * u[0] + xy_min * sign[0], (xy_max - xy_min) * u[1] + xy_min * sign[1],
            (z_max - z_min) * abs(u[2]) + z_min]


def sample_goal_rotation(rng):
    """A goal quaternion like ``reacher_math.sample_goal_rotations``: about x, then about y, by ``pi U(-1, 1)``."""
    ax, ay = math.pi * rng.uniform(-1.0, 1.0), math.pi * rng.uniform(-1.0, 1.0)
    # q_x(ax) * q_y(ay), (w, x, y, z)
    cx, sx, cy, sy = math.cos(0.5 * ax), math.sin(0.5 * ax), math.cos(0.5 * ay), math.sin(0.5 * ay)
    return [cx * cy, sx * cy, cx * sy, sx * sy]


class GoalEpisodes(object):
    """Counts goals the way the task does, for runs against the (simulated) arm.

    Episodes last ``episode_s``; a goal is reached when the fingertip (forward
    kinematics of the read-back) is within ``tolerance`` m, and then re-sampled; at an
    episode's end the goal in progress counts as missed if it was up ``window_s`` or
    longer, else it is not counted (the task's ``goals_counted``).

    The goal target (``on_tick``'s second argument) has ``set_goal(pos, quat)``,
    ``goal_pos`` and ``fingertip`` (m, base frame, None before a read-back).

    Args:
        rng: ``random.Random``. goal_region: (xy_min, xy_max, z_min, z_max) m.
        episodes: episodes to run. episode_s, window_s (s), tolerance (m).
        random_rot: sample goal quaternions like the task (else identity).
    """

    def __init__(self, rng, goal_region, episodes, episode_s, window_s, tolerance, random_rot=False):
        self.rng, self.goal_region, self.random_rot = rng, goal_region, random_rot
        self.episodes_total, self.episode_s, self.window_s, self.tolerance = episodes, episode_s, window_s, tolerance
        self.episodes = 0
        self.goals_reached = 0
        self.goals_counted = 0
        self.episode_start = None
        self.goal_start = None

    def _new_goal(self, onboard, now):
        rot = sample_goal_rotation(self.rng) if self.random_rot else None
        onboard.set_goal(sample_goal_position(self.rng, self.goal_region), rot)
        self.goal_start = now

    def on_tick(self, now, onboard):
        """Call every control tick with the time (s) and the goal target; returns True when all episodes are done."""
        if self.episode_start is None:
            self.episode_start = now
            self._new_goal(onboard, now)
            return False
        tip = onboard.fingertip
        if tip is not None and math.sqrt(sum((a - b) ** 2 for a, b in zip(tip, onboard.goal_pos))) <= self.tolerance:
            self.goals_reached += 1
            self.goals_counted += 1
            self._new_goal(onboard, now)
        if now - self.episode_start >= self.episode_s:
            if now - self.goal_start >= self.window_s:
                self.goals_counted += 1
            self.episodes += 1
            if self.episodes >= self.episodes_total:
                return True
            self.episode_start = now
            self._new_goal(onboard, now)
        return False

    @property
    def success_rate(self):
        """Goals reached / goals counted (NaN when none counted)."""
        return self.goals_reached / self.goals_counted if self.goals_counted else float("nan")

    def summary(self):
        """A dict of the figures."""
        return {"success_rate": self.success_rate, "goals_reached": self.goals_reached,
                "goals_counted": self.goals_counted, "episodes": self.episodes,
                "goals_per_episode": self.goals_reached / self.episodes if self.episodes else float("nan")}


class ClientGoals:
    """What :class:`GoalEpisodes` counts with, seen from the client side of the link.

    ``set_goal`` sends a GOAL frame; ``fingertip`` is the forward kinematics of the latest
    read-back in the server's ACKs (a failed read keeps that joint's last value).
    """

    def __init__(self, client):
        self.client = client
        self.goal_pos = None
        self._q = None

    def set_goal(self, pos, rot=None):
        self.goal_pos = [float(v) for v in pos]
        self.client.send_goal(self.goal_pos, rot)

    @property
    def fingertip(self):
        from dofbot_rl import robot

        rb = self.client.readback()
        if rb is None:
            return None
        q = list(rb.q)
        if self._q is not None:
            q = [v if math.isfinite(v) else old for v, old in zip(q, self._q)]
        if not all(math.isfinite(v) for v in q[:robot.NUM_ARM_JOINTS]):
            return None
        self._q = q
        return robot.fingertip_position(q)


def run_onboard(npz, python, extra_path, episodes, goal_rot, seed, move_ms, log_path):
    """Serve ``npz`` in policy mode with ``python`` and drive it as a TCP client; returns a summary dict."""
    from dofbot_rl.sim2real.bundle import build_server_zipapp
    from dofbot_rl.sim2real.client import Sim2RealClient
    from dofbot_rl.sim2real.npz_policy import NumpyPolicy

    meta = NumpyPolicy.from_npz(npz).meta
    bundle = build_server_zipapp(str(Path(log_path).with_name("dofbot_server.pyz")))
    env = dict(os.environ, PYTHONPATH=extra_path)  # the bundle brings dofbot_rl; numpy as on the Jetson
    env.pop("PYTHONHOME", None)
    proc = subprocess.Popen([python, bundle, "--arm", "sim", "--host", "127.0.0.1", "--port", "0",
                             "--policy", str(npz), "--move-ms", str(move_ms), "--log-file", str(log_path)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = None
    try:
        deadline = time.monotonic() + 30.0
        while True:
            text = Path(log_path).read_text() if Path(log_path).exists() else ""
            m = re.search(r"serving v1 on 127\.0\.0\.1:(\d+)", text)
            if m:
                port = int(m.group(1))
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start: %s" % text)
            time.sleep(0.05)
        client = Sim2RealClient(port=port, mode="goal", rate_hz=60.0, fail_quietly=False).start()
        if not client.wait_for_state("connected", 5.0):
            raise RuntimeError("cannot connect: %s" % client.last_error)
        goals = ClientGoals(client)
        counter = GoalEpisodes(random.Random(seed), meta.get("goal_region", (0.15, 0.20, 0.15, 0.35)), episodes,
                               meta.get("episode_length_s", 10.0), meta.get("success_window_s", 2.0),
                               meta.get("success_tolerance", 0.05), random_rot=goal_rot == "random")
        period, ticks, t0 = 1.0 / 60.0, 0, time.monotonic()
        next_t = t0
        while not counter.on_tick(time.monotonic(), goals):
            client.check()
            ticks += 1
            next_t += period
            time.sleep(max(next_t - time.monotonic(), 0.0))
        elapsed = time.monotonic() - t0
        stats = client.stats()
    finally:
        if client is not None:
            client.stop()
        proc.terminate()
        try:
            proc.wait(10.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    python_version = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                    stdout=subprocess.PIPE, universal_newlines=True).stdout.strip()
    summary = counter.summary()
    summary.update({"python": python_version, "elapsed_s": elapsed, "client_ticks": ticks,
                    "goals_sent": stats["goals_sent"], "acks": stats["acks"],
                    "latency_ms_mean": stats["latency_ms_mean"], "latency_ms_max": stats["latency_ms_max"],
                    "server_exit": proc.returncode})
    return summary


def main(argv=None):
    from dofbot_rl.config import load_config
    from dofbot_rl.rl.export import export
    from dofbot_rl.rl.play import default_checkpoint, evaluate

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=None, help="policy .pth (default data/checkpoints/DofbotReacher.pth)")
    p.add_argument("--sim-episodes", type=int, default=64, help="episodes of the torch policy in the sim")
    p.add_argument("--onboard-episodes", type=int, default=6, help="episodes (10 s each, real time) onboard")
    p.add_argument("--goal-rot", choices=("identity", "random"), default="identity",
                   help="onboard goal orientations: identity (deployment) or random (like training)")
    p.add_argument("--python", default=None, help="interpreter for the server (default: Python 3.6 if found)")
    p.add_argument("--move-ms", type=int, default=50, help="servo move time the server sends with each target (ms)")
    p.add_argument("--seed", type=int, default=0, help="onboard goal seed")
    p.add_argument("--json", default=None, help="write both figures to this JSON file")
    args = p.parse_args(argv)

    checkpoint = Path(args.checkpoint) if args.checkpoint else default_checkpoint()
    if checkpoint is None or not checkpoint.is_file():
        p.error("no checkpoint: pass --checkpoint PATH (data/checkpoints/DofbotReacher.pth is not there)")
    cfg = load_config(["num_envs=64", "test=True", "sim_device=cpu"])

    with tempfile.TemporaryDirectory() as tmp:
        npz = export(checkpoint, "npz", Path(tmp), cfg).files["npz"]
        sim = evaluate(cfg, checkpoint, episodes=args.sim_episodes)
        print(f"sim     (torch rl_games player, MuJoCo, {cfg.num_envs} envs): success_rate={sim.success_rate:.4f} "
              f"goals_per_episode={sim.goals_per_episode:.2f} goals={sim.goals_reached:.0f}/{sim.goals_counted:.0f} "
              f"episodes={sim.episodes}", flush=True)

        found = None if args.python else _python36()
        python, extra = (args.python, "") if args.python else (found or (sys.executable, ""))
        onboard = run_onboard(npz, python, extra, args.onboard_episodes, args.goal_rot, args.seed, args.move_ms,
                              Path(tmp) / "server.log")
    print(f"onboard (server policy mode, numpy policy, Python {onboard['python']}, simulated servos, TCP client, "
          f"goal rot {args.goal_rot}): success_rate={onboard['success_rate']:.4f} "
          f"goals_per_episode={onboard['goals_per_episode']:.2f} "
          f"goals={onboard['goals_reached']}/{onboard['goals_counted']} episodes={onboard['episodes']} "
          f"rtt_ms mean {onboard['latency_ms_mean']:.2f} max {onboard['latency_ms_max']:.1f}")
    diff = 100.0 * (onboard["success_rate"] - sim.success_rate)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "checkpoint": str(checkpoint), "sim": {"success_rate": sim.success_rate,
                                                   "goals_per_episode": sim.goals_per_episode,
                                                   "goals_reached": sim.goals_reached,
                                                   "goals_counted": sim.goals_counted, "episodes": sim.episodes},
            "onboard": onboard, "goal_rot": args.goal_rot, "difference_points": diff}, indent=2))
    print(f"sim_success_rate={sim.success_rate:.4f} onboard_success_rate={onboard['success_rate']:.4f} "
          f"difference_points={diff:+.2f}")
    return 0 if onboard["server_exit"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
