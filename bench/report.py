"""The one table: each row a figure, its baseline, their ratio and the issue's target."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Row:
    section: str  # "1".."6"
    label: str
    figure: float | None
    unit: str
    baseline: float | None = None
    baseline_unit: str | None = None  # when it differs from unit
    ratio: float | None = None
    target: str = "-"
    # Whether the figure meets the target: None when there is no target or no figure.
    meets: bool | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def figure_text(self) -> str:
        return _quantity(self.figure, self.unit)

    @property
    def baseline_text(self) -> str:
        return _quantity(self.baseline, self.baseline_unit or self.unit)

    @property
    def ratio_text(self) -> str:
        return "-" if self.ratio is None else f"{self.ratio:.2f}x"

    @property
    def status(self) -> str:
        if self.figure is None:
            return "n/a"
        return {True: "ok", False: "MISS", None: ""}[self.meets]


def _quantity(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "$":
        return f"${value:.3f}"
    if unit in ("ms",):
        return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"
    if unit in ("WCU", "B", "rec/s", "KB-rss"):
        shown = f"{value:.0f}" if float(value).is_integer() or value >= 100 else f"{value:.1f}"
        return f"{shown} {unit.replace('KB-rss', 'KB')}"
    if unit == "MB":
        return f"{value:.1f} MB"
    if unit == "KB":
        return f"{value:.1f} KB"
    return f"{value:.2f} {unit}".strip()


def ratio(figure: float | None, baseline: float | None) -> float | None:
    if figure is None or baseline is None or baseline == 0:
        return None
    return figure / baseline


def at_most(limit: float) -> Callable[[float | None], bool | None]:
    return lambda value: None if value is None else value <= limit


def at_least(limit: float) -> Callable[[float | None], bool | None]:
    return lambda value: None if value is None else value >= limit


def render(rows: list[Row], title: str) -> str:
    headers = ("#", "measure", "figure", "baseline", "ratio", "target", "")
    table = [
        (row.section, row.label, row.figure_text, row.baseline_text, row.ratio_text, row.target, row.status)
        for row in rows
    ]
    widths = [max(len(str(line[i])) for line in [headers, *table]) for i in range(len(headers))]
    right = {2, 3, 4}

    def line(cells: tuple[str, ...]) -> str:
        parts = [
            str(cell).rjust(widths[i]) if i in right else str(cell).ljust(widths[i]) for i, cell in enumerate(cells)
        ]
        return "  ".join(parts).rstrip()

    rule = "-" * len(line(headers))
    out = [title, rule, line(headers), rule]
    previous = None
    for row, cells in zip(rows, table, strict=True):
        if previous is not None and row.section != previous:
            out.append("")
        out.append(line(cells))
        previous = row.section
    out.append(rule)
    return "\n".join(out)


def write_json(path: Path, rows: list[Row], notes: list[str], meta: dict[str, Any]) -> None:
    payload = {"meta": meta, "rows": [asdict(row) | {"status": row.status} for row in rows], "notes": notes}
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
