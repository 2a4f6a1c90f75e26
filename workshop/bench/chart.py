"""The benchmark's chart: a grid of bar panels drawn with matplotlib (Agg backend), written as PNG.

* One panel per metric (:class:`Panel`), two per row, each with a bar per contender in the contender's color
  (the same color in every panel and on its label), the value printed above every bar, ``n/a`` where a value
  is missing, and optional dashed reference lines named in a legend (the benchmark's floor).
* Every panel's axis starts at 0 and leaves head room above the tallest bar or line for its value; a panel whose
  values are all 0 still gets an axis (0 to 1).
* matplotlib is an optional dependency (``pip install 'ecs-state[bench]'``): it is imported inside
  :func:`write_chart` only, so the benchmark without a chart (``--no-chart``) and everything else run without it.
  The figure is a standalone :class:`matplotlib.figure.Figure` (no pyplot state), closed with the function.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes

PALETTE = ("#2e7d32", "#c62828", "#ef6c00", "#1565c0", "#6a1b9a")
COLUMNS = 2
PANEL_W_IN, PANEL_H_IN, TITLE_H_IN, FOOTER_LINE_H_IN = 6.2, 4.0, 0.9, 0.28
DPI = 100


@dataclass
class Panel:
    """One metric: a value per contender (None = not measured), and optional reference lines (label, value)."""

    title: str
    values: list[float | None]
    fmt: str = "{:.2f}"
    references: list[tuple[str, float]] = field(default_factory=list)


def write_chart(
    path: str | Path, title: str, labels: list[str], panels: list[Panel], footer: list[str] | None = None
) -> Path:
    """A grid of bar panels sharing the contender ``labels`` (one color each), written to ``path`` as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    footer = footer or []
    rows = max(1, (len(panels) + COLUMNS - 1) // COLUMNS)
    bottom_in = 0.25 + FOOTER_LINE_H_IN * len(footer) + 0.5  # footer lines + the contender labels' room
    height = TITLE_H_IN + rows * PANEL_H_IN + bottom_in
    fig = Figure(figsize=(COLUMNS * PANEL_W_IN, height), dpi=DPI)
    fig.suptitle(title, x=0.02, y=1 - 0.2 / height, ha="left", va="top", fontsize=15, fontweight="bold")
    grid = fig.add_gridspec(
        rows,
        COLUMNS,
        left=0.07,
        right=0.98,
        top=1 - TITLE_H_IN / height,
        bottom=bottom_in / height,
        hspace=0.55,
        wspace=0.22,
    )
    for index in range(rows * COLUMNS):
        ax = fig.add_subplot(grid[index // COLUMNS, index % COLUMNS])
        if index < len(panels):
            _draw_panel(ax, panels[index], labels)
            if all(float(v).is_integer() for v in panels[index].values if v is not None):
                ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no fractional ticks
        else:
            ax.set_axis_off()
    for k, line in enumerate(footer):
        fig.text(
            0.02,
            (0.2 + FOOTER_LINE_H_IN * (len(footer) - 1 - k)) / height,
            line,
            ha="left",
            va="bottom",
            fontsize=10,
            family="monospace",
        )
    target = Path(path)
    fig.savefig(target, format="png", dpi=DPI, facecolor="white")
    fig.clear()
    return target


def _draw_panel(ax: Axes, panel: Panel, labels: list[str]) -> None:
    positions = list(range(len(labels)))
    colors = [PALETTE[i % len(PALETTE)] for i in positions]
    values = list(panel.values[: len(labels)])
    values += [None] * (len(labels) - len(values))
    measured = [v for v in values if v is not None] + [v for _, v in panel.references]
    top = max(measured, default=0.0)
    ymax = top * 1.18 if top > 0 else 1.0
    heights = [v if v is not None else 0.0 for v in values]
    ax.bar(positions, heights, width=0.6, color=colors, zorder=2)
    for x, value in zip(positions, values):
        text = "n/a" if value is None else panel.fmt.format(value)
        ax.text(
            x,
            (value or 0.0) + ymax * 0.015,
            text,
            ha="center",
            va="bottom",
            fontsize=11,
            color="grey" if value is None else "black",
            zorder=3,
        )
    for label, value in panel.references:
        ax.axhline(
            value, color="black", linestyle="--", linewidth=1.5, zorder=3, label=f"{label} {panel.fmt.format(value)}"
        )
    if panel.references:
        ax.legend(loc="best", fontsize=10, frameon=False)
    ax.set_title(panel.title, fontsize=12, fontweight="bold")
    ax.set_ylim(0, ymax)
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.set_xticks(positions)
    ax.set_xticklabels(labels, fontsize=10)
    for tick, color in zip(ax.get_xticklabels(), colors):
        tick.set_color(color)
        tick.set_fontweight("bold")
    ax.grid(axis="y", color="#e1e1e1", zorder=0)
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(axis="x", length=0)
