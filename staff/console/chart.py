"""The Today page's chart: the week's messages per day by what they got, as accessible SVG.

Drawn on the server (no script, nothing from another site); the same figures are in the
table beside it, and the SVG has a title and a description for screen readers.
"""

from __future__ import annotations

from dataclasses import dataclass

from staff.service.numbers import CATEGORIES, Week

# Colours with at least 3:1 contrast against white (WCAG 1.4.11), told apart by pattern too.
COLOURS = {
    "answered": "#2e7d32",
    "did_you_mean": "#8a5a00",
    "not_understood": "#6a1b9a",
    "unknown": "#c62828",
}
WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 16, 40


@dataclass(frozen=True)
class Bar:
    """One coloured block of a day's stack."""

    x: float
    y: float
    width: float
    height: float
    colour: str
    label: str


@dataclass(frozen=True)
class Chart:
    """What the template draws."""

    width: int
    height: int
    bars: list[Bar]
    ticks: list[tuple[float, int]]  # (y, value)
    days: list[tuple[float, str]]  # (x centre, label)
    legend: list[tuple[str, str]]  # (colour, label)
    description: str
    baseline: float
    left: int
    right: int


def nice_top(value: int) -> int:
    """The y axis's top: a round number at least `value` (and at least 4)."""
    for step in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000):
        if value <= step * 4:
            return step * 4
    return value


def week_chart(week: Week) -> Chart:
    """Stacked bars: per day, how many messages were answered, got "did you mean", not understood, unknown."""
    top = nice_top(max((sum(day.categories.values()) for day in week.days), default=0))
    plot_height = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / len(week.days)
    bars, days, parts = [], [], []
    for index, day in enumerate(week.days):
        x = LEFT + index * slot + slot * 0.2
        y = float(HEIGHT - BOTTOM)
        for key, label in CATEGORIES.items():
            count = day.categories.get(key, 0)
            if count:
                height = plot_height * count / top
                y -= height
                bars.append(
                    Bar(x, y, slot * 0.6, height, COLOURS[key], f"{day.day:%a %d %b}: {count} {label}")
                )
        days.append((LEFT + index * slot + slot / 2, f"{day.day:%a %d}"))
        total = sum(day.categories.values())
        parts.append(f"{day.day:%A %d %B}: {total} message{'s' if total != 1 else ''}")
    ticks = [(HEIGHT - BOTTOM - plot_height * i / 4, top * i // 4) for i in range(5)]
    description = "Visitor messages per day. " + "; ".join(parts) + ". The table below has each kind."
    return Chart(
        WIDTH,
        HEIGHT,
        bars,
        ticks,
        days,
        [(COLOURS[k], label) for k, label in CATEGORIES.items()],
        description,
        float(HEIGHT - BOTTOM),
        LEFT,
        WIDTH - RIGHT,
    )
