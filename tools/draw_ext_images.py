"""Draw the extension's icon and preview (exts/dofbot.rl_examples/data/*.png) from the robot facts.

    python tools/draw_ext_images.py
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from dofbot_rl import robot  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "exts" / "dofbot.rl_examples" / "data"
GREEN, GREY, RED = "#00a03c", "#97aaae", "#e0301e"


def arm_points(q):
    """Side view (-y, z) of base, joints and fingertip for joint angles q (rad): the arm bends in the y-z plane."""
    frames = robot.link_frames(q)
    pts = [(0.0, 0.0)] + [(-p[1], p[2]) for p, _ in frames]
    tip = robot.fingertip_position(q)
    return pts + [(-tip[1], tip[2])]


def draw(ax, q, goal, lw):
    pts = arm_points(q)
    ax.add_patch(plt.Rectangle((-0.05, -0.01), 0.10, 0.07, color=GREY))
    for i, (a, b) in enumerate(zip(pts[1:-1], pts[2:])):
        ax.plot([a[0], b[0]], [a[1], b[1]], color=GREEN if i % 2 == 0 else GREY, lw=lw, solid_capstyle="round")
    ax.plot(*zip(*pts[1:-1]), "o", color="white", ms=lw * 0.6, mec="#333333")
    ax.plot(*goal, "o", color=RED, ms=lw * 1.1)
    ax.plot([pts[-1][0], goal[0]], [pts[-1][1], goal[1]], ":", color=RED, lw=lw * 0.2)


def main():
    q = (0.0, 0.55, 0.5, 0.45, 0.0, 0.0)
    fig = plt.figure(figsize=(2.56, 2.56), dpi=100)
    ax = fig.add_axes([0, 0, 1, 1])
    draw(ax, q, (0.27, 0.12), lw=14)
    ax.set_xlim(-0.12, 0.32)
    ax.set_ylim(-0.05, 0.39)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.savefig(DATA / "icon.png", transparent=True)
    plt.close(fig)

    fig = plt.figure(figsize=(6.0, 3.4), dpi=100, facecolor="#1f2326")
    ax = fig.add_axes([0, 0, 1, 1], facecolor="#1f2326")
    for i, (dx, qq) in enumerate([(0.0, q), (0.45, (0.0, 0.2, 0.7, 0.6, 0, 0)), (0.9, (0.0, 0.7, 0.2, 0.3, 0, 0))]):
        pts_q = qq
        ax.plot([], [])
        sub = fig.add_axes([0.02 + 0.32 * i, 0.12, 0.3, 0.75])
        draw(sub, pts_q, (0.22, 0.10 + 0.05 * i), lw=8)
        sub.set_xlim(-0.12, 0.32)
        sub.set_ylim(-0.05, 0.39)
        sub.set_aspect("equal")
        sub.axis("off")
    ax.text(0.5, 0.06, "Dofbot RL Examples: train, stop and test PPO inside Isaac Sim", color="white", ha="center",
            fontsize=11, transform=ax.transAxes)
    ax.axis("off")
    fig.savefig(DATA / "preview.png", facecolor=fig.get_facecolor())
    plt.close(fig)


if __name__ == "__main__":
    main()
