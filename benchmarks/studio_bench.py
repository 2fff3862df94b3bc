"""Studio figures: page load time, 3D update rate while training, training slowdown with the page open.

    python benchmarks/studio_bench.py                                  # 64 and 512 robots, both placements
    python benchmarks/studio_bench.py --sizes 64 --pairs 3 --window-s 10 --placements split

One training run per size (PPO, many epochs, ``ui_only`` render mode) on a studio served as
``dofbot-rl studio`` serves it (viser behind the gate, 127.0.0.1), in this process; the
studio's loop runs on a thread of its own, this thread drives a headless Chromium (Debian's,
through Playwright). The run alternates windows of ``--window-s`` seconds with the page
closed and with the page open (after it loaded and drew its first frame), ``--pairs`` times,
and counts env-steps per second in each window (control steps x robots / wall time, PPO
updates included). The slowdown of an open window is against the mean of the closed windows
around it; the median and the range over the pairs are printed. Other jobs on a shared
machine move wall-clock figures a lot (the scheduler moves them onto whichever core the
browser leaves free), so two more figures per window: env-steps per CPU second of this
process (``cpu_cost``), the CPU the studio's own work took (drawing and widgets on the
model's thread, viser's threads, the gate; % of one core: what a trainer that has one core
to itself loses to the open page, independent of other jobs), and the share of wall time
this process's threads waited, runnable, for a CPU.

Placements:

* ``split``: this process (trainer, studio, viser, gate) on CPU 0 with one torch thread, the
  browser (and Playwright's driver) on CPU 1: a browser on another machine (SSH tunnel);
* ``shared``: no pinning, the browser renders WebGL in software on the same cores.

Also printed: the 3D updates per second sent while the page was open, the studio's drawing
time as a share of wall time, and the machine's load average (other jobs share it). Not a
test: figures only (docs/studio.md).
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def _pin_tree(pid: int, cpus: str) -> None:
    """Every thread of process ``pid`` onto ``cpus`` (taskset's list syntax)."""
    subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)], check=True, stdout=subprocess.DEVNULL)


def _children(pid: int):
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(v) for v in out.split()]


class Counter:
    """Control steps, 3D frames and drawing time of a studio, read between windows."""

    def __init__(self, studio, server):
        self.studio = studio
        self.waits = []  # per window: % of wall time the process's threads waited for a CPU
        self.own = []  # per window: the studio's own CPU, % of one core
        # the studio's own threads: viser's server, its callback pool, the gate
        self.viser_thread = server._websock_server._server_thread.name

    def own_cpu_s(self) -> float:
        """CPU seconds so far of the studio's own work: drawing and widgets on the model's
        thread, viser's threads, the gate."""
        cpu = thread_cpu()
        threads = sum(v for k, v in cpu.items()
                      if k in (self.viser_thread, "studio-gate") or k.startswith(("ThreadPoolExecutor", "asyncio_")))
        return threads + self.studio.ui_cpu_s

    def snapshot(self):
        s = self.studio
        return (time.monotonic(), s.control_steps, s.frames_drawn, s.draw_s, time.process_time(), run_delay_s(),
                self.own_cpu_s())


def run_delay_s() -> float:
    """Seconds the threads of this process have waited, runnable, for a CPU (Linux schedstat)."""
    total = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                total += int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


