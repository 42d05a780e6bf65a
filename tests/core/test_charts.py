import base64
import re
from datetime import date
from xml.etree import ElementTree

from marketdata_assets.core.charts import (
    BAR,
    DOWN,
    UP,
    Candle,
    bar_chart_svg,
    candlestick_svg,
    svg_markdown_image,
)

CANDLES = [
    Candle(date(2024, 1, 1), 10.0, 12.0, 9.5, 11.0),  # up
    Candle(date(2024, 2, 1), 11.0, 11.5, 8.0, 8.5),  # down
    Candle(date(2024, 3, 1), -1.0, 0.5, -2.0, 0.2),
]  # negative qfq prices still draw


def test_candles_are_valid_svg_with_one_body_and_wick_each():
    svg = candlestick_svg("600000.SH <monthly>", CANDLES)
    root = ElementTree.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    bodies = root.findall(f"{ns}rect")[1:]  # first rect is the background
    assert [b.get("fill") for b in bodies] == [UP, DOWN, UP]
    wicks = [line for line in root.findall(f"{ns}line") if line.get("stroke") in (UP, DOWN)]
    assert len(wicks) == 3
    texts = [t.text for t in root.findall(f"{ns}text")]
    assert "600000.SH <monthly>" in texts and "12.00" in texts and "-2.00" in texts
    # the highest high is at the top of the plot, the lowest low at the bottom
    ys = [(float(w.get("y1")), float(w.get("y2"))) for w in wicks]
    assert min(y1 for y1, _ in ys) == ys[0][0] and max(y2 for _, y2 in ys) == ys[2][1]


def test_empty_series_says_so():
    assert "no bars" in candlestick_svg("x", [])


def test_markdown_image_round_trips():
    svg = candlestick_svg("x", CANDLES)
    md = svg_markdown_image(svg, "monthly K-line")
    payload = re.fullmatch(r"!\[monthly K-line\]\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", md).group(
        1
    )
    assert base64.b64decode(payload).decode() == svg


def test_bars_scale_to_the_largest_value():
    svg = bar_chart_svg("alphas per day <July>", [("07-01", 10), ("07-02", 40), ("07-03", 0)])
    root = ElementTree.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    bars = [r for r in root.findall(f"{ns}rect") if r.get("fill") == BAR]
    heights = [float(b.get("height")) for b in bars]
    assert heights[1] == 220 - 24 - 26 and heights[0] == heights[1] / 4 and heights[2] == 0
    assert [b.find(f"{ns}title").text for b in bars] == ["07-01: 10", "07-02: 40", "07-03: 0"]
    assert "alphas per day <July>" in [t.text for t in root.findall(f"{ns}text")]
    assert "nothing yet" in bar_chart_svg("x", [])


def test_lines_share_one_time_axis_and_mark_zero_when_values_cross_it():
    from datetime import datetime, timedelta

    from marketdata_assets.core.charts import LINE_COLORS, line_chart_svg

    start = datetime(2025, 1, 15)
    funding = {
        "OKX:BTC-USDT-SWAP <swap>": [
            (start + timedelta(hours=8 * i), r) for i, r in enumerate((0.0001, -0.0002, 0.0003))
        ],
        "DERIBIT:BTC-PERPETUAL": [(start + timedelta(hours=h), 0.00005) for h in range(24)],
        "BINANCE_UM:BTCUSDT": [],
    }
    root = ElementTree.fromstring(line_chart_svg("funding", funding))
    ns = "{http://www.w3.org/2000/svg}"
    lines = root.findall(f"{ns}polyline")
    assert [line.get("stroke") for line in lines] == list(LINE_COLORS[:2])  # an empty series draws nothing
    points = [[tuple(map(float, p.split(","))) for p in line.get("points").split()] for line in lines]
    assert [len(p) for p in points] == [3, 24]
    # one time axis: the 16:00 point of the first series sits left of the last hour of the second
    assert points[0][-1][0] < points[1][-1][0] and points[0][0][0] == points[1][0][0]
    # the lowest value is drawn lowest (largest y), the highest highest
    assert max(points[0], key=lambda p: p[1])[1] > min(points[0], key=lambda p: p[1])[1]
    texts = [t.text for t in root.findall(f"{ns}text")]
    assert "0.0003" in texts and "-0.0002" in texts and "OKX:BTC-USDT-SWAP <swap>" in texts
    assert any(line.get("stroke-dasharray") for line in root.findall(f"{ns}line"))  # the zero line
    positive = ElementTree.fromstring(
        line_chart_svg("oi", {"a": [(start, 1.0), (start + timedelta(hours=1), 2.0)]})
    )
    assert not any(line.get("stroke-dasharray") for line in positive.findall(f"{ns}line"))
    assert "no values yet" in line_chart_svg("empty", {"a": []})


def test_lines_over_numbers_label_the_axis_with_the_numbers():
    from marketdata_assets.core.charts import line_chart_svg

    smile = {"2025-03-28": [(80_000.0, 62.0), (100_000.0, 50.5), (120_000.0, 58.0)]}
    root = ElementTree.fromstring(line_chart_svg("smile", smile, unit="%"))
    ns = "{http://www.w3.org/2000/svg}"
    texts = [t.text for t in root.findall(f"{ns}text")]
    assert "80,000" in texts and "120,000" in texts and "62%" in texts and "50.5%" in texts
    (line,) = root.findall(f"{ns}polyline")
    xs = [float(p.split(",")[0]) for p in line.get("points").split()]
    assert xs == sorted(xs) and xs[1] - xs[0] == xs[2] - xs[1]  # strikes evenly apart, evenly drawn


def test_a_line_charts_labels_stay_inside_it():
    """The axis's first and last times anchored inward (a centred last label ran off the right edge), large
    values written out (95,123, not 9.512e+04, which ran off the left)."""
    from datetime import datetime

    from marketdata_assets.core.charts import line_chart_svg

    svg = line_chart_svg(
        "BTCUSDT", {"vwap": [(datetime(2025, 1, 15), 95123.4), (datetime(2025, 1, 15, 23, 59), 96001.0)]}
    )
    texts = {t.text: t.attrib for t in ElementTree.fromstring(svg).iter("{http://www.w3.org/2000/svg}text")}
    assert (
        texts["2025-01-15 00:00"]["text-anchor"] == "start"
        and texts["2025-01-15 23:59"]["text-anchor"] == "end"
    )
    assert "95,123" in texts and "96,001" in texts and not any("e+" in (text or "") for text in texts)
