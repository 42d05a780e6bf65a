"""Small SVG charts for materialization metadata.

Dagster renders Markdown metadata, and Markdown images may be data URIs, so a chart travels
inside the event itself: no file server, nothing to clean up. SVG keeps it tiny (a year of monthly
candles for four codes is a few KB) and needs no plotting library.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from html import escape

UP = "#d62728"  # A-share convention: red rises
DOWN = "#2ca02c"  # green falls
AXIS = "#888888"


PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 56, 10, 24, 26


def _panel(title: str, width: int, height: int) -> tuple[list[str], float, float]:
    """The opening of a chart (background, title) and the plot area's width and height."""
    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">'
        ),
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{PAD_LEFT}" y="15" font-size="13" font-weight="bold">{escape(title)}</text>',
    ]
    return parts, width - PAD_LEFT - PAD_RIGHT, height - PAD_TOP - PAD_BOTTOM


def _empty(parts: list[str], height: int, message: str) -> str:
    parts.append(f'<text x="{PAD_LEFT}" y="{height // 2}" fill="{AXIS}">{message}</text></svg>')
    return "".join(parts)


def _x_label(x: float, height: int, text: str, anchor: str = "middle") -> str:
    """A label under the plot at `x` (centred; `start`/`end`: the axis's first/last, kept inside the
    chart)."""
    return f'<text x="{x:.1f}" y="{height - 8}" text-anchor="{anchor}" fill="{AXIS}">{escape(text)}</text>'


