"""Small parts of the panel: figures, learning curve, render modes, settings store."""

import math
import subprocess
import sys

import pytest

from dofbot_rl.panel import RENDER_MODES, DictStore, PanelSettings
from dofbot_rl.panel.figures import LearningCurve, LiveFigures, ProgressInbox
from dofbot_rl.panel.render import render_mode
from dofbot_rl.rl.trainer import Progress


def test_learning_curve_keeps_at_most_max_points():
    curve = LearningCurve(max_points=8)
    for i in range(100):
        curve.add(i * 10, float(i))
    curve.add(2000, float("nan"))
    assert 4 <= len(curve.points) <= 8
    assert curve.points[-1] == (990, 99.0)
    lo, hi = curve.value_range
    assert lo < min(curve.values) and hi > max(curve.values)
    curve.clear()
    assert curve.value_range == (0.0, 1.0)
    with pytest.raises(ValueError):
        LearningCurve(max_points=2)


def test_live_figures_from_progress_and_the_inbox():
    inbox = ProgressInbox()
    inbox.put(Progress(epoch=3, max_epochs=12, frame=12288, elapsed_s=2.0, env_steps_per_s=50000.0, mean_reward=1.5,
                       goals_per_episode=2.0, success_rate=0.25))
    (progress,) = inbox.drain()
    assert inbox.drain() == []
    figures = LiveFigures()
    figures.update_from_progress(progress)
    assert figures.progress_fraction == 0.25
    rows = dict(figures.lines())
    assert rows["Epoch"] == "3 / 12" and rows["Success rate"] == "25.0 %" and rows["Env-steps / s"] == "50,000"
    assert dict(LiveFigures().lines())["Goals / episode"] == "-"
    assert LiveFigures().progress_fraction == 0.0


def test_render_modes():
    assert list(RENDER_MODES) == ["full", "ui_only", "none"]
    full = render_mode("full")
    assert full.max_steps == 1 and full.viewport
    assert not render_mode("none").viewport and render_mode("none").budget_s > render_mode("ui_only").budget_s
    with pytest.raises(ValueError, match="unknown render mode"):
        render_mode("fast")


def test_settings_round_trip_and_int_from_float():
    store = DictStore()
    PanelSettings(num_envs=64, checkpoint="/x.pth").save(store)
    assert PanelSettings.load(store) == PanelSettings(num_envs=64, checkpoint="/x.pth")
    store.set("num_envs", 128.0)  # carb may hand numbers back as floats
    assert PanelSettings.load(store).num_envs == 128
    store.set("num_envs", True)
    loaded = PanelSettings.load(store)
    assert loaded.num_envs == 0 and loaded.problems


def test_learning_curve_never_switches_the_host_process_backend(tmp_path):
    """Kit runs matplotlib with its own backend; plotting from the worker thread must not change it (no pyplot)."""
    code = f"""
import json, sys, threading, matplotlib
matplotlib.use("svg")
from dofbot_rl.plotting import plot_learning_curve
rows = [dict(epoch=i, frame=1000 * i, elapsed_s=i, mean_reward=i, goals_per_episode=1.0, success_rate=0.5) for i in (1, 2)]
open({str(tmp_path / 'p.jsonl')!r}, "w").write("\\n".join(json.dumps(r) for r in rows))
out = []
t = threading.Thread(target=lambda: out.append(plot_learning_curve({str(tmp_path / 'p.jsonl')!r}, {str(tmp_path / 'c.png')!r}, "t")))
t.start(); t.join()
assert out[0] is not None, out
print(matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["svg", "False"]
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
