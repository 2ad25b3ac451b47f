"""Bar charts for the dashboard, laid out in Python and drawn by the template as inline SVG.

The pages load nothing from elsewhere (the network is closed) and the Content-Security-Policy
forbids inline script and style, so a chart is geometry: rectangles with presentation
attributes (``fill``), a ``<title>`` per bar for the exact figure, and labelled axes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

WIDTH = 720
HEIGHT = 220
_LEFT, _RIGHT, _TOP, _BOTTOM = 44, 8, 10, 28

ROUTE_COLOURS = {"auto_link": "#1a7f37", "review": "#d4a72c", "refused": "#cf222e"}
FAILURE_COLOURS = {"rejected": "#cf222e", "failed": "#8250df"}


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    y_ticks: list[Tick]
    x_labels: list[Tick]
    legend: list[tuple[str, str]]
    baseline: float
    left: float
    is_empty: bool


def _nice_top(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value`` (1 for nothing)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value)


def _y_ticks(top: float, as_percent: bool) -> list[Tick]:
    plot = HEIGHT - _TOP - _BOTTOM
    ticks = []
    for index in range(5):
        value = top * index / 4
        label = f"{value * 100:.0f}%" if as_percent else (f"{value:g}" if value % 1 else f"{value:.0f}")
        ticks.append(Tick(HEIGHT - _BOTTOM - plot * index / 4, label))
    return ticks


def stacked_bars(
    days: Sequence[date], series: Mapping[str, Sequence[int]], colours: Mapping[str, str]
) -> Chart:
    """One bar per day, stacked by series (in ``colours`` order), with a date label every week."""
    totals = [sum(series.get(name, [0] * len(days))[index] for name in colours) for index in range(len(days))]
    top = _nice_top(max(totals, default=0))
    plot_height = HEIGHT - _TOP - _BOTTOM
    slot = (WIDTH - _LEFT - _RIGHT) / max(1, len(days))
    bars = []
    for index, day in enumerate(days):
        floor = float(HEIGHT - _BOTTOM)
        for name, colour in colours.items():
            count = series.get(name, [0] * len(days))[index]
            if not count:
                continue
            height = plot_height * count / top
            floor -= height
            label = name.replace("_", " ")
            bars.append(
                Bar(
                    _LEFT + index * slot + 1,
                    floor,
                    max(1.0, slot - 2),
                    height,
                    colour,
                    f"{day}: {count} {label}",
                )
            )
    x_labels = [
        Tick(_LEFT + index * slot + slot / 2, day.strftime("%d %b"))
        for index, day in enumerate(days)
        if (len(days) - 1 - index) % 7 == 0
    ]
    return Chart(
        WIDTH,
        HEIGHT,
        bars,
        _y_ticks(top, as_percent=False),
        x_labels,
        [(name.replace("_", " "), colour) for name, colour in colours.items()],
        HEIGHT - _BOTTOM,
        _LEFT,
        is_empty=not any(totals),
    )


def bars(values: Sequence[tuple[str, float | None]], colour: str, as_percent: bool = False) -> Chart:
    """One labelled bar per value; ``None`` (not measured) draws no bar but keeps its label."""
    top = 1.0 if as_percent else _nice_top(max((value or 0 for _, value in values), default=0))
    plot_height = HEIGHT - _TOP - _BOTTOM
    slot = (WIDTH - _LEFT - _RIGHT) / max(1, len(values))
    drawn = []
    for index, (label, value) in enumerate(values):
        if value is None:
            continue
        height = plot_height * value / top
        shown = f"{value * 100:.1f}%" if as_percent else f"{value:g}"
        drawn.append(
            Bar(
                _LEFT + index * slot + slot * 0.15,
                HEIGHT - _BOTTOM - height,
                slot * 0.7,
                height,
                colour,
                f"{label}: {shown}",
            )
        )
    return Chart(
        WIDTH,
        HEIGHT,
        drawn,
        _y_ticks(top, as_percent),
        [Tick(_LEFT + index * slot + slot / 2, label) for index, (label, _) in enumerate(values)],
        [],
        HEIGHT - _BOTTOM,
        _LEFT,
        is_empty=not drawn,
    )
