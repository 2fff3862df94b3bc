"""Studio figures: page load time, 3D update rate while training, training slowdown with the page open.

    python benchmarks/studio_bench.py                 # 64 and 512 robots, 3 epochs each way
    python benchmarks/studio_bench.py --sizes 64 --epochs 2

For each size, the same studio (in this process, on 127.0.0.1) trains PPO twice from a
freshly loaded scene: once with no browser connected, once with a headless Chromium
(Debian's, driven by Playwright) showing the page. It prints env-steps/s both ways, the
slowdown, the 3D updates per second the studio sent while the page was open, and the time
the page took to show its panel. Not a test: figures only (docs/studio.md).
"""

import argparse
import shutil
import sys
import tempfile
import time


def train_once(studio, model, epochs: int):
    """Load, train ``epochs`` epochs through the studio's loop; returns ``(env-steps/s the
    trainer reported last, 3D updates per second sent meanwhile, % of the time spent drawing)``."""
    model.set_max_iterations(epochs)
    assert model.press("load") and model.press("train"), model.status.text
    start_frames, start_draw, start = studio.frames_drawn, studio.draw_s, time.monotonic()
    while model.state.value != "loaded":
        studio.step()
    elapsed = time.monotonic() - start
    return (model.figures.env_steps_per_s, (studio.frames_drawn - start_frames) / elapsed,
            100.0 * (studio.draw_s - start_draw) / elapsed)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64,512")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--fps", type=float, default=20.0)
    args = parser.parse_args(argv)

    import viser
    from playwright.sync_api import sync_playwright

    from dofbot_rl.studio.app import Studio
    from dofbot_rl.studio.serve import make_model

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    rows = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium,
                                    args=["--no-sandbox", "--enable-unsafe-swiftshader", "--use-angle=swiftshader"])
        for n in [int(v) for v in args.sizes.split(",")]:
            model = make_model(["sim_device=cpu", f"num_envs={n}", f"train_dir={tmp}/runs{n}"])
            model.set_render_mode("ui_only")
            server = viser.ViserServer(host="127.0.0.1", port=0, verbose=False)
            studio = Studio(model, server, fps=args.fps)
            closed, _, _ = train_once(studio, model, args.epochs)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            start = time.monotonic()
            page.goto(f"http://127.0.0.1:{server.get_port()}/")
            page.get_by_role("button", name="Load", exact=True).wait_for(timeout=120_000)
            load_s = time.monotonic() - start
            opened, fps, draw_pct = train_once(studio, model, args.epochs)
            page.close()
            model.shutdown()
            server.stop()
            slowdown = 100.0 * (1.0 - opened / closed)
            rows.append((n, load_s, closed, opened, slowdown, fps, draw_pct))
            print(f"num_envs={n} page_load_s={load_s:.2f} env_steps_per_s_closed={closed:.0f} "
                  f"env_steps_per_s_open={opened:.0f} slowdown_pct={slowdown:.1f} view_updates_per_s={fps:.1f} "
                  f"draw_time_pct={draw_pct:.1f}",
                  flush=True)
        browser.close()
    print("| robots | page load (s) | env-steps/s, page closed | page open | slowdown | 3D updates/s | drawing (% of the loop) |")
    print("|---|---|---|---|---|---|---|")
    for n, load_s, closed, opened, slowdown, fps, draw_pct in rows:
        print(f"| {n} | {load_s:.1f} | {closed:,.0f} | {opened:,.0f} | {slowdown:.1f} % | {fps:.1f} | {draw_pct:.1f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
