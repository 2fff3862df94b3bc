"""Sim-to-real server under hostile input and link loss: figures for docs/sim2real.md.

Runs, on 127.0.0.1 with the simulated arm:

1. a fuzz run: >= --frames random / truncated / oversized / hostile frames against a
   server with large steps and a high write rate (so hostile targets reach the servos);
   reports the extreme joint angles the arm was ever sent versus the server's per-joint
   limits (the safe limits for joints 1-5, the gripper's full open/close range);
2. hold latency: a real client in a child process streams at 60 Hz and is killed
   (SIGKILL) or frozen (SIGSTOP) --trials times each, against a default server
   (heartbeat 200 ms); reports the time to the server's hold.

Usage: python benchmarks/sim2real_fuzz.py [--frames 10000] [--trials 10] [--seed 0]
"""

import argparse
import os
import statistics
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "exts", "dofbot.rl_examples"))

from dofbot_rl.sim2real import stress  # noqa: E402
from dofbot_rl.sim2real.arms import SimulatedArm  # noqa: E402
from dofbot_rl.sim2real.server import LIMITS_LOWER, LIMITS_UPPER, Sim2RealServer  # noqa: E402


def _serve(**kwargs):
    arm = SimulatedArm(read_latency_ms=3.0, read_failure_prob=0.02, seed=0)
    server = Sim2RealServer(arm, host="127.0.0.1", port=0, **kwargs)
    stop = threading.Event()
    thread = threading.Thread(target=server.serve_forever, args=(stop,), daemon=True)
    thread.start()
    return server, arm, stop, thread


def _fmt(values):
    return "[" + ",".join("%.6f" % v for v in values) + "]"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=10000, help="frames to fuzz")
    p.add_argument("--trials", type=int, default=10, help="hold-latency trials per kind (kill, silent)")
    p.add_argument("--heartbeat-ms", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    server, arm, stop, thread = _serve(max_step_deg=90.0, max_rate_hz=500.0, heartbeat_ms=args.heartbeat_ms)
    report = stress.fuzz_server(*server.address, num_frames=args.frames, seed=args.seed, time_budget_s=300.0)
    alive = thread.is_alive()
    lowest, highest = stress.commanded_extremes_rad(arm)
    stop.set()
    thread.join(5.0)
    max_abs = [max(abs(a), abs(b)) for a, b in zip(lowest, highest)]
    limit = [max(abs(a), abs(b)) for a, b in zip(LIMITS_LOWER, LIMITS_UPPER)]
    excess = max(max(lo - mn, mx - hi, 0.0) for lo, hi, mn, mx in zip(LIMITS_LOWER, LIMITS_UPPER, lowest, highest))

    server, arm2, stop, thread = _serve(heartbeat_ms=args.heartbeat_ms)
    killed = stress.measure_hold_latency(server, how="kill", trials=args.trials, seed=args.seed)
    silent = stress.measure_hold_latency(server, how="silent", trials=args.trials, seed=args.seed + 1)
    stop.set()
    thread.join(5.0)
    worst = max(s.after_last_frame_ms for s in killed + silent)

    print("frames_fuzzed=%d worst_hold_latency_ms=%.1f max_command_rad=%s limit_rad=%s"
          % (report.frames, worst, _fmt(max_abs), _fmt(limit)))
    print("fuzz: %d frames (%d fatal) in %d sessions, %d refused, %d ACKs, %.1f s; server alive: %s; "
          "fatal frames left open: %d; servo writes: %d, rejected by the bus: %d; max limit excess: %.3g rad"
          % (report.frames, report.fatal_frames, report.sessions, report.refused, report.acks, report.seconds,
             alive, report.fatal_kept_open, arm.num_writes, arm.num_rejected, excess))
    for name, samples in (("client killed (SIGKILL)", killed), ("client silent (SIGSTOP)", silent)):
        loss = [s.after_loss_ms for s in samples]
        last = [s.after_last_frame_ms for s in samples]
        print("hold, %s, heartbeat %d ms, %d trials: after the loss mean %.1f max %.1f ms; "
              "after the last frame mean %.1f max %.1f ms"
              % (name, args.heartbeat_ms, len(samples), statistics.mean(loss), max(loss),
                 statistics.mean(last), max(last)))
    return 0 if alive and excess <= 1e-9 and report.fatal_kept_open == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
