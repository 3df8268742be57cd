"""`studio grid`: final samples over two settings, the same noise in every cell.

    studio grid --x sampler=ddim,ddpm --y steps=10,20,50 --checkpoint digits --class 3 --out grid

Each cell is a `studio sample` run of its own settings (the flags, with the cell's two values), its samples from
seeds S to S + N - 1 (N: --num-samples, default 1), so a cell equals the same settings run alone. Cells share
model calls (``studio.core.shared_calls``): each forward pass holds the rows of several cells, each at its own
timestep, and each cell's record says the rows and offset it was made in. Writes into --out:

- ``grid.png``: every cell's samples, the x values as column labels, the y values as row labels;
- ``cells/cell_RR_CC.png``: cell (row RR, column CC) with its recipe (one sample: its own recipe; several: the
  cell's batch and its recipe); ``studio sample --from-png`` makes it again, bit for bit;
- ``cells/cell_RR_CC.npy``: the cell's final samples (float32);
- ``grid.json``: the axes, every cell's values, file, model calls, seconds and run record.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

AXES = ("sampler", "steps", "eta", "spacing", "guidance", "class", "seed")
ATTRIBUTE = {"class": "class_label"}   # the flag's dest where it is not the axis's name
DEFAULT_OUT = "grid-out"
MAX_CELLS = 400   # more is surely a typo (20 x 20)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .sample import _add_device_arguments, _add_model_arguments, _add_sample_arguments, _add_sampler_arguments

    axes = parser.add_argument_group("the grid")
    axes.add_argument("--x", required=True, metavar="SETTING=A,B,...",
                      help=f"the columns: one setting ({', '.join(AXES)}) and its values")
    axes.add_argument("--y", required=True, metavar="SETTING=A,B,...", help="the rows, another setting")
    axes.add_argument("--rows", type=int, default=None, metavar="R",
                      help="rows per shared model call (default: the cells of the most common length side by side)")
    _add_model_arguments(parser.add_argument_group("model"))
    _add_sampler_arguments(parser.add_argument_group("sampler (the cells' other settings; unset: the model card's)"))
    _add_sample_arguments(parser.add_argument_group("samples (--num-samples: per cell, default 1)"))
    _add_device_arguments(parser.add_argument_group("device"))
    output = parser.add_argument_group("output")
    output.add_argument("--out", "-o", default=DEFAULT_OUT, metavar="DIR",
                        help=f"folder for grid.png, grid.json and cells/ (default ./{DEFAULT_OUT})")
    output.add_argument("--png-scale", dest="png_scale", type=int, default=1, metavar="K",
                        help="blow each pixel up to KxK in the PNGs (default 1)")
    output.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar on stderr")


def parse_axis(text: str, flag: str) -> tuple[str, list]:
    """``steps=10,20`` -> ("steps", [10, 20]), each value as its flag reads it."""
    from studio.core.errors import SettingsError

    from .arguments import class_argument

    name, sep, values = str(text).partition("=")
    name = name.strip()
    if not sep or name not in AXES:
        raise SettingsError(f"{flag} takes SETTING=A,B,... with SETTING one of {', '.join(AXES)}, got {text!r}")
    parts = [part.strip() for part in values.split(",") if part.strip()]
    if not parts:
        raise SettingsError(f"{flag} {name}= has no values")
    kind = {"steps": int, "seed": int, "eta": float, "guidance": float, "class": class_argument}.get(name, str)
    try:
        parsed = [kind(part) for part in parts]
    except (ValueError, argparse.ArgumentTypeError):
        raise SettingsError(f"{flag} {name}= takes {getattr(kind, '__name__', 'class')} values, got {values!r}") \
            from None
    if len(set(map(str, parsed))) != len(parsed):
        raise SettingsError(f"{flag} {name}= repeats a value: {values!r}")
    return name, parsed


class GridPlan:
    """The checked cells: their settings in row-major order, and what writing them needs."""

    def __init__(self, args, x_axis, x_values, y_axis, y_values, card, source, settings, classifier_source):
        self.args, self.card, self.source = args, card, source
        self.x_axis, self.x_values, self.y_axis, self.y_values = x_axis, x_values, y_axis, y_values
        self.settings = settings                     # [row][column] RunSettings
        self.classifier_source = classifier_source


def plan(args) -> GridPlan:
    """Every cell's settings, checked as `studio sample` checks its flags, before any model is loaded."""
    from studio.core.errors import SettingsError

    from . import sample
    from .distributed import ProcessLayout

    x_axis, x_values = parse_axis(args.x, "--x")
    y_axis, y_values = parse_axis(args.y, "--y")
    if x_axis == y_axis:
        raise SettingsError(f"--x and --y both vary {x_axis}: give two different settings")
    if len(x_values) * len(y_values) > MAX_CELLS:
        raise SettingsError(f"the grid would have {len(x_values) * len(y_values)} cells, more than {MAX_CELLS}")
    if args.rows is not None:
        from studio.core.checks import require_int
        require_int("--rows", args.rows, 1, 65_536)
    if args.num_samples is None:
        args.num_samples = 1
    layout = ProcessLayout()
    recipe, base = sample._read_recipe(args.from_png)
    source = sample._checkpoint_source(args, recipe)
    card = sample._checked_card(source, args, recipe, layout)
    grid, classifier_sources = [], set()
    for y_value in y_values:
        row = []
        for x_value in x_values:
            cell = copy.copy(args)
            for axis, value in ((x_axis, x_value), (y_axis, y_value)):
                setattr(cell, ATTRIBUTE.get(axis, axis), value)
            where = f"cell {x_axis}={_text(x_value)}, {y_axis}={_text(y_value)}"
            try:
                guidance, classifier_source = sample._guidance_and_classifier(cell, card, recipe, base)
                class_label = sample._class_label(cell, card, base, guidance)
                counts = sample._counts(cell, recipe, base)
                requested = cell.device or (base.device if base is not None else "auto")
                settings = sample._run_settings(cell, card, base, guidance, class_label, counts,
                                                layout.device(requested))
                sample._check_against_model(card, settings, counts.num_samples)
            except SettingsError as exc:
                raise SettingsError(f"{where}: {exc}") from None
            row.append(settings.replace(batch_size=counts.num_samples))
            if classifier_source is not None:
                classifier_sources.add(classifier_source)
        grid.append(row)
    if len(classifier_sources) > 1:
        raise SettingsError("the cells would use different guidance classifiers: give one with --classifier")
    return GridPlan(args, x_axis, x_values, y_axis, y_values, card, source, grid,
                    next(iter(classifier_sources), None))


