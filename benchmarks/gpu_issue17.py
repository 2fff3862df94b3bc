"""Issue 17 on one GPU machine, in one call: dofbot-rl and the mjlab peer side by side, and
the host-synchronisation changes measured one by one. Writes OUT/issue17.json (and logs).

    PEER_PYTHONPATH=... python benchmarks/gpu_issue17.py OUT [--sizes=4096,16384,65536] [--seeds=0,1,2] [--part=ours|peer|all]

dofbot-rl runs in this process's environment, the peer (benchmarks/peers/mjlab_dofbot.py) in
subprocesses with ``PEER_PYTHONPATH`` (mjlab 1.6 needs mujoco 3.11, dofbot-rl 4.0). No peer
run without it.

1. CUDA tests of the step path (tests/test_step_graph.py, tests/test_randomization.py).
2. dofbot-rl per size: (a) raw physics loop; (b) the task step eager and as CUDA graphs;
   (c) PPO env-steps/s (updates included, mean of epochs 2-5) for: before (eager step,
   rl_games' stock agent), + graphs, + the rollout without per-step sync (now).
3. GPU utilisation (nvidia-smi, 100 ms samples, median) while training at 16384 envs,
   before and now.
4. ``dofbot-rl train num_envs=8192 seed=S`` in a fresh process: wall time from the process
   start to the first epoch at >= 90 % success, with the start-up split out.
5. The peer: env-only and PPO steps/s per size; time to 90 % from its process start.
"""

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

if len(sys.argv) > 1 and sys.argv[1] == "--tts-child":
    # A fresh `dofbot-rl train` that stamps each epoch with the wall clock (argv[2] = spawn time).
    T0 = float(sys.argv[2])
    T_START = time.time()
    import gc

    gc.disable()  # as `dofbot-rl train` does before its imports (cmd_train), which this child makes first
    from dofbot_rl import cli
    from dofbot_rl.rl import trainer as trainer_mod

    original_record = trainer_mod.Trainer._record
    original_train = trainer_mod.Trainer.train

    def _record(self, progress):
        print("EPOCH " + json.dumps(dict(progress.__dict__, wall=time.time())), file=sys.__stdout__, flush=True)
        original_record(self, progress)

    def _train(self):
        print("TRAIN_START " + json.dumps({"wall": time.time()}), file=sys.__stdout__, flush=True)
        return original_train(self)

    trainer_mod.Trainer._record = _record
    trainer_mod.Trainer.train = _train
    print("CHILD " + json.dumps({"python_start_s": T_START - T0}), flush=True)
    sys.exit(cli.main(["train", *sys.argv[3:]]))

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(sys.argv[1])
OUT.mkdir(parents=True, exist_ok=True)
ARGS = dict(a.split("=", 1) for a in sys.argv[2:] if a.startswith("--") and "=" in a)
SIZES = [int(s) for s in ARGS.get("--sizes", "4096,16384,65536").split(",")]
SEEDS = [int(s) for s in ARGS.get("--seeds", "0,1,2").split(",")]
PART = ARGS.get("--part", "all")  # ours / peer / all (two calls where one would run too long)
PEER_PATH = os.environ.get("PEER_PYTHONPATH") if PART in ("peer", "all") else None
REPORT = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "part": PART}
OURS = PART in ("ours", "all")


def save():
    (OUT / f"issue17_{PART}.json").write_text(json.dumps(REPORT, indent=2))


def log(*a):
    print(*a, flush=True)


def stage(name):
    """Run the decorated stage now; an exception is recorded, not fatal."""

    def run(fn):
        t = time.perf_counter()
        try:
            fn()
        except Exception as exc:  # a benchmark keeps going: the report says what failed
            import traceback

            REPORT.setdefault("errors", {})[name] = traceback.format_exc()
            log(f"stage {name} FAILED: {exc!r}")
        REPORT.setdefault("stage_s", {})[name] = time.perf_counter() - t
        save()
        return fn

    return run


# 0. machine ---------------------------------------------------------------------------------
def _cpu():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "?"


import mujoco  # noqa: E402
import warp as wp  # noqa: E402

REPORT["machine"] = {"gpu": torch.cuda.get_device_name(0), "cpu": _cpu(), "cores": os.cpu_count(),
                     "torch": torch.__version__, "mujoco": mujoco.__version__, "warp": wp.__version__,
                     "python": sys.version.split()[0]}
try:
    import mujoco_warp
    import rl_games

    REPORT["machine"].update(mujoco_warp=getattr(mujoco_warp, "__version__", "?"),
                             rl_games=getattr(rl_games, "__version__", "?"))
