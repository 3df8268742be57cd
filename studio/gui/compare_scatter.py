"""The Compare view's exported picture for vector models: every run's x_t points at one position, one colour per
run, on axes that stay the same over every position (an animation does not rescale from frame to frame).

PIL only (no Qt): the same picture headless. The first two coordinates are drawn (a 1-D model's on a line), as the
view's scatter plot shows them; a run whose frames were dropped shows its final samples.
"""

from __future__ import annotations

import numpy as np

PLOT_PIXELS = 420   # the square plot's side
DOT_RADIUS = 2


def _xy(points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64).reshape(len(points), -1)
    ys = points[:, 1] if points.shape[1] > 1 else np.zeros(len(points))
    return np.stack([points[:, 0], ys], axis=1)


def scatter_bounds(runs) -> tuple[float, float, float, float]:
    """(x_min, x_max, y_min, y_max) over every kept step's points of every run (their x_T and final samples too),
    padded by 5%: the axes of every exported position."""
    found = []
    for run in runs:
        store = run.store
        if store is not None and store.vector_dim is not None:
            found.append(_xy(store.initial_values))
            found += [_xy(store.frame(i).x_t_values) for i in range(store.steps_done)]
        if run.final is not None:
            found.append(_xy(run.final))
    xy = np.concatenate(found) if found else np.zeros((1, 2))
    xy = xy[np.isfinite(xy).all(axis=1)]
    if not len(xy):
        xy = np.zeros((1, 2))
    low, high = xy.min(axis=0), xy.max(axis=0)
    pad = np.maximum((high - low) * 0.05, 1e-6)
    return float(low[0] - pad[0]), float(high[0] + pad[0]), float(low[1] - pad[1]), float(high[1] + pad[1])


def scatter_picture(states, colours, header: str, bounds) -> np.ndarray:
    """(H, W, 3) uint8: ``header``, the plot with each state's points (``RunState.x_t_points``) in its colour,
    then one line per run: its colour, name, settings and the step shown."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    line, gap = 14, 8
    labels = [f"{state.describe()} · {state.run.settings_line}" for state in states]   # describe() names the run
    text_width = max([int(font.getlength(text)) + 2 * line for text in labels] + [int(font.getlength(header))])
    width = 2 * gap + max(PLOT_PIXELS, text_width)
    height = gap + line + gap + PLOT_PIXELS + gap + line * len(labels) + gap
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    draw.text((gap, gap), header, fill=(0, 0, 0), font=font)
    top, left = gap + line + gap, gap
    draw.rectangle((left, top, left + PLOT_PIXELS - 1, top + PLOT_PIXELS - 1), outline=(150, 150, 150))
    x_min, x_max, y_min, y_max = bounds
    for state, colour in zip(states, colours):
        points = state.x_t_points()
        if points is None or not len(points):
            continue
        xy = _xy(points)
        xy = xy[np.isfinite(xy).all(axis=1)]
        px = left + (xy[:, 0] - x_min) / (x_max - x_min) * (PLOT_PIXELS - 1)
        py = top + (y_max - xy[:, 1]) / (y_max - y_min) * (PLOT_PIXELS - 1)
        for x, y in zip(px, py):
            if left <= x < left + PLOT_PIXELS and top <= y < top + PLOT_PIXELS:
                draw.ellipse((x - DOT_RADIUS, y - DOT_RADIUS, x + DOT_RADIUS, y + DOT_RADIUS), fill=colour)
    y = top + PLOT_PIXELS + gap
    for text, colour in zip(labels, colours):
        draw.rectangle((gap, y + 3, gap + line - 4, y + line - 1), fill=colour)
        draw.text((gap + line, y), text, fill=(0, 0, 0), font=font)
        y += line
    return np.asarray(canvas)
