"""The figures drawn in docs/img come from a real run (issue 18 item 8: panel.svg showed 3.41 goals per
episode at epoch 95, which no run produces; real runs show ~43-48 there)."""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def panel_figures(svg_text):
    """The Progress box of docs/img/panel.svg: epoch, max epochs, mean reward, goals/episode, success %,
    env-steps/s and env-steps, as numbers."""
    text = re.sub(r"<[^>]+>", "\n", svg_text)
    m = re.search(r"Epoch: (\d+) / (\d+)\s+Mean reward: ([-0-9.]+)\s+Goals / episode: ([0-9.]+)\s+Success rate: "
                  r"([0-9.]+) %\s+Env-steps / s: ([0-9,]+)\s+Env-steps: ([0-9,]+)", text)
    assert m, "no Progress figures in panel.svg"
    epoch, max_epochs, reward, goals, success, rate, steps = m.groups()
    return (int(epoch), int(max_epochs), float(reward), float(goals), float(success), int(rate.replace(",", "")),
            int(steps.replace(",", "")))


def test_panel_svg_shows_a_row_of_the_shipped_runs_progress():
    epoch, max_epochs, reward, goals, success, rate, steps = panel_figures((ROOT / "docs/img/panel.svg").read_text())
    rows = [json.loads(line) for line in (ROOT / "data/checkpoints/DofbotReacher.progress.jsonl").read_text().splitlines()
            if line.strip()]
    row = next((r for r in rows if r["epoch"] == epoch), None)
    assert row is not None and row["max_epochs"] == max_epochs, (epoch, max_epochs)
    assert abs(row["mean_reward"] - reward) < 0.05 and abs(row["goals_per_episode"] - goals) < 0.005
    assert abs(100 * row["success_rate"] - success) < 0.05
    assert abs(row["env_steps_per_s"] - rate) < 1 and row["frame"] == steps
