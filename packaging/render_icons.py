"""Render the application icon's PNG sizes from its SVG with Qt's own SVG renderer (QtSvg).

    python packaging/render_icons.py           # resources/icons/sampling-studio.svg -> sampling-studio-NN.png

Runs headless (QT_QPA_PLATFORM=offscreen unless set). The PNGs are what the window, the .desktop file
(through packaging/install-desktop.sh) and the PyInstaller app use; regenerate them whenever the SVG changes.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ICONS = Path(__file__).resolve().parent.parent / "resources" / "icons"
NAME = "sampling-studio"
SIZES = (16, 32, 48, 64, 128, 256, 512)


def render(svg: Path, folder: Path, sizes=SIZES) -> list[Path]:
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    app = QGuiApplication.instance() or QGuiApplication([sys.argv[0]])
    renderer = QSvgRenderer(str(svg), app)   # owned by the application, which must outlive the painting
    if not renderer.isValid():
        raise SystemExit(f"error: {svg} is not an SVG Qt can render")
    written = []
    for size in sizes:
        image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        renderer.render(painter)
        painter.end()
        path = folder / f"{NAME}-{size}.png"
        if not image.convertToFormat(QImage.Format.Format_ARGB32).save(str(path), "PNG"):
            raise SystemExit(f"error: could not write {path}")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render the icon PNGs from the SVG.")
    parser.add_argument("--svg", type=Path, default=ICONS / f"{NAME}.svg")
    parser.add_argument("--out", type=Path, default=ICONS, help="folder for sampling-studio-NN.png")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    args.out.mkdir(parents=True, exist_ok=True)
    for path in render(args.svg, args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
