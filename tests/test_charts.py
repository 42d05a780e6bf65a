import base64
import re
from datetime import date
from xml.etree import ElementTree

from marketdata_assets.lib.charts import (
    BAR,
    DOWN,
    UP,
    Candle,
    bar_chart_svg,
    candlestick_svg,
    svg_markdown_image,
)

CANDLES = [Candle(date(2024, 1, 1), 10.0, 12.0, 9.5, 11.0),   # up
           Candle(date(2024, 2, 1), 11.0, 11.5, 8.0, 8.5),    # down
           Candle(date(2024, 3, 1), -1.0, 0.5, -2.0, 0.2)]    # negative qfq prices still draw


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
    payload = re.fullmatch(r"!\[monthly K-line\]\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", md).group(1)
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
