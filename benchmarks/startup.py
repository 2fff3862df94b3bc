"""Where the start-up of `dofbot-rl train` goes, as a user sees it: a fresh process, wall clock.

    python benchmarks/startup.py OUT [--runs=3] [--num_envs=8192] [--epochs=22] [--variants=plain,rlg_stock,gc_on]
                                     [--profile] [--floor] [overrides...]

Each run spawns ``dofbot-rl train`` in a fresh interpreter (after one unreported warm-up run
that fills warp's kernel cache and Python's bytecode caches) and stamps these moments with the
wall clock, relative to the spawn:

    interpreter   the child's first line ran (Python itself, site-packages)
    cli           dofbot_rl.cli imported
    train         Trainer.train() entered (config composed, run folder checked)
    rl_games      rl_games' runner imported (it pulls torch._dynamo)    } from Trainer.startup,
    task          the task built (physics backend, CUDA context, graphs) } which `dofbot-rl train`
                  (inside it: physics_built, eager_step_done, graphs_recorded, warm_up_done)
    agent         rl_games' agent built (networks, TensorBoard writer)   } also prints
    rollout1      the first rollout ended (the step graph and rollout graphs captured)
    epoch1..3     epoch ends; ``t90`` the first epoch at >= 90 % success

``--floor`` times alone, in fresh processes, what no start-up of this design can skip
(:data:`FLOOR`). ``--profile`` adds one cProfile run (OUT/startup.prof and its top entries in the report).
Variants: ``plain``; ``rlg_stock`` imports rl_games' runner the stock way first (its test
network's ``@torch.compile`` imports torch's Inductor, which ``dofbot_rl.rl.rlg_compat.runner_class``
defers), to measure that deferral in the same call; ``gc_on`` keeps Python's cyclic garbage
collector running through start-up (``dofbot-rl train`` pauses it until the first epoch). Three overlap experiments were measured
on an H200 on 2026-12-01 and dropped, none gaining anything (docs/benchmarks.md): creating the
CUDA context on a thread through torch or through ``warp.init()`` while the CLI imports, and
importing rl_games on a thread while the task builds. Start-up is Python holding the GIL.
Writes OUT/startup.json and prints a table.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _child(t0, variant, argv):
    """The training process: stamps on stdout as ``STAMP name wall``."""
    t_start = time.time()

    def stamp(name, **extra):
        print("STAMP " + json.dumps(dict(name=name, t=time.time() - t0, **extra)), file=sys.__stdout__, flush=True)

    stamp("interpreter", python_s=t_start - t0)
    import gc

    if variant == "gc_on":  # the collector left on through start-up
        gc.disable = lambda: None
    gc.disable()  # as `dofbot-rl train` does before its imports (cmd_train), which this child makes first
    if variant == "rlg_stock":
        import rl_games.torch_runner  # noqa: F401

        stamp("rlg_stock")
    from dofbot_rl import cli
    from dofbot_rl.rl import trainer as trainer_mod
    from dofbot_rl.rl import vecenv

    stamp("cli")
    train = trainer_mod.Trainer.train
    called = {}

    def _train(self):
        called["t"] = time.time()
        stamp("train")
        return train(self)

    trainer_mod.Trainer.train = _train
    record = trainer_mod.Trainer._record
    epochs = []

    def _record(self, progress):
        epochs.append(progress.success_rate)
        if len(epochs) == 1:  # the trainer's own start-up stages (s after train() was called)
            for name in ("rl_games", "task", "agent"):
                if name in self.startup:
                    print("STAMP " + json.dumps(dict(name=name, t=called["t"] + self.startup[name] - t0)),
                          file=sys.__stdout__, flush=True)
        sr = progress.success_rate
        if len(epochs) <= 3:
            stamp("epoch%d" % len(epochs))
        if sr is not None and sr == sr and sr >= 0.9 and not any(e is not None and e == e and e >= 0.9 for e in epochs[:-1]):
            stamp("t90", epoch=len(epochs), frame=progress.frame)
        record(self, progress)

    trainer_mod.Trainer._record = _record
    make_class = vecenv.host_sync_free_agent_class

    def _class():  # the first rollout's end (its CUDA graphs captured) splits the first epoch
        cls = make_class()
        play, seen = cls.play_steps, []

        def play_steps(self):
            out = play(self)
            if not seen:
                seen.append(1)
                stamp("rollout1")
            return out

        cls.play_steps = play_steps
        return cls

    vecenv.host_sync_free_agent_class = _class  # dofbot_rl.rl.distributed looks it up at call time
    from dofbot_rl.tasks.dofbot_reacher import DofbotReacher

    warm_up, capture = DofbotReacher.warm_up, DofbotReacher._capture_graphs

    def _warm_up(self):  # splits "task": physics and buffers built | eager step | graphs recorded | reset
        stamp("physics_built")
        warm_up(self)
        stamp("warm_up_done")

    def _capture(self):
        stamp("eager_step_done")
        capture(self)
        stamp("graphs_recorded")

    DofbotReacher.warm_up, DofbotReacher._capture_graphs = _warm_up, _capture
    return cli.main(["train", *argv])


#: ``--floor``: what no start-up of this design can skip, each timed alone in fresh processes
#: with the collector paused as `dofbot-rl train` pauses it: (set-up, timed statement).
FLOOR = {
    "import torch": ("", "import torch"),
    "CUDA context (torch)": ("import torch", "torch.zeros(1, device='cuda')"),
    "import warp + warp.init()": ("", "import warp; warp.init()"),
    "import mujoco_warp": ("import warp; warp.config.quiet = True; warp.init()", "import mujoco_warp"),
    "import torch._dynamo (torch.optim's first step)": ("import torch", "import torch._dynamo"),
}


def _floor(runs: int) -> dict:
    """Median seconds of each :data:`FLOOR` part over ``runs`` fresh processes."""
    import statistics

    out = {}
    for name, (setup, stmt) in FLOOR.items():
        code = ("import gc, time; gc.disable()\n" + setup + "\nt = time.perf_counter()\n" + stmt +
                "\nprint('FLOOR', time.perf_counter() - t)")
        times = []
        for _ in range(runs):
            r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
            line = next((ln for ln in r.stdout.splitlines() if ln.startswith("FLOOR ")), None)
            if line:
                times.append(float(line.split()[1]))
        out[name] = round(statistics.median(times), 3) if times else None
    return out


def _run(args, variant, profile=None):
    t0 = time.time()
    cmd = [sys.executable]
    if profile:
        cmd += ["-m", "cProfile", "-o", str(profile)]
    cmd += [str(Path(__file__).resolve()), "--child", repr(t0), variant, *args]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    stamps = {}
    for line in r.stdout.splitlines():
        if line.startswith("STAMP "):
            s = json.loads(line[6:])
            stamps[s.pop("name")] = s
    out = {"variant": variant, "rc": r.returncode, "process_s": time.time() - t0,
           **{k: round(v["t"], 3) for k, v in stamps.items()}}
    if "t90" in stamps:
        out["epoch_at_90"] = stamps["t90"].get("epoch")
    if r.returncode:
        out["stderr_tail"] = r.stderr.strip().splitlines()[-8:]
    return out


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        sys.exit(_child(float(sys.argv[2]), sys.argv[3], sys.argv[4:]))
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    opts = dict(a[2:].split("=", 1) for a in sys.argv[2:] if a.startswith("--") and "=" in a)
    overrides = [a for a in sys.argv[2:] if not a.startswith("--")]
    num_envs = int(opts.get("num_envs", 8192))
    base = [f"num_envs={num_envs}", f"max_iterations={opts.get('epochs', 22)}", f"train_dir={tempfile.mkdtemp(prefix='startup_runs_')}",
            *overrides]
    report = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "num_envs": num_envs, "runs": []}
    try:
        import torch

        report["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # a report without the GPU name is still a report
        report["gpu"] = None
    with open("/proc/cpuinfo") as f:
        report["cpu"] = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    report["cores"] = os.cpu_count()
    _run(base + ["experiment=warm", "max_iterations=2", "seed=100"], "plain")  # caches, not counted
    variants = opts.get("variants", "plain").split(",")
    for i in range(int(opts.get("runs", 3))):
        for v in variants:
            res = _run(base + [f"experiment=s{i}_{v}", f"seed={i}"], v)
            report["runs"].append(res)
            print(json.dumps(res), flush=True)
            (out / "startup.json").write_text(json.dumps(report, indent=2))
    if "--floor" in sys.argv:
        report["floor_s"] = _floor(int(opts.get("runs", 3)))
        print(json.dumps(report["floor_s"]), flush=True)
    if "--profile" in sys.argv:
        prof = out / "startup.prof"
        report["profile_run"] = _run(base + ["experiment=prof", "seed=0"], "plain", profile=prof)
        import io
        import pstats

        for key in ("cumulative", "tottime"):
            s = io.StringIO()
            pstats.Stats(str(prof), stream=s).sort_stats(key).print_stats(60)
            (out / f"startup_profile_{key}.txt").write_text(s.getvalue())
    (out / "startup.json").write_text(json.dumps(report, indent=2))
    cols = ["interpreter", "cli", "train", "rl_games", "physics_built", "eager_step_done", "graphs_recorded", "task", "agent",
            "rollout1", "epoch1", "epoch2", "t90"]
    print("| variant | " + " | ".join(cols) + " |")
    for r in report["runs"]:
        print("| %s | " % r["variant"] + " | ".join("%.2f" % r[c] if c in r else "-" for c in cols) + " |")


if __name__ == "__main__":
    main()
