"""Training figures for people: learning-curve plots (matplotlib's object API on an Agg canvas;
the process-wide backend is left alone) and the number format of the progress displays."""

import json
import math
from pathlib import Path
from typing import Optional


def plot_learning_curve(progress_jsonl, out_png, title: str = "") -> Optional[Path]:
    """Plot mean reward, goals per episode and success rate against env-steps.

    Draws on a :class:`matplotlib.figure.Figure` with its own ``FigureCanvasAgg``: no
    ``pyplot``, no ``matplotlib.use``, so it is safe from any thread and never switches
    the backend of a host process (Kit's).

    Args:
        progress_jsonl: ``progress.jsonl`` written by :class:`dofbot_rl.rl.trainer.Trainer`
            (one JSON object per epoch; a resumed run appends).
        out_png: the PNG to write.
        title: figure title (the experiment name).

    Returns:
        ``out_png`` as a Path, or None when the file holds no epochs.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = [json.loads(line) for line in Path(progress_jsonl).read_text().splitlines() if line.strip()]
    if not rows:
        return None
    frames = [r["frame"] / 1e6 for r in rows]
    fig = Figure(figsize=(13, 3.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    series = (("mean_reward", "mean episode reward (x0.01)"), ("goals_per_episode", "goals per 10 s episode"),
              ("success_rate", "success rate (tip within 5 cm)"))
    for ax, (key, label) in zip(axes, series):
        pts = [(f, r[key]) for f, r in zip(frames, rows) if r.get(key) is not None]
        if pts:
            ax.plot(*zip(*pts), color="#2a7f62")
        ax.set_xlabel("env-steps (millions)")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    axes[2].set_ylim(0, 1.02)
    minutes = rows[-1]["elapsed_s"] / 60
    fig.suptitle(f"{title}  -  {rows[-1]['epoch']} epochs, {frames[-1]:.1f}M env-steps, {minutes:.1f} min", fontsize=11)
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=100)
    return out_png


def format_value(value: float, spec: str) -> str:
    """``format(value, spec)``, or ``-`` for a figure not known yet (None or NaN): the CLI's
    progress bar and the panel's figures."""
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)
