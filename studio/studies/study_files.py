"""A study's result files: study.csv and study.json (one row per cell), study.png (each metric against model
calls, one line per sampler or DDIM eta). Written atomically."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from ..core.atomic import atomic_path

PANEL = (640, 360)        # one metric's plot, pixels
MARGIN = (78, 24, 170, 46)   # left, top, right (legend), bottom
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f",
           "#bcbd22")
LABELS = {"ode_error": "ODE error (RMS distance to the converged solution)", "swd": "sliced Wasserstein distance",
          "log_likelihood": "mean log-likelihood (nats; dashed: the truth's own)", "class_share": "share in the requested class",
          "frechet": "Fréchet distance"}


def write_study(out: Path, rows: list[dict], summary: dict) -> list[Path]:
    metrics = summary["metrics"]
    paths = [out / "study.csv", out / "study.json", out / "study.png"]
    with atomic_path(paths[0]) as tmp:
        tmp.write_text(study_csv(rows, metrics))
    with atomic_path(paths[1]) as tmp:
        tmp.write_text(json.dumps({**summary, "cells": rows}, indent=1, allow_nan=False) + "\n")
    with atomic_path(paths[2]) as tmp:
        study_plot(rows, metrics, summary.get("floors", {})).save(tmp, format="PNG")
    return paths


def study_csv(rows: list[dict], metrics) -> str:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["key", "sampler", "steps", "eta", "model_calls", "seconds", "num_samples"]
                    + [part for name in metrics for part in (name, f"{name}_se")])
    for row in rows:
        values = []
        for name in metrics:
            value = row["metrics"].get(name) or {}
            values += [_number(value.get("value")), _number(value.get("standard_error"))]
        writer.writerow([row["key"], row["sampler"], row["steps"], "" if row["eta"] is None else row["eta"],
                         row["model_calls"], row["seconds"], row["num_samples"]] + values)
    return text.getvalue()


def _number(value) -> str:
    return "" if value is None else f"{value:.6g}"


def study_plot(rows: list[dict], metrics, floors: dict) -> Image.Image:
    """Each metric against model calls (log axis), one line per series; log values where they span a decade."""
    width, height = PANEL
    image = Image.new("RGB", (width, height * max(1, len(metrics))), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    series = list(dict.fromkeys(row["series"] for row in rows))
    for panel, name in enumerate(metrics):
        points = {s: sorted((row["model_calls"], row["metrics"][name]["value"]) for row in rows
                            if row["series"] == s and (row["metrics"].get(name) or {}).get("value") is not None)
                  for s in series}
        _panel(draw, font, panel * height, name, {s: p for s, p in points.items() if p}, series,
               (floors.get(name) or {}).get("value"))
    return image


def _panel(draw, font, top: int, name: str, points: dict, series: list, floor) -> None:
    width, height = PANEL
    left, pad_top, right, bottom = MARGIN
    box = (left, top + pad_top, width - right, top + height - bottom)
    draw.rectangle(box, outline="#444444")
    draw.text((left, top + 6), LABELS.get(name, name), fill="black", font=font)
    draw.text(((box[0] + box[2]) // 2 - 30, box[3] + 22), "model calls", fill="black", font=font)
    values = [v for p in points.values() for _, v in p] + ([floor] if floor is not None else [])
    calls = [c for p in points.values() for c, _ in p]
    if not values:
        draw.text((box[0] + 10, box[1] + 10), "no values", fill="black", font=font)
        return
    log_y = min(values) > 0 and max(values) / min(values) >= 10
    x_of = _axis(math.log10(min(calls)), math.log10(max(calls)), box[0] + 8, box[2] - 8)
    low, high = (math.log10(min(values)), math.log10(max(values))) if log_y else (min(values), max(values))
    y_of = _axis(low, high, box[3] - 8, box[1] + 8)

    def y_pixel(value):
        return y_of(math.log10(value) if log_y else value)

    last_label = -1e9
    for tick in sorted(set(calls)):
        x = x_of(math.log10(tick))
        draw.line((x, box[3], x, box[3] + 4), fill="#444444")
        if x - last_label >= 24:   # labels that would overlap are left out (the tick stays)
            draw.text((x - 6, box[3] + 6), str(tick), fill="black", font=font)
            last_label = x
    for value in _ticks(low, high, log_y):
        y = y_pixel(value)
        draw.line((box[0] - 4, y, box[0], y), fill="#444444")
        draw.text((4, y - 6), f"{value:.3g}", fill="black", font=font)
    if floor is not None:
        y = y_pixel(floor)
        for x in range(box[0], box[2], 8):
            draw.line((x, y, min(x + 4, box[2]), y), fill="#888888")
        draw.text((box[2] + 6, y - 6), "truth" if name == "log_likelihood" else "noise floor", fill="#666666",
                  font=font)
    for number, name_ in enumerate(series):
        colour = COLOURS[number % len(COLOURS)]
        line = [(x_of(math.log10(c)), y_pixel(v)) for c, v in points.get(name_, [])]
        if len(line) > 1:
            draw.line(line, fill=colour, width=2)
        for x, y in line:
            draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour)
        legend_y = box[1] + 4 + 14 * number
        draw.line((box[2] + 6, legend_y + 6, box[2] + 22, legend_y + 6), fill=colour, width=2)
        draw.text((box[2] + 26, legend_y), name_, fill="black", font=font)


def _axis(low: float, high: float, start: float, stop: float):
    span = high - low or 1.0
    centre = low if high > low else low - 0.5
    return lambda value: start + (value - centre) / span * (stop - start)


def _ticks(low: float, high: float, log_scale: bool) -> list[float]:
    if log_scale:
        ticks = [m * 10.0 ** power for power in range(math.floor(low), math.ceil(high) + 1) for m in (1, 2, 5)
                 if low - 1e-9 <= math.log10(m * 10.0 ** power) <= high + 1e-9]
        return ticks or [10.0 ** low]
    if high == low:
        return [low]
    return [low + (high - low) * k / 4 for k in range(5)]
