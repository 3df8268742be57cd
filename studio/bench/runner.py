"""The command line of the bench: pick sections and sizes, run them, print the table, write the JSON."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import shlex
import sys
import tempfile
import time
import traceback
from pathlib import Path

from ..core.allocator import keep_freed_memory
from .machine import describe_machine, load_average
from .sizes import QUICK, Sizes
from .table import SECTION_TITLES, Row, format_table, write_json
from .workspace import Workspace

SECTION_MODULES = {1: "section_engine", 2: "section_diffusers", 3: "section_window", 4: "section_memory",
                   5: "section_export", 6: "section_startup", 7: "section_gpu", 8: "section_process"}
SECTION_RANGE = f"{min(SECTION_MODULES)}-{max(SECTION_MODULES)}"


def parse_sections(text: str) -> list[int]:
    try:
        chosen = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"sections are numbers {SECTION_RANGE} separated by commas, got {text!r}") \
            from None
    unknown = [s for s in chosen if s not in SECTION_MODULES]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"sections are numbers {SECTION_RANGE} separated by commas, got {text!r}")
    return chosen


def build_parser() -> argparse.ArgumentParser:
    sections = "; ".join(f"{k} {v}" for k, v in SECTION_TITLES.items())
    parser = argparse.ArgumentParser(prog="python -m studio.bench", description=(
        "Measure the studio against the network's own speed, side by side, and print a table of ratios with their "
        f"goals. Sections: {sections}."))
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round: seconds, for tests")
    parser.add_argument("--json", metavar="PATH", help="also write the table as JSON to PATH")
    parser.add_argument("--sections", type=parse_sections, default=sorted(SECTION_MODULES), metavar="1,2,...",
                        help="which sections to run (default: all)")
    parser.add_argument("--repeats", type=int, metavar="N", help="timed rounds per comparison (medians)")
    parser.add_argument("--no-compile", action="store_true",
                        help="leave the torch.compile'd network out of section 2 (its cold compile takes ~30 s "
                             "on 2 cores)")
    parser.add_argument("--process-ddpm-steps", type=int, metavar="N",
                        help="DDPM steps of section 8's whole processes (default 1000, both sides' default; fewer "
                             "to save time: both sides are then given N)")
    return parser


def run_section(number: int, ws: Workspace) -> list[Row]:
    module = importlib.import_module(f".{SECTION_MODULES[number]}", __package__)
    try:
        return module.rows(ws, number)
    except Exception as exc:  # noqa: BLE001 -- one failing section must not hide the others' results
        traceback.print_exc(file=sys.stderr)
        return [Row(number, f"section {number} failed", float("nan"), detail=f"{type(exc).__name__}: {exc}",
                    extra={"failed": True})]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    if args.repeats is not None:
        sizes = dataclasses.replace(sizes, repeats=max(1, args.repeats))
    if args.no_compile:
        sizes = dataclasses.replace(sizes, compile=False)
    if args.process_ddpm_steps is not None:
        sizes = dataclasses.replace(sizes, process_ddpm_steps=max(1, args.process_ddpm_steps))
    keep_freed_memory()   # sections 1 and 2 sample in this main thread, as `studio sample` does (same allocator)
    started = time.perf_counter()
    machine = describe_machine()
    command = "python -m studio.bench" + ("" if not argv else " " + shlex.join(argv))
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="studio-bench-") as folder:
        ws = Workspace(Path(folder), sizes)
        for number in args.sections:
            print(f"[{number}] {SECTION_TITLES[number]} …", file=sys.stderr, flush=True)
            section_started = time.perf_counter()
            section_rows = run_section(number, ws)
            rows.extend(section_rows)
            print(format_table(section_rows).split("\n", 2)[-1], file=sys.stderr)
            print(f"    ({time.perf_counter() - section_started:.0f} s)", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - started
    machine["load_average_1min_at_end"] = load_average()
    print(format_table(rows))
    print(f"\n{command} · {seconds:.0f} s · {machine['cpu']}, {machine['cores']} cores, torch {machine['torch']} "
          f"({machine['torch_threads']} threads) · load average {machine['load_average_1min_at_start']:.2f} at "
          f"start, {machine['load_average_1min_at_end']:.2f} at end")
    if args.json:
        write_json(args.json, rows, machine, command, seconds)
    failed = any(row.extra.get("failed") for row in rows)
    return 1 if failed else 0