def _value_label(value: float) -> str:
    """A value axis label that fits the left margin: 95,123 rather than 9.512e+04."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


@dataclass(frozen=True)
class Candle:
    period: date
    open: float
    high: float
    low: float
    close: float


def candlestick_svg(title: str, candles: Sequence[Candle], width: int = 560, height: int = 220) -> str:
    """One panel of candles, oldest left; price axis labels at min/max."""
    parts, plot_w, plot_h = _panel(title, width, height)
    if not candles:
        return _empty(parts, height, "no bars")
    pad_left, pad_top = PAD_LEFT, PAD_TOP
    low = min(c.low for c in candles)
    high = max(c.high for c in candles)
    span = (high - low) or abs(high) or 1.0

    def y(price: float) -> float:
        return pad_top + (high - price) / span * plot_h

    slot = plot_w / len(candles)
    body_w = max(1.0, slot * 0.6)
    parts.append(
        f'<line x1="{pad_left}" y1="{pad_top}" x2="{pad_left}" y2="{pad_top + plot_h}" stroke="{AXIS}"/>'
    )
    for price in (high, low):
        parts.append(
            f'<text x="{pad_left - 4}" y="{y(price) + 4:.1f}" text-anchor="end" '
            f'fill="{AXIS}">{price:.2f}</text>'
        )
    label_every = max(1, len(candles) // 6)
    for i, c in enumerate(candles):
        cx = pad_left + slot * (i + 0.5)
        color = UP if c.close >= c.open else DOWN
        top, bottom = y(max(c.open, c.close)), y(min(c.open, c.close))
        parts.append(
            f'<line x1="{cx:.1f}" y1="{y(c.high):.1f}" x2="{cx:.1f}" y2="{y(c.low):.1f}" stroke="{color}"/>'
        )
        parts.append(
            f'<rect x="{cx - body_w / 2:.1f}" y="{top:.1f}" width="{body_w:.1f}" '
            f'height="{max(1.0, bottom - top):.1f}" fill="{color}"/>'
        )
        if i % label_every == 0:
            parts.append(_x_label(cx, height, f"{c.period:%Y-%m}"))
    parts.append("</svg>")
    return "".join(parts)


BAR = "#1f77b4"


def bar_chart_svg(
    title: str, bars: Sequence[tuple[str, float]], width: int = 560, height: int = 220, color: str = BAR
) -> str:
    """Vertical bars (label, value >= 0), left to right; the largest value labelled on the axis."""
    parts, plot_w, plot_h = _panel(title, width, height)
    if not bars:
        return _empty(parts, height, "nothing yet")
    pad_left, pad_top = PAD_LEFT, PAD_TOP
    top = max(value for _, value in bars) or 1.0
    slot = plot_w / len(bars)
    bar_w = max(1.0, slot * 0.8)
    parts.append(
        f'<line x1="{pad_left}" y1="{pad_top + plot_h}" x2="{pad_left + plot_w}" y2="{pad_top + plot_h}" '
        f'stroke="{AXIS}"/>'
    )
    parts.append(
        f'<text x="{pad_left - 4}" y="{pad_top + 4}" text-anchor="end" fill="{AXIS}">{top:,.0f}</text>'
    )
    parts.append(
        f'<text x="{pad_left - 4}" y="{pad_top + plot_h + 4}" text-anchor="end" fill="{AXIS}">0</text>'
    )
    label_every = max(1, len(bars) // 8)
    for i, (label, value) in enumerate(bars):
        h = max(0.0, value) / top * plot_h
        x = pad_left + slot * i + (slot - bar_w) / 2
        parts.append(
            f'<rect x="{x:.1f}" y="{pad_top + plot_h - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
            f'fill="{color}"><title>{escape(label)}: {value:,.0f}</title></rect>'
        )
        if i % label_every == 0:
            parts.append(_x_label(x + bar_w / 2, height, label))
    parts.append("</svg>")
    return "".join(parts)


def svg_markdown_image(svg: str, alt: str) -> str:
    """Markdown for an inline SVG image (a base64 data URI)."""
    encoded = base64.b64encode(svg.encode()).decode()
    return f"![{escape(alt)}](data:image/svg+xml;base64,{encoded})"


def _shade(value: float | None) -> str:
    """Red (0) through amber to green (1); grey where nothing is expected (a closed day)."""
    if value is None:
        return "#eeeeee"
    v = min(1.0, max(0.0, value))
    if v >= 0.999:
        return "#2ca02c"
    red, green = (214, 39, 40), (255, 191, 0)  # 0 -> red, just under 1 -> amber
    return "#" + "".join(f"{round(a + (b - a) * v):02x}" for a, b in zip(red, green))


def heatmap_svg(
    title: str,
    rows: Sequence[str],
    columns: Sequence[str],
    values: Sequence[Sequence[float | None]],
    cell: int = 12,
    label_width: int = 150,
) -> str:
    """A completeness grid: one row per label, one column per period, each cell shaded by its value
    in [0, 1] (green complete, amber to red less, grey None: nothing expected), with a tooltip."""
    width = label_width + cell * max(1, len(columns)) + PAD_RIGHT
    height = PAD_TOP + cell * max(1, len(rows)) + 40
    parts, _, _ = _panel(title, width, height)
    if not rows or not columns:
        return _empty(parts, height, "nothing yet")
    for r, (label, line) in enumerate(zip(rows, values)):
        y = PAD_TOP + r * cell
        parts.append(
            f'<text x="{label_width - 4}" y="{y + cell - 2}" text-anchor="end">{escape(label)}</text>'
        )
        for c, (column, value) in enumerate(zip(columns, line)):
            shown = "not expected" if value is None else f"{value:.1%}"
            parts.append(
                f'<rect x="{label_width + c * cell}" y="{y}" width="{cell - 1}" height="{cell - 1}" '
                f'fill="{_shade(value)}"><title>{escape(label)} {escape(column)}: {shown}</title></rect>'
            )
    label_every = max(1, len(columns) // 6)
    for c in range(0, len(columns), label_every):
        parts.append(
            f'<text x="{label_width + c * cell}" y="{PAD_TOP + len(rows) * cell + 12}" fill="{AXIS}">'
            f"{escape(columns[c])}</text>"
        )
    parts.append(
        f'<text x="{label_width}" y="{height - 6}" fill="{AXIS}">green: complete, amber to red: less, '
        "grey: not expected (closed)</text></svg>"
    )
    return "".join(parts)


LINE_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def line_chart_svg(
    title: str,
    series: dict[str, Sequence[tuple[datetime | float, float]]],
    width: int = 560,
    height: int = 220,
    unit: str = "",
    x_unit: str = "",
) -> str:
    """One line per named series (x, value) on a shared x axis (times, or numbers such as strikes);
    the value axis labelled at its min and max (and a dashed zero line when the values cross it); a
    legend of the first eight."""
    parts, plot_w, plot_h = _panel(title, width, height)
    points = [(x, v) for values in series.values() for x, v in values if v is not None]
    if not points:
        return _empty(parts, height, "no values yet")
    times = isinstance(points[0][0], datetime)

    def num(x) -> float:
        return x.timestamp() if times else float(x)

    x0, x1 = min(num(x) for x, _ in points), max(num(x) for x, _ in points)
    low, high = min(v for _, v in points), max(v for _, v in points)
    span_x = (x1 - x0) or 1.0
    span_v = (high - low) or abs(high) or 1.0

    def xy(x, v: float) -> tuple[float, float]:
        return PAD_LEFT + (num(x) - x0) / span_x * plot_w, PAD_TOP + (high - v) / span_v * plot_h

    first_x = min((x for x, _ in points), key=num)
    last_x = max((x for x, _ in points), key=num)
    parts.append(
        f'<line x1="{PAD_LEFT}" y1="{PAD_TOP}" x2="{PAD_LEFT}" y2="{PAD_TOP + plot_h}" stroke="{AXIS}"/>'
    )
    for value in (high, low):
        parts.append(
            f'<text x="{PAD_LEFT - 4}" y="{xy(first_x, value)[1] + 4:.1f}" text-anchor="end" '
            f'fill="{AXIS}">{_value_label(value)}{escape(unit)}</text>'
        )
    if low < 0 < high:
        y0 = xy(first_x, 0.0)[1]
        parts.append(
            f'<line x1="{PAD_LEFT}" y1="{y0:.1f}" x2="{PAD_LEFT + plot_w}" y2="{y0:.1f}" '
            f'stroke="{AXIS}" stroke-dasharray="3,3"/>'
        )
    for x, anchor in ((first_x, "start"), (last_x, "end")):
        text = f"{x:%Y-%m-%d %H:%M}" if times else f"{x:,.6g}{x_unit}"
        parts.append(_x_label(xy(x, low)[0], height, text, anchor))
    for i, (name, values) in enumerate(series.items()):
        color = LINE_COLORS[i % len(LINE_COLORS)]
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in (xy(x, v) for x, v in values if v is not None))
        if path:
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.2">'
                f"<title>{escape(name)}</title></polyline>"
            )
        if i < len(LINE_COLORS):
            parts.append(
                f'<text x="{PAD_LEFT + 6 + (i % 4) * (plot_w / 4):.1f}" '
                f'y="{PAD_TOP + 10 + (i // 4) * 12}" fill="{color}">{escape(name)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)