def _text(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from studio.core.export import ensure_folder
    from studio.core.shared_calls import Cell, default_rows, run_cells

    from .sample import _open_models, cpu_threads

    grid = plan(args)
    model, classifier = _open_models(grid.source, grid.classifier_source, args.trust_code)
    cells = [Cell(settings, classifier=classifier) for row in grid.settings for settings in row]
    rows = args.rows or default_rows(cells)
    out = ensure_folder(args.out)
    (out / "cells").mkdir(exist_ok=True)
    total = sum(_calls(cell) for cell in cells)
    started = time.perf_counter()
    outcomes = {}
    with cpu_threads(args.threads), tqdm(total=total, desc=f"grid of {len(cells)} cells", unit="call",
                                          file=sys.stderr, disable=not args.progress, dynamic_ncols=True) as bar:
        def done(index, outcome):
            outcomes[index] = outcome
            _write_cell(grid, out, index, outcome)

        run_cells(model, cells, rows=rows, on_cell_done=done, on_pass=bar.update)
    seconds = time.perf_counter() - started
    files = _write_grid(grid, out, [outcomes[i] for i in range(len(cells))], rows, seconds)
    print(f"wrote {len(cells)} cells to {out}: {', '.join(files)}")
    return 0


def _calls(cell) -> int:
    from studio.core.shared_calls import cell_length

    return cell_length(cell)


def cell_name(row: int, column: int) -> str:
    return f"cell_{row:02d}_{column:02d}"


def _picture(grid: GridPlan, samples):
    return cell_picture(grid.card, samples)


def cell_picture(card, samples):
    """A cell's samples as one picture: an image model's tiles in a grid, a vector model's as dots (the window's
    X/Y grid dialog draws its cells with it too)."""
    import numpy as np

    from studio.core.export import image_pixels
    from studio.core.export.labelled_grid import scatter_picture
    from studio.core.preview import make_grid

    if card.data_kind == "image":
        pixels = image_pixels(samples, card.value_range)
        tiles = pixels if pixels.ndim == 4 else np.repeat(pixels[..., None], 3, axis=-1)
        return tiles[0] if len(tiles) == 1 else make_grid(tiles)
    return scatter_picture(np.asarray(samples).reshape(len(samples), -1), card.value_range)


def _write_cell(grid: GridPlan, out: Path, index: int, outcome) -> None:
    import numpy as np

    from studio.core.atomic import atomic_path
    from studio.core.recipe import recipe_extras, recipe_for_run, recipe_for_sample, write_png

    row, column = divmod(index, len(grid.x_values))
    name = cell_name(row, column)
    samples = outcome.x.detach().to("cpu").float().numpy()
    with atomic_path(out / "cells" / f"{name}.npy") as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, samples)
    if grid.card.data_kind != "image":
        return
    record = {**outcome.record, **recipe_extras(grid.card, grid.source, outcome.record["model_batch"])}
    if len(samples) == 1:
        recipe = recipe_for_sample(record, 0)
    else:   # the cell's batch, in the rows it was made in
        recipe = recipe_for_run(record)
        recipe["made_in"] = {"batch": 1, "position": 0, "offset": int(record.get("row_offset", 0))}
    write_png(out / "cells" / f"{name}.png", _picture(grid, samples), recipe, scale=grid.args.png_scale)


