"""Write the application icon's SVG: noise resolving into a shape.

    python packaging/design_icon.py            # rewrites resources/icons/sampling-studio.svg
    python packaging/render_icons.py           # then renders the PNG sizes from it

A halftone disc on a dark rounded square: on the right the dots are large and merge into a solid edge (the clean
sample); towards the left they shrink, fade and scatter (the noise it was sampled from), with a few stray specks
beyond. Seeded, so the same SVG comes out every time. No text.
"""

from __future__ import annotations

import argparse
import math
import random
from pathlib import Path

SVG = Path(__file__).resolve().parent.parent / "resources" / "icons" / "sampling-studio.svg"
SIZE = 256
CENTRE, RADIUS, STEP = (136.0, 128.0), 92.0, 17.0   # the disc and its hexagonal dot grid


def dots(seed: int = 3) -> list[tuple[float, float, float, float]]:
    """(x, y, radius, t) for every dot; t runs from 0 (noise, left) to 1 (clean, right)."""
    rng = random.Random(seed)
    cx, cy = CENTRE
    result = []
    rows = int(RADIUS / (STEP * 0.866)) + 1
    for j in range(-rows, rows + 1):
        y = j * STEP * 0.866
        shift = STEP / 2 if j % 2 else 0.0
        for i in range(-8, 9):
            x = i * STEP + shift
            distance = math.hypot(x, y)
            if distance > RADIUS - 1.5:
                continue
            t = min(1.0, max(0.0, (x + RADIUS) / (2 * RADIUS)))
            jitter = 16 * (1 - t) ** 2.2
            radius = min(1.6 + 9.4 * t ** 1.3, max(1.5, (RADIUS - distance) * 1.15))   # round edge on the right
            result.append((cx + x + rng.gauss(0, jitter), cy + y + rng.gauss(0, jitter), radius, t))
    for _ in range(14):   # stray specks of noise left of the disc
        result.append((rng.uniform(26, 70), rng.uniform(44, 212), rng.uniform(1.6, 3.2), 0.0))
    return sorted(result, key=lambda d: d[3])


def svg(seed: int = 3) -> str:
    lines = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{SIZE}" height="{SIZE}" viewBox="0 0 {SIZE} {SIZE}">',
        '  <title>Sampling Studio</title>',
        '  <desc>Noise resolving into a shape: a halftone disc whose dots scatter into noise on the left.</desc>',
        '  <defs>',
        '    <linearGradient id="bg" x1="0" y1="0" x2="1" y2="1">',
        '      <stop offset="0" stop-color="#2a3654"/>',
        '      <stop offset="1" stop-color="#0e1322"/>',
        '    </linearGradient>',
        '    <linearGradient id="ink" gradientUnits="userSpaceOnUse" x1="24" y1="0" x2="232" y2="0">',
        '      <stop offset="0" stop-color="#7d8bb0"/>',
        '      <stop offset="0.5" stop-color="#3fc8c0"/>',
        '      <stop offset="1" stop-color="#a8f5dc"/>',
        '    </linearGradient>',
        '  </defs>',
        '  <rect x="8" y="8" width="240" height="240" rx="56" fill="url(#bg)"/>',
        '  <g fill="url(#ink)">',
    ]
    for x, y, r, t in dots(seed):
        opacity = 0.4 + 0.6 * t
        fade = "" if opacity >= 0.995 else f' fill-opacity="{opacity:.2f}"'
        lines.append(f'    <circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}"{fade}/>')
    lines += ['  </g>', '</svg>']
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SVG)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(svg(args.seed), encoding="utf-8")
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
