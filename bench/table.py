"""The one results table: measured value, same-run baseline, ratio, target, verdict."""

from __future__ import annotations

from dataclasses import dataclass

HEADER = ("figure", "measured", "baseline (same run)", "ratio", "target", "load before",
          "result")
# Above this 1-minute load average the figures are printed but judged by no one: the
# service degrades faster than its baselines under CPU contention, so a verdict would lie.
LOAD_LIMIT = 1.0


@dataclass(frozen=True)
class Row:
    figure: str
    measured: str
    baseline: str
    ratio: str
    target: str
    passed: bool
    load: float | None = None  # 1-minute load average before the row was measured
    info: bool = False  # a figure to close in on (the pgbench limit), not a target

    @property
    def judged(self) -> bool:
        return self.load is None or self.load <= LOAD_LIMIT

    @property
    def verdict(self) -> str:
        if self.info:
            return "—"
        if not self.judged:
            return f"no verdict (load {self.load:.1f} > {LOAD_LIMIT:g})"
        return "PASS" if self.passed else "**FAIL**"

    def cells(self) -> tuple[str, ...]:
        load = "—" if self.load is None else f"{self.load:.1f}"
        return (self.figure, self.measured, self.baseline, self.ratio, self.target, load,
                self.verdict)


def num(value: float) -> str:
    """Thousands separators for big figures, three significant digits for small ones."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def ratio(value: float) -> str:
    return f"{value:.2f}x"


def render(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines) + "\n"