except ImportError:
    pass
REPORT["machine"]["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                             capture_output=True, text=True).stdout.strip()
log("machine", REPORT["machine"])
save()


@stage("cuda_tests")
def _tests():
    if not OURS or "--tts-only" in sys.argv or "--util-only" in sys.argv:
        return
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_step_graph.py",
                        "tests/test_randomization.py", "-k", "cuda or gpu"], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    (OUT / "pytest_cuda.log").write_text(r.stdout + r.stderr)
    REPORT["cuda_tests"] = {"rc": r.returncode, "tail": (r.stdout + r.stderr).strip().splitlines()[-1:]}
    log("cuda tests", REPORT["cuda_tests"])


# 2. dofbot-rl throughput, change by change -------------------------------------------------------
from omegaconf import OmegaConf  # noqa: E402

from dofbot_rl import robot  # noqa: E402
from dofbot_rl.bench import _timed  # noqa: E402
from dofbot_rl.config import load_config  # noqa: E402
from dofbot_rl.physics import make_physics  # noqa: E402
from dofbot_rl.rl import trainer as trainer_mod  # noqa: E402
from dofbot_rl.tasks import make_task  # noqa: E402

DEV = torch.device("cuda:0")


def _agent(variant):
    """A ``register_agent`` for the trainer: rl_games' stock agent, or ours with some changes off."""
    if variant == "now":
        return trainer_mod.register_agent
    if variant == "stock":
        from rl_games.algos_torch import a2c_continuous as cls_mod

        return lambda runner: runner.algo_factory.register_builder("a2c_continuous", lambda **kw: cls_mod.A2CAgent(**kw))
    from dofbot_rl.rl.vecenv import host_sync_free_agent_class

    base = host_sync_free_agent_class()
    flags = {"sync_free": dict(graph_rollout=False, graph_update=False),
             "rollout_graphs": dict(graph_rollout=True, graph_update=False)}[variant]
    cls = type("Variant", (base,), flags)
    return lambda runner: runner.algo_factory.register_builder("a2c_continuous", lambda **kw: cls(**kw))


def ppo_rate(cfg, task, epochs, variant="now", on_epoch=None):
    """Mean env-steps/s of epochs 3..epochs+2 (PPO updates included), and of epoch 1.

    ``variant``: ``stock`` (rl_games' agent), ``sync_free`` (ours: no per-step ``dones.nonzero()``),
    ``rollout_graphs`` (+ the learner's side of the rollout as CUDA graphs), ``now`` (+ the PPO
    update's minibatch steps as CUDA graphs).
    """
    import tempfile

    register = trainer_mod.register_agent
    trainer_mod.register_agent = _agent(variant)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run_cfg = OmegaConf.merge(cfg, {"max_iterations": epochs + 2, "train_dir": tmp, "experiment": "bench"})
            result = trainer_mod.Trainer(run_cfg, task=task, quiet=True, on_progress=on_epoch).train()
    finally:
        trainer_mod.register_agent = register
    rates = [p.env_steps_per_s for p in result.history[2:]]  # epochs 1-2 record graphs
    return statistics.mean(rates), result.history[0].env_steps_per_s


def set_graphs(task, on):
    task._use_graphs = on
    task._graphs = None


class GpuSampler:
    """nvidia-smi utilisation / power samples every 100 ms while active."""

    def __init__(self):
        gpu = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0]  # the GPU this process trains on
        self.proc = subprocess.Popen(["nvidia-smi", "-i", gpu, "--query-gpu=utilization.gpu,power.draw",
                                      "--format=csv,noheader,nounits", "-lms", "100"], stdout=subprocess.PIPE, text=True)
        self.samples, self.active = [], False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            if self.active:
                try:
                    util, power = (float(v) for v in line.split(","))
                    self.samples.append((util, power))
                except ValueError:
                    pass

    def stop(self):
        self.proc.terminate()


ROWS = REPORT.setdefault("ours", {})


@stage("warm_kernels")
def _warm():
    if not OURS or "--tts-only" in sys.argv:
        return
    t = time.perf_counter()
    cfg = load_config(["sim_device=cuda:0", "num_envs=64"])
    task = make_task(cfg)
    task.reset()
    for _ in range(3):
        task.step(torch.zeros(64, 6, device=DEV))
    torch.cuda.synchronize()
    REPORT["ours_first_build_s"] = time.perf_counter() - t
    task.physics.close()


