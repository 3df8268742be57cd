"""The shapes dataset: 32x32 RGB pictures of one coloured geometric shape on a textured background, made here.

Six classes, by shape: circle, square, triangle, star (five points), ring and cross (a plus sign). Each picture:

- background: a linear gradient between two dark, muted colours in a random direction, then one texture over it:
  none, sinusoidal stripes (random angle, period 3 to 8 px), a checkerboard (cell 2 to 6 px, random phase) or
  smooth blotches (4x4 noise upsampled bicubically); the texture's amplitude is 0.06 to 0.16 on the 0..1 scale;
- shape: a bright, saturated colour (HSV value 0.75 to 1, saturation 0.55 to 1, any hue), radius 7 to 12 px,
  random rotation, centred so that it stays inside the picture;
- edges are anti-aliased: each pixel's coverage is clip(0.5 - d, 0, 1) for d the signed distance (in pixels) from
  the pixel centre to the shape's outline, so an edge is a one-pixel ramp;
- a little per-pixel Gaussian noise (std 0.01) on top, and the result mapped from 0..1 to [-1, 1].

Everything is drawn with numpy from one ``numpy.random.Generator(PCG64(seed))``: the same seed and count give the
same array on every machine. The training set is ``SHAPES_SIZE`` pictures drawn with ``SHAPES_DATA_SEED``, classes
in turn (picture i is class i mod 6). 12 000 pictures take about 2 s.
"""

from __future__ import annotations

import numpy as np

SHAPES_CLASS_NAMES = ("circle", "square", "triangle", "star", "ring", "cross")
SHAPES_IMAGE_SIZE = 32
SHAPES_SIZE = 12_000
SHAPES_DATA_SEED = 0
RADIUS_RANGE = (7.0, 12.0)          # the shape's outer radius, in pixels
TEXTURES = ("plain", "stripes", "checker", "blotches")
_CHUNK = 512                        # pictures rendered at once (bounds memory: chunk x 1024 pixels x edges)


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB, all in 0..1; returns (..., 3)."""
    i = np.floor(h * 6.0).astype(np.int64) % 6
    f = h * 6.0 - np.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    table = np.stack([np.stack(c, axis=-1) for c in
                      ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))], axis=0)
    return np.take_along_axis(table, i[None, ..., None], axis=0)[0]


def _polygon(label: int) -> np.ndarray:
    """The outline of a polygonal class as unit-radius vertices (V, 2), counter-clockwise; None for round ones."""
    if label == 1:    # square: corners at radius 1
        angles = np.pi / 4 + np.arange(4) * np.pi / 2
        return np.stack([np.cos(angles), np.sin(angles)], axis=1)
    if label == 2:    # equilateral triangle
        angles = np.pi / 2 + np.arange(3) * 2 * np.pi / 3
        return np.stack([np.cos(angles), np.sin(angles)], axis=1)
    if label == 3:    # five-pointed star, inner radius 0.45
        angles = np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    if label == 5:    # plus sign: arms of half-width 0.3 reaching radius 1
        a, b = 0.3, 1.0
        return np.array([(b, -a), (b, a), (a, a), (a, b), (-a, b), (-a, a), (-b, a), (-b, -a), (-a, -a),
                         (-a, -b), (a, -b), (a, -a)], dtype=np.float64)
    return None


def _polygon_distance(px: np.ndarray, py: np.ndarray, vx: np.ndarray, vy: np.ndarray) -> np.ndarray:
    """Signed distance (negative inside) from points (B, P) to polygons with vertices (B, V): the distance to the
    nearest edge, signed by the even-odd crossing rule."""
    ax, ay = vx[:, None, :], vy[:, None, :]
    bx, by = np.roll(vx, -1, axis=1)[:, None, :], np.roll(vy, -1, axis=1)[:, None, :]
    qx, qy = px[:, :, None], py[:, :, None]
    ex, ey = bx - ax, by - ay
    wx, wy = qx - ax, qy - ay
    u = np.clip((wx * ex + wy * ey) / (ex * ex + ey * ey), 0.0, 1.0)
    dist = np.sqrt(((wx - u * ex) ** 2 + (wy - u * ey) ** 2).min(axis=2))
    crosses = ((ay > qy) != (by > qy)) & (qx < ax + (qy - ay) * ex / np.where(ey == 0, 1.0, ey))
    inside = crosses.sum(axis=2) % 2 == 1
    return np.where(inside, -dist, dist)


def _shape_distance(label: int, cx, cy, radius, angle, px, py) -> np.ndarray:
    """Signed distance in pixels from pixel centres (P,) to one class's shapes, for a batch of B placements."""
    dx, dy = px[None, :] - cx[:, None], py[None, :] - cy[:, None]
    if label == 0:                                    # circle
        return np.sqrt(dx * dx + dy * dy) - radius[:, None]
    if label == 4:                                    # ring: outer radius r, width 0.4 r
        width = 0.4 * radius[:, None]
        return np.abs(np.sqrt(dx * dx + dy * dy) - (radius[:, None] - width / 2)) - width / 2
    unit = _polygon(label)
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    vx = cx[:, None] + radius[:, None] * (cos * unit[None, :, 0] - sin * unit[None, :, 1])
    vy = cy[:, None] + radius[:, None] * (sin * unit[None, :, 0] + cos * unit[None, :, 1])
    points = np.broadcast_to(px, (len(cx), px.size)), np.broadcast_to(py, (len(cx), py.size))
    return _polygon_distance(points[0], points[1], vx, vy)


