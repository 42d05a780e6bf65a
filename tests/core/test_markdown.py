"""Metadata tables show numbers as stored: check samples must not round a price below 0.00005 to 0."""

import pytest

from marketdata_assets.core.markdown import Markdown, number, table


@pytest.mark.parametrize(
    "value, shown",
    [
        (0.001455, "0.001455"),
        (4e-05, "0.00004"),
        (0.00004321, "0.00004321"),
        (1234567.5, "1,234,567.5"),
        (100.0, "100"),
        (-2.0, "-2"),
        (0.1 + 0.2, "0.30000000000000004"),
        (-3e-09, "-0.000000003"),
        (float("inf"), "inf"),
    ],
)
def test_numbers_at_full_precision(value, shown):
    assert number(value) == shown
    assert float(shown.replace(",", "")) == value


def test_table_cells():
    text = table(
        ["instrument", "close", "ratio", "rows"], [("LSE:X", 0.001455, 100.0, 12345), ("a|b", None, 1.5, 0)]
    )
    assert isinstance(text, Markdown)  # rendered as Markdown where it becomes check or asset metadata
    assert "| LSE:X | 0.001455 | 100 | 12,345 |" in text
    assert "| a\\|b |  | 1.5 | 0 |" in text
