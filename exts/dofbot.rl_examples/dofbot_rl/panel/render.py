"""Render modes of the panel: how much simulation runs per app update.

The reference panel offered "Full render", "UI only" and "None". Here they set how
many control steps the sim loop runs per Kit update and how long it may wait for the
rl_games worker in that update; the viewport is frozen outside ``full``.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class RenderMode:
    """One render mode.

    Attributes:
        name: settings value (``full``, ``ui_only``, ``none``).
        label: dropdown text.
        max_steps: control steps per app update at most.
        budget_s: time (s) the sim loop may spend per app update waiting for and running steps.
        viewport: whether the viewport keeps rendering.
    """

    name: str
    label: str
    max_steps: int
    budget_s: float
    viewport: bool


#: The modes, in dropdown order.
RENDER_MODES = {
    "full": RenderMode("full", "Full render", max_steps=1, budget_s=1.0 / 60.0, viewport=True),
    "ui_only": RenderMode("ui_only", "UI only", max_steps=1_000_000, budget_s=0.05, viewport=False),
    "none": RenderMode("none", "None", max_steps=1_000_000, budget_s=0.25, viewport=False),
}


def render_mode(name: str) -> RenderMode:
    """The mode called ``name``.

    Raises:
        ValueError: for an unknown name (lists the known ones).
    """
    if name not in RENDER_MODES:
        raise ValueError(f"unknown render mode {name!r}: expected one of {', '.join(RENDER_MODES)}")
    return RENDER_MODES[name]
