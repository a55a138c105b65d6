"""Charts drawn on the server as SVG: stacked bars with a line for the usual level.

No chart library and no script: a chart is laid out here (in a viewBox, scaled by CSS) and
written by a template. Every bar carries its numbers as data- attributes and says them in its
<title>, and the chart's <title> and <desc> say what it shows, so it reads without sight too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

WIDTH = 720
HEIGHT = 280
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 12, 30  # margins around the plot, in viewBox units
BAR_SHARE = 0.72  # of each bar's band, the rest a gap
MAX_X_LABELS = 12  # more bars than this: only every n-th is labelled


@dataclass(frozen=True)
class Series:
    """One part of each bar (an outcome): its key in the bar's values, words and CSS class."""

    key: str
    zh: str
    en: str
    css: str


@dataclass(frozen=True)
class Bar:
    """One bar's input: its axis label, its words, its value per series, and the usual level."""

    label: str
    title: str
    values: Mapping[str, int]
    usual: float | None = None
    data: Mapping[str, str | int] | None = None  # more data- attributes, shown as they are


@dataclass(frozen=True)
class Rect:
    css: str
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class DrawnBar:
    label: str | None  # None: not labelled on the axis (too many bars)
    label_x: float
    title: str
    rects: list[Rect]
    data: dict[str, str]


@dataclass(frozen=True)
class Tick:
    value: int
    y: float


@dataclass(frozen=True)
class Chart:
    """A chart laid out in viewBox units, ready for the template to write."""

    id: str
    title: str
    description: str
    width: int
    height: int
    plot_left: float
    plot_right: float
    plot_top: float
    plot_bottom: float
    bars: list[DrawnBar]
    ticks: list[Tick]
    usual_lines: list[str]  # polyline points, one per run of bars that have a usual level


def nice_ceiling(value: float) -> int:
    """The axis' top: the smallest of 1, 2, 2.5, 5 times a power of ten at or above `value`."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        top = step * power
        if top >= value:
            return max(1, math.ceil(top))
    raise AssertionError("unreachable: 10 * power is always at or above value")


def attribute_name(key: str) -> str:
    """A key as a data- attribute's name: staff_let_through -> data-staff-let-through."""
    return "data-" + key.replace("_", "-")


def stacked_bars(
    chart_id: str, title: str, description: str, series: Sequence[Series], bars: Sequence[Bar]
) -> Chart:
    """Bars stacked by `series` (bottom first), with the usual level drawn as a line."""
    plot_left, plot_right = LEFT, WIDTH - RIGHT
    plot_top, plot_bottom = TOP, HEIGHT - BOTTOM
    highest = max(
        [sum(bar.values[part.key] for part in series) for bar in bars]
        + [bar.usual for bar in bars if bar.usual is not None],
        default=0,
    )
    top = nice_ceiling(highest)
    scale = (plot_bottom - plot_top) / top
    band = (plot_right - plot_left) / max(len(bars), 1)
    every = math.ceil(len(bars) / MAX_X_LABELS)
    drawn, lines, run = [], [], []
    for index, bar in enumerate(bars):
        x = plot_left + index * band + band * (1 - BAR_SHARE) / 2
        centre = plot_left + (index + 0.5) * band
        rects, base = [], plot_bottom
        for part in series:
            height = bar.values[part.key] * scale
            if height > 0:
                rects.append(Rect(part.css, x, base - height, band * BAR_SHARE, height))
            base -= height
        data = {attribute_name(part.key): str(bar.values[part.key]) for part in series}
        data["data-total"] = str(sum(bar.values[part.key] for part in series))
        data["data-usual"] = "" if bar.usual is None else f"{bar.usual:g}"
        data |= {attribute_name(key): str(value) for key, value in (bar.data or {}).items()}
        label = bar.label if index % every == 0 else None
        drawn.append(DrawnBar(label, centre, bar.title, rects, data))
        if bar.usual is None:
            lines += [" ".join(run)] if run else []
            run = []
        else:
            run.append(f"{centre:.1f},{plot_bottom - bar.usual * scale:.1f}")
    lines += [" ".join(run)] if run else []
    ticks = [Tick(value, plot_bottom - value * scale) for value in _tick_values(top)]
    return Chart(
        chart_id,
        title,
        description,
        WIDTH,
        HEIGHT,
        plot_left,
        plot_right,
        plot_top,
        plot_bottom,
        drawn,
        ticks,
        lines,
    )


def _tick_values(top: int) -> list[int]:
    """0, the middle (when whole) and the top of the axis."""
    middle = [top // 2] if top % 2 == 0 and top > 1 else []
    return [0, *middle, top]
