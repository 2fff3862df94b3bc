"""On-robot inference vs the simulator: the same policy's success rate in both.

1. Exports the checkpoint to ``policy.npz`` (``dofbot_rl.rl.export``).
2. **Sim**: the rl_games player (torch) on the headless MuJoCo task
   (``dofbot_rl.rl.play.evaluate``): goals reached / goals counted over whole episodes.
3. **Onboard**: ``python -m dofbot_rl.sim2real.onboard --episodes N --arm sim`` under
   Python 3.6 when available (the Jetson's JetPack 4): the numpy policy, observations
   from servo read-back (1 deg resolution, 3 ms per read, 2 % failed reads), targets
   through the server's safety layer (clamp, 5 deg step limit, 60 Hz) to the simulated
   servo bus (linear moves over the move time). A goal is reached when the forward
   kinematics of the read-back angles put the fingertip within 5 cm; goals are sampled
   and counted like the task's (10 s episodes; a goal up 2 s or more at the episode's
   end counts as missed). This part runs in real time: about 10 s per episode.

Usage::

    python benchmarks/onboard_vs_sim.py [--checkpoint data/checkpoints/DofbotReacher.pth]
        [--sim-episodes 64] [--onboard-episodes 6] [--goal-rot identity|random] [--python PATH]

The last line: ``sim_success_rate=... onboard_success_rate=... difference_points=...``.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
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
    p.add_argument("--python", default=None, help="interpreter for the onboard run (default: Python 3.6 if found)")
    p.add_argument("--move-ms", type=int, default=50, help="servo move time sent with each target (ms)")
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
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(x for x in (str(EXT_DIR), extra) if x))
        env.pop("PYTHONHOME", None)
        out_json = Path(tmp) / "onboard.json"
        cmd = [python, "-m", "dofbot_rl.sim2real.onboard", "--policy", str(npz), "--arm", "sim",
               "--episodes", str(args.onboard_episodes), "--goal-rot", args.goal_rot, "--seed", str(args.seed),
               "--move-ms", str(args.move_ms), "--json", str(out_json), "--log-level", "WARNING"]
        run = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
        if run.returncode != 0:
            print(run.stdout, file=sys.stderr)
            return 1
        onboard = json.loads(out_json.read_text())
    print(f"onboard (numpy policy, Python {onboard['python']}, simulated servos, {onboard['rate_hz']:.1f} Hz, "
          f"goal rot {args.goal_rot}): success_rate={onboard['success_rate']:.4f} "
          f"goals_per_episode={onboard['goals_per_episode']:.2f} "
          f"goals={onboard['goals_reached']}/{onboard['goals_counted']} episodes={onboard['episodes']}")
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
