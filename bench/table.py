"""The one results table: measured value, same-run baseline, ratio, target, verdict."""

from __future__ import annotations

from dataclasses import dataclass

HEADER = ("figure", "measured", "baseline (same run)", "ratio", "target", "result")


@dataclass(frozen=True)
class Row:
    figure: str
    measured: str
    baseline: str
    ratio: str
    target: str
    passed: bool

    def cells(self) -> tuple[str, ...]:
        return (self.figure, self.measured, self.baseline, self.ratio, self.target,
                "PASS" if self.passed else "**FAIL**")


def num(value: float) -> str:
    """Thousands separators for big figures, three significant digits for small ones."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def ratio(value: float) -> str:
    return f"{value:.2f}x"


def render(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines) + "\n"
