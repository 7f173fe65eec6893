"""Export rules without a database: CSV cells that a spreadsheet would run as formulas."""

from __future__ import annotations

import pytest

from app.services.exports.job import csv_cell


@pytest.mark.parametrize("value", ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"])
def test_formula_cells_get_a_leading_quote(value: str) -> None:
    assert csv_cell(value) == "'" + value


def test_ordinary_cells_and_numbers_are_left_alone() -> None:
    assert csv_cell("dataset:orders") == "dataset:orders" and csv_cell(-1) == -1