def _write_grid(grid: GridPlan, out: Path, outcomes, rows: int, seconds: float) -> list[str]:
    import numpy as np

    from studio.core.atomic import atomic_path
    from studio.core.export.labelled_grid import labelled_grid
    from studio.core.export import write_png_image

    columns = len(grid.x_values)
    pictures = [[_picture(grid, np.load(out / "cells" / f"{cell_name(r, c)}.npy")) for c in range(columns)]
                for r in range(len(grid.y_values))]
    picture = labelled_grid(pictures, grid.x_axis, [_text(v) for v in grid.x_values], grid.y_axis,
                            [_text(v) for v in grid.y_values])
    write_png_image(out / "grid.png", picture,
                    {"Description": f"Sampling Studio grid: {grid.x_axis} x {grid.y_axis}"}, scale=grid.args.png_scale)
    cells = []
    for index, outcome in enumerate(outcomes):
        row, column = divmod(index, columns)
        name = cell_name(row, column)
        cells.append({"row": row, "column": column, grid.x_axis: grid.x_values[column],
                      grid.y_axis: grid.y_values[row], "samples": f"cells/{name}.npy",
                      "png": f"cells/{name}.png" if grid.card.data_kind == "image" else None,
                      "model_calls": outcome.record.get("model_calls"), "seconds": round(outcome.seconds, 4),
                      "record": outcome.record})
    summary = {"x": {"setting": grid.x_axis, "values": grid.x_values},
               "y": {"setting": grid.y_axis, "values": grid.y_values},
               "checkpoint": grid.source, "model": grid.card.name, "rows_per_call": rows,
               "seconds": round(seconds, 3), "cells": cells}
    with atomic_path(out / "grid.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1, allow_nan=False) + "\n")
    return ["grid.png", "grid.json", "cells/"]
