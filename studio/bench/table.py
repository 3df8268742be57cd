"""The bench's result: rows of (section, what, value, goal), printed as a table and written as JSON."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

SECTION_TITLES = {
    1: "engine vs a bare loop of the same model calls",
    2: "engine vs diffusers' pipelines",
    3: "window with live previews vs headless",
    4: "memory",
    5: "export",
    6: "start-up",
    7: "GPU",
    8: "whole studio sample processes vs whole diffusers pipeline processes",
}


@dataclass(frozen=True)
class Row:
    """One measurement. ``goal`` is a bound on ``value`` (``at_most`` says which side); None: no goal."""

    section: int
    name: str
    value: float | None
    unit: str = ""
    goal: float | None = None
    at_most: bool = True
    detail: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def met(self) -> bool | None:
        if self.goal is None or self.value is None or math.isnan(self.value):
            return None
        return self.value <= self.goal if self.at_most else self.value >= self.goal

    def to_dict(self) -> dict:
        data = asdict(self)
        data["met"] = self.met
        if self.value is not None and math.isnan(self.value):
            data["value"] = None
        return data


def skipped(section: int, name: str, why: str) -> Row:
    return Row(section, name, None, detail=f"skipped: {why}")


def _number(value: float | None, unit: str) -> str:
    if value is None or math.isnan(value):
        return "-"
    if unit == "x":
        return f"{value:.3f}"
    if unit == "µs":
        return f"{value:.0f} µs"
    if unit in ("ms", "s"):
        return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"
    if unit == "MiB":
        return f"{value:.1f} MiB"
    return f"{value:g} {unit}".strip()


def _goal(row: Row) -> str:
    if row.goal is None:
        return ""
    return f"{'<=' if row.at_most else '>='} {_number(row.goal, row.unit)}"


def format_table(rows: list[Row]) -> str:
    """A plain-text table, one block per section; also valid Markdown table rows for the README."""
    lines = ["| # | measure | value | goal | met | detail |", "|---|---|---|---|---|---|"]
    for row in rows:
        met = {True: "yes", False: "NO", None: ""}[row.met]
        detail = " ".join(row.detail.split()).replace("|", "\\|")   # one line, no stray column breaks
        lines.append(f"| {row.section} | {row.name} | {_number(row.value, row.unit)} | {_goal(row)} | {met} | "
                     f"{detail} |")
    return "\n".join(lines)


def write_json(path, rows: list[Row], machine: dict, command: str, seconds: float) -> None:
    document = {
        "command": command,
        "machine": machine,
        "seconds": round(seconds, 1),
        "sections": {str(k): v for k, v in SECTION_TITLES.items()},
        "rows": [row.to_dict() for row in rows],
    }
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2)
        handle.write("\n")