for n in (SIZES if OURS and "--tts-only" not in sys.argv and "--util-only" not in sys.argv else []):
    @stage(f"ours_{n}")
    def _size(n=n):
        cfg = load_config(["sim_device=cuda:0", f"num_envs={n}"])
        physics = make_physics(cfg)
        lower = torch.tensor(robot.SAFE_LIMITS_LOWER, device=DEV)
        upper = torch.tensor(robot.SAFE_LIMITS_UPPER, device=DEV)
        row = ROWS.setdefault(str(n), {"num_envs": n})

        def physics_step():
            physics.set_joint_position_targets(lower + (upper - lower) * torch.rand(n, 6, device=DEV))
            physics.step(2)
            torch.cat((physics.dof_pos, physics.dof_vel, physics.ee_pose), dim=-1)

        physics.write_joint_state(torch.arange(n, device=DEV), torch.zeros(n, 6, device=DEV), torch.zeros(n, 6, device=DEV))
        row["physics"] = _timed(physics_step, DEV, 1.5) * n
        task = make_task(cfg, physics)
        task.reset()
        actions = [2.0 * torch.rand(n, 6, device=DEV) - 1.0 for _ in range(8)]
        k = [0]

        def task_step():
            k[0] += 1
            task.step(actions[k[0] % 8])

        for graphs, key in ((False, "task_eager"), (True, "task_graph")):
            set_graphs(task, graphs)
            row[key] = _timed(task_step, DEV, 1.5) * n
        epochs = 4
        set_graphs(task, False)
        row["ppo_before"], row["ppo_before_first_epoch"] = ppo_rate(cfg, task, epochs, "stock")
        set_graphs(task, True)
        row["ppo_graphs"], _ = ppo_rate(cfg, task, epochs, "stock")
        row["ppo_sync_free"], _ = ppo_rate(cfg, task, epochs, "sync_free")
        row["ppo_rollout_graphs"], _ = ppo_rate(cfg, task, epochs, "rollout_graphs")
        row["ppo_now"], row["ppo_now_first_epoch"] = ppo_rate(cfg, task, epochs, "now")
        log("ours", row)
        physics.close()


@stage("gpu_util_16384")
def _util():
    if not OURS or "--tts-only" in sys.argv or "--no-util" in sys.argv:
        return
    cfg = load_config(["sim_device=cuda:0", "num_envs=16384"])
    task = make_task(cfg)
    sampler = GpuSampler()
    out = REPORT.setdefault("gpu_util_16384", {})
    try:
        for graphs, variant, key in ((False, "stock", "before"), (True, "sync_free", "sync_free"),
                                     (True, "rollout_graphs", "rollout_graphs"), (True, "now", "now")):
            set_graphs(task, graphs)
            started = []

            def on_epoch(p):  # sample from the end of the first epoch on
                if not started:
                    started.append(1)
                    sampler.samples.clear()
                    sampler.active = True

            rate, _ = ppo_rate(cfg, task, 12, variant, on_epoch=on_epoch)
            sampler.active = False
            utils = [u for u, _ in sampler.samples]
            powers = [p for _, p in sampler.samples]
            out[key] = {"ppo_env_steps_per_s": rate, "median_util_pct": statistics.median(utils) if utils else None,
                        "median_power_w": statistics.median(powers) if powers else None, "samples": len(utils)}
            log("util", key, out[key])
    finally:
        sampler.stop()
        task.physics.close()


def tts_ours(seed, num_envs=8192, epochs=22):
    t0 = time.time()
    r = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--tts-child", repr(t0), f"num_envs={num_envs}",
                        f"seed={seed}", f"max_iterations={epochs}", "sim_device=cuda:0", "train_dir=/tmp/tts_runs",
                        f"experiment=tts_{seed}"], cwd=ROOT, capture_output=True, text=True, timeout=240)
    t_end = time.time()
    lines = r.stdout.splitlines()
    epochs_ = [json.loads(line[6:]) for line in lines if line.startswith("EPOCH ")]
    train_start = next((json.loads(line[12:])["wall"] for line in lines if line.startswith("TRAIN_START ")), None)
    child = next((json.loads(line[6:]) for line in lines if line.startswith("CHILD ")), {})
    hit = next((e for e in epochs_ if e["success_rate"] is not None and e["success_rate"] == e["success_rate"]
                and e["success_rate"] >= 0.9), None)
    return {"seed": seed, "rc": r.returncode, "time_to_90_s": (hit["wall"] - t0) if hit else None,
            "epoch_at_90": hit["epoch"] if hit else None, "env_steps_to_90": hit["frame"] if hit else None,
            "python_start_s": child.get("python_start_s"),
            "startup_s": (train_start - t0) if train_start else None,  # process start -> Trainer.train()
            "first_epoch_end_s": (epochs_[0]["wall"] - t0) if epochs_ else None,
            "epoch_s": [round(b["wall"] - a["wall"], 4) for a, b in zip(epochs_, epochs_[1:])][:8],
            "first_epoch_s": (epochs_[0]["wall"] - train_start) if epochs_ and train_start else None,
            "process_s": t_end - t0, "stderr_tail": r.stderr.strip().splitlines()[-3:] if r.returncode else []}