def _backgrounds(rng: np.random.Generator, count: int, size: int) -> np.ndarray:
    """(count, size, size, 3) textured backgrounds in 0..1."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    hue = rng.random((count, 2))
    colours = _hsv_to_rgb(hue, rng.uniform(0.2, 0.7, (count, 2)), rng.uniform(0.15, 0.55, (count, 2)))
    direction = rng.uniform(0, 2 * np.pi, count)
    ramp = ((xs[None] - size / 2) * np.cos(direction)[:, None, None]
            + (ys[None] - size / 2) * np.sin(direction)[:, None, None]) / size + 0.5
    ramp = np.clip(ramp, 0, 1)[..., None]
    image = colours[:, None, None, 0] * (1 - ramp) + colours[:, None, None, 1] * ramp
    kind = rng.integers(0, len(TEXTURES), count)
    amplitude = rng.uniform(0.06, 0.16, count)[:, None, None]
    # every texture's parameters are drawn for every picture, so the stream does not depend on the kinds drawn
    stripe_angle = rng.uniform(0, np.pi, count)[:, None, None]
    stripe_period = rng.uniform(3.0, 8.0, count)[:, None, None]
    stripe_phase = rng.uniform(0, 2 * np.pi, count)[:, None, None]
    stripes = np.sin(2 * np.pi * (xs[None] * np.cos(stripe_angle) + ys[None] * np.sin(stripe_angle))
                     / stripe_period + stripe_phase)
    cell = rng.integers(2, 7, count)[:, None, None]
    offset = rng.integers(0, 6, (count, 2))
    checker = (((xs[None].astype(np.int64) + offset[:, 0, None, None]) // cell
                + (ys[None].astype(np.int64) + offset[:, 1, None, None]) // cell) % 2) * 2.0 - 1.0
    coarse = rng.standard_normal((count, 4, 4))
    blotches = _upsample_bicubic(coarse, size)
    blotches /= np.maximum(np.abs(blotches).max(axis=(1, 2), keepdims=True), 1e-6)
    texture = np.select([kind[:, None, None] == 1, kind[:, None, None] == 2, kind[:, None, None] == 3],
                        [stripes, checker, blotches], 0.0)
    return image + (amplitude * texture)[..., None]


def _upsample_bicubic(grid: np.ndarray, size: int) -> np.ndarray:
    """(B, n, n) -> (B, size, size) with a Catmull-Rom spline through the grid values (edges clamped)."""
    n = grid.shape[1]
    coords = (np.arange(size) + 0.5) * n / size - 0.5
    base = np.floor(coords).astype(np.int64)
    frac = coords - base
    weights = np.stack([((-frac + 2) * frac - 1) * frac / 2, (3 * frac - 5) * frac * frac / 2 + 1,
                        ((-3 * frac + 4) * frac + 1) * frac / 2, (frac - 1) * frac * frac / 2], axis=1)
    index = np.clip(base[:, None] + np.arange(-1, 3)[None, :], 0, n - 1)        # (size, 4)
    matrix = np.zeros((size, n))
    np.add.at(matrix, (np.repeat(np.arange(size), 4), index.ravel()), weights.ravel())
    return np.einsum("yi,bij,xj->byx", matrix, grid, matrix)


def generate_shapes(count: int, seed: int = SHAPES_DATA_SEED, size: int = SHAPES_IMAGE_SIZE,
                    labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``count`` pictures (count, 3, size, size) float32 in [-1, 1] and their labels (count,) int64.

    Labels cycle through the classes unless given. Deterministic: the same arguments give the same arrays.
    """
    if labels is None:
        labels = np.arange(count) % len(SHAPES_CLASS_NAMES)
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (count,) or (count and (labels.min() < 0 or labels.max() >= len(SHAPES_CLASS_NAMES))):
        raise ValueError(f"labels must be {count} class indices in 0..{len(SHAPES_CLASS_NAMES) - 1}")
    rng = np.random.Generator(np.random.PCG64(seed))
    scale = size / SHAPES_IMAGE_SIZE
    radius = rng.uniform(*RADIUS_RANGE, count) * scale
    margin = radius + 1.0
    cx = margin + rng.random(count) * (size - 2 * margin)
    cy = margin + rng.random(count) * (size - 2 * margin)
    angle = rng.uniform(0, 2 * np.pi, count)
    colour = _hsv_to_rgb(rng.random(count), rng.uniform(0.55, 1.0, count), rng.uniform(0.75, 1.0, count))
    background = _backgrounds(rng, count, size)
    grain = rng.standard_normal((count, size, size, 3)) * 0.01
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    px, py = xs.ravel(), ys.ravel()
    coverage = np.zeros((count, size * size))
    for label in range(len(SHAPES_CLASS_NAMES)):
        members = np.flatnonzero(labels == label)
        for start in range(0, len(members), _CHUNK):
            rows = members[start:start + _CHUNK]
            distance = _shape_distance(label, cx[rows], cy[rows], radius[rows], angle[rows], px, py)
            coverage[rows] = np.clip(0.5 - distance, 0.0, 1.0)
    coverage = coverage.reshape(count, size, size, 1)
    image = background * (1 - coverage) + colour[:, None, None, :] * coverage + grain
    image = np.clip(image, 0.0, 1.0) * 2.0 - 1.0
    return np.ascontiguousarray(image.transpose(0, 3, 1, 2), dtype=np.float32), labels


def describe() -> str:
    return (f"the studio's generated shapes ({SHAPES_SIZE} pictures, {len(SHAPES_CLASS_NAMES)} classes, seed "
            f"{SHAPES_DATA_SEED}), RGB {SHAPES_IMAGE_SIZE}x{SHAPES_IMAGE_SIZE}")

