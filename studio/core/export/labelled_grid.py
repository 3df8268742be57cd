"""A picture of a grid of cells with labelled axes: an X/Y grid's ``grid.png``.

    picture = labelled_grid(cells, x_title="sampler", x_labels=["ddim", "ddpm"], y_title="steps", y_labels=["10", "20"])

``cells[row][column]`` is each cell's picture, (H, W, 3) uint8 (pictures of different sizes are centred in the
largest). Column labels go above, row labels to the left, each axis's name in its corner. Pure PIL and numpy.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (255, 255, 255)
TEXT = (20, 20, 20)
GAP = 6           # pixels between cells
LINE_HEIGHT = 14  # PIL's default font is about 11 pixels tall
MIN_CELL = 64     # a cell picture smaller than this is blown up (whole pixels) to at least this size


def labelled_grid(cells: list[list[np.ndarray]], x_title: str, x_labels: list[str], y_title: str,
                  y_labels: list[str], boxes: list | None = None) -> np.ndarray:
    """``boxes``: a list that gets each cell's place in the picture, (x, y, width, height), row by row (the
    window's grid dialog maps a click to its cell with them)."""
    rows, columns = len(cells), len(cells[0]) if cells else 0
    if rows != len(y_labels) or columns != len(x_labels) or any(len(row) != columns for row in cells):
        raise ValueError("the cells must form a grid of one row per y label and one column per x label")
    font = ImageFont.load_default()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_width = lambda text: int(measure.textlength(text, font=font))   # noqa: E731
    # small pictures (8x8 digits) blown up with sharp squares, to at least MIN_CELL pixels and their labels' width
    smallest = min(min(cell.shape[0], cell.shape[1]) for row in cells for cell in row)
    widest_label = max(text_width(label) for label in x_labels) + 4
    factor = max(1, -(-max(MIN_CELL, widest_label) // max(1, smallest)))
    if factor > 1:
        cells = [[np.repeat(np.repeat(cell, factor, axis=0), factor, axis=1) for cell in row] for row in cells]
    height = max(cell.shape[0] for row in cells for cell in row)
    width = max(cell.shape[1] for row in cells for cell in row)
    x_heading, y_heading = f"{x_title} ->", f"{y_title} (rows)"
    left = GAP + max([text_width(label) for label in y_labels] + [text_width(y_heading)]) + GAP
    top = GAP + 2 * LINE_HEIGHT + GAP   # the x axis's name, then the column labels
    canvas = Image.new("RGB", (left + columns * (width + GAP), top + rows * (height + GAP)), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    draw.text((left, GAP), x_heading, fill=TEXT, font=font)
    draw.text((GAP, GAP + LINE_HEIGHT), y_heading, fill=TEXT, font=font)
    for column, label in enumerate(x_labels):
        x = left + column * (width + GAP) + max(0, (width - text_width(label)) // 2)
        draw.text((x, GAP + LINE_HEIGHT), label, fill=TEXT, font=font)
    for row, label in enumerate(y_labels):
        y = top + row * (height + GAP) + max(0, (height - LINE_HEIGHT) // 2)
        draw.text((GAP, y), label, fill=TEXT, font=font)
    picture = np.asarray(canvas).copy()
    for row in range(rows):
        for column in range(columns):
            cell = cells[row][column]
            y = top + row * (height + GAP) + (height - cell.shape[0]) // 2
            x = left + column * (width + GAP) + (width - cell.shape[1]) // 2
            picture[y:y + cell.shape[0], x:x + cell.shape[1]] = cell
            if boxes is not None:
                boxes.append((x, y, cell.shape[1], cell.shape[0]))
    return picture


def scatter_picture(points: np.ndarray, value_range: tuple[float, float], size: int = 160) -> np.ndarray:
    """2-D samples (N, 2) as dots on a square of ``size`` pixels spanning ``value_range`` on both axes (other
    dimensions: the first two), (size, size, 3) uint8."""
    low, high = float(value_range[0]), float(value_range[1])
    canvas = Image.new("RGB", (size, size), (250, 250, 250))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((0, 0, size - 1, size - 1), outline=(180, 180, 180))
    span = (high - low) or 1.0
    xy = np.asarray(points, dtype=np.float64).reshape(len(points), -1)
    if xy.shape[1] == 1:
        xy = np.concatenate([xy, np.full_like(xy, (low + high) / 2)], axis=1)
    for x, y in xy[:, :2]:
        if np.isfinite(x) and np.isfinite(y):
            px, py = (x - low) / span * (size - 1), (high - y) / span * (size - 1)
            draw.ellipse((px - 1.5, py - 1.5, px + 1.5, py + 1.5), fill=(31, 119, 180))
    return np.asarray(canvas).copy()