def thread_cpu():
    """CPU seconds used so far by each thread of this process, by Python thread name."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        name = names.get(int(tid), "other")
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def measure(counter, seconds: float, num_envs: int):
    """``(env-steps/s, 3D frames/s, drawing % of wall time, env-steps per CPU second of this
    process)`` over the next ``seconds``."""
    t0, steps0, frames0, draw0, cpu_s0, wait0, own0 = counter.snapshot()
    cpu0 = thread_cpu()
    time.sleep(seconds)
    t1, steps1, frames1, draw1, cpu_s1, wait1, own1 = counter.snapshot()
    cpu1 = thread_cpu()
    dt = t1 - t0
    if os.environ.get("STUDIO_BENCH_THREADS"):
        print("  cpu %/thread:", {k: round(100 * (v - cpu0.get(k, 0.0)) / dt) for k, v in cpu1.items()
                                  if v - cpu0.get(k, 0.0) > 0.01 * dt}, flush=True)
    steps = (steps1 - steps0) * num_envs
    counter.waits.append(100.0 * (wait1 - wait0) / dt)
    counter.own.append(100.0 * (own1 - own0) / dt)
    return steps / dt, (frames1 - frames0) / dt, 100.0 * (draw1 - draw0) / dt, steps / max(cpu_s1 - cpu_s0, 1e-9)


def bench_size(browser, n: int, args, tmp: str):
    from dofbot_rl.panel import PanelState
    from dofbot_rl.studio.app import Studio
    from dofbot_rl.studio.serve import make_model, start_server

    model = make_model(["sim_device=cpu", f"num_envs={n}", f"train_dir={tmp}/runs{n}"])
    model.set_render_mode("ui_only")
    model.set_max_iterations(100_000)
    server, gate = start_server("127.0.0.1", 0)
    studio = Studio(model, server, fps=args.fps)
    assert model.press("load") and model.press("train"), model.status.text
    loop = threading.Thread(target=studio.run, name="studio-loop", daemon=True)
    loop.start()
    counter = Counter(studio, server)
    time.sleep(args.warmup_s)
    closed, opened, load_times, fps, draw = [], [], [], [], []
    closed_frames, closed_cpu, opened_cpu = [], [], []

    def closed_window():
        rate, frames_per_s, _, per_cpu = measure(counter, args.window_s, n)
        closed.append(rate)
        closed_frames.append(frames_per_s)
        closed_cpu.append(per_cpu)

    try:
        closed_window()
        for _ in range(args.pairs):
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            start = time.monotonic()
            page.goto(gate.url())
            page.get_by_role("button", name="Load", exact=True).wait_for(timeout=120_000)
            load_times.append(time.monotonic() - start)
            frames = studio.frames_drawn
            while studio.frames_drawn == frames:
                time.sleep(0.05)
            time.sleep(args.settle_s)
            rate, frames_per_s, draw_pct, per_cpu = measure(counter, args.window_s, n)
            opened.append(rate)
            opened_cpu.append(per_cpu)
            fps.append(frames_per_s)
            draw.append(draw_pct)
            page.close()
            time.sleep(args.settle_s)
            closed_window()
        assert model.state == PanelState.TRAINING, model.status.text
    finally:
        studio.stop()
        loop.join(60)
        gate.stop()
        server.stop()
    def slowdowns(closed, opened):
        return [100.0 * (1.0 - o / ((closed[i] + closed[i + 1]) / 2)) for i, o in enumerate(opened)]

    return {"n": n, "closed": closed, "opened": opened, "slowdowns": slowdowns(closed, opened), "load_s": load_times,
            "fps": fps, "draw_pct": draw, "cpu_slowdowns": slowdowns(closed_cpu, opened_cpu),
            "closed_frames": max(closed_frames), "waits": counter.waits,
            "own_open": counter.own[1::2], "own_closed": counter.own[0::2]}


def run_placement(placement: str, args) -> list:
    """All sizes in one placement, in a child process (pinning cannot be undone in-process)."""
    cmd = [sys.executable, __file__, "--child", placement, "--sizes", args.sizes, "--pairs", str(args.pairs),
           "--window-s", str(args.window_s), "--warmup-s", str(args.warmup_s), "--settle-s", str(args.settle_s),
           "--fps", str(args.fps)] + ([] if args.draw_budget is None else ["--draw-budget", str(args.draw_budget)])
    subprocess.run(cmd, check=True)


def child(placement: str, args) -> None:
    if args.draw_budget is not None:
        import dofbot_rl.studio.app

        dofbot_rl.studio.app.DRAW_BUDGET = args.draw_budget
    if placement == "split":
        os.sched_setaffinity(0, {0})  # before any thread starts: every thread of this process inherits it
        import torch

        torch.set_num_threads(1)
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with tempfile.TemporaryDirectory() as tmp:
        if placement == "split":
            wrapper = Path(tmp) / "chromium-on-cpu1"
            wrapper.write_text(f'#!/bin/sh\nexec taskset -c 1 {chromium} "$@"\n')
            wrapper.chmod(0o755)
            chromium = str(wrapper)
        with sync_playwright() as p:
            if placement == "split":
                for pid in _children(os.getpid()):  # Playwright's driver: the browser's side too
                    _pin_tree(pid, "1")
            browser = p.chromium.launch(executable_path=chromium,
                                        args=["--no-sandbox", "--enable-unsafe-swiftshader", "--use-angle=swiftshader"])
            for n in [int(v) for v in args.sizes.split(",")]:
                load_before = os.getloadavg()[0]
                r = bench_size(browser, n, args, tmp)
                load_after = os.getloadavg()[0]
                med = statistics.median(r["slowdowns"])
                cpu = r["cpu_slowdowns"]
                print(f"RESULT placement={placement} num_envs={n} "
                      f"page_load_s={statistics.median(r['load_s']):.2f} "
                      f"closed={'/'.join(f'{v:.0f}' for v in r['closed'])} "
                      f"open={'/'.join(f'{v:.0f}' for v in r['opened'])} "
                      f"slowdown_median_pct={med:.1f} slowdown_range_pct={min(r['slowdowns']):.1f}..{max(r['slowdowns']):.1f} "
                      f"view_updates_per_s={statistics.median(r['fps']):.1f} "
                      f"cpu_cost_median_pct={statistics.median(cpu):.1f} cpu_cost_range_pct={min(cpu):.1f}..{max(cpu):.1f} "
                      f"draw_pct={statistics.median(r['draw_pct']):.1f} closed_frames_per_s={r['closed_frames']:.1f} "
                      f"studio_cpu_pct_open={statistics.median(r['own_open']):.1f}"
                      f"({min(r['own_open']):.1f}..{max(r['own_open']):.1f}) "
                      f"studio_cpu_pct_closed={statistics.median(r['own_closed']):.1f} "
                      f"cpu_wait_pct_per_window={'/'.join(f'{v:.0f}' for v in r['waits'])} "
                      f"load_avg={load_before:.1f}->{load_after:.1f}",
                      flush=True)
            browser.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64,512")
    parser.add_argument("--placements", default="split,shared")
    parser.add_argument("--pairs", type=int, default=3, help="page-closed / page-open window pairs per size")
    parser.add_argument("--window-s", type=float, default=15.0, help="length of one window (s)")
    parser.add_argument("--warmup-s", type=float, default=8.0, help="training before the first window (s)")
    parser.add_argument("--settle-s", type=float, default=1.0, help="pause after opening / closing the page (s)")
    parser.add_argument("--fps", type=float, default=20.0)
    parser.add_argument("--draw-budget", type=float, default=None,
                        help="override the studio's DRAW_BUDGET (share of wall time; 1: no budget, only --fps)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args)
        return 0
    for placement in args.placements.split(","):
        run_placement(placement, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