@stage("tts_ours")
def _tts():
    if not OURS:
        return
    if "--no-tts" in sys.argv or "--util-only" in sys.argv:
        return
    runs = REPORT.setdefault("tts_ours", [])
    if "--no-tts-warm" not in sys.argv:
        tts_ours(100, epochs=2)  # warms warp's kernel cache for a fresh process (not counted)
    for seed in SEEDS:
        runs.append(tts_ours(seed))
        log("tts ours", runs[-1])
        save()


# 5. the peer -------------------------------------------------------------------------------------
PEER = ROOT / "benchmarks" / "peers" / "mjlab_dofbot.py"


def peer(args, timeout=300):
    if not PEER_PATH:
        raise RuntimeError("PEER_PYTHONPATH not set")
    env = dict(os.environ, PYTHONPATH=PEER_PATH, PYTHONUNBUFFERED="1")
    t0 = time.time()
    r = subprocess.run([sys.executable, str(PEER), *args, "--t0", repr(t0)], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=timeout)
    with (OUT / "peer.log").open("a") as f:
        f.write(f"=== {args} rc={r.returncode}\n{r.stdout[-4000:]}\n{r.stderr[-6000:]}\n")
    res = next((json.loads(line[7:]) for line in r.stdout.splitlines() if line.startswith("RESULT ")), None)
    if res is None:
        raise RuntimeError(f"peer {args} failed rc={r.returncode}: {r.stderr.strip().splitlines()[-3:]}")
    res["process_s"] = time.time() - t0
    return res


PEER_ROWS = REPORT.setdefault("peer", {})

if PEER_PATH:
    @stage("peer_warm")
    def _peer_warm():  # warp kernels and bytecode caches of the peer, as tts_ours' warm run does for ours
        if "--no-tts-warm" in sys.argv:
            return
        REPORT["peer_warm"] = peer(["throughput", "--num-envs", "64", "--seconds", "0.5", "--iterations", "2"],
                                   timeout=400)
        log("peer warm", REPORT["peer_warm"])

    for n in ([] if "--tts-only" in sys.argv else SIZES):
        @stage(f"peer_{n}")
        def _peer_size(n=n):
            PEER_ROWS[str(n)] = peer(["throughput", "--num-envs", str(n), "--seconds", "1.5", "--iterations", "5"])
            log("peer", n, PEER_ROWS[str(n)])

    @stage("tts_peer")
    def _tts_peer():
        for matched in (False, True):
            key = "tts_peer_matched" if matched else "tts_peer_default"
            runs = REPORT.setdefault(key, [])
            for seed in (SEEDS if not matched else SEEDS[:1]):  # matched: one seed (device time)
                runs.append(peer(["tts", "--num-envs", "8192", "--seed", str(seed), "--cap-s", "30"]
                                 + (["--ppo-matched"] if matched else [])))
                log(key, runs[-1])
                save()


# table --------------------------------------------------------------------------------------------
def _f(v, spec=",.0f"):
    return "-" if v is None else format(v, spec)


lines = ["| num_envs | physics | task eager | task graph | PPO before | PPO +graphs | PPO now | peer env | peer PPO (default) | peer PPO (matched) |",
         "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
for n in SIZES:
    o, p = ROWS.get(str(n), {}), PEER_ROWS.get(str(n), {})
    lines.append(f"| {n} | {_f(o.get('physics'))} | {_f(o.get('task_eager'))} | {_f(o.get('task_graph'))} | "
                 f"{_f(o.get('ppo_before'))} | {_f(o.get('ppo_graphs'))} | {_f(o.get('ppo_now'))} | "
                 f"{_f(p.get('env_steps_per_s'))} | {_f(p.get('ppo_default'))} | {_f(p.get('ppo_matched'))} |")
REPORT["table"] = "\n".join(lines)
save()
log(REPORT["table"])
for key in ("tts_ours", "tts_peer_default", "tts_peer_matched"):
    log(key, [r.get("time_to_90_s") for r in REPORT.get(key, [])])
log("util", REPORT.get("gpu_util_16384"))
log("errors", list(REPORT.get("errors", {})))
