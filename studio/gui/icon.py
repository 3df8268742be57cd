"""The application icon: resources/icons/sampling-studio.svg and its PNG renderings (packaging/render_icons.py)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize
from PySide6.QtGui import QIcon

from ..core.bundled import resources_dir

ICON_NAME = "sampling-studio"   # the freedesktop icon name (packaging/sampling-studio.desktop: Icon=)
ICON_SIZES = (16, 32, 48, 64, 128, 256, 512)


def icon_dir() -> Path:
    return resources_dir() / "icons"


def icon_files() -> list[Path]:
    """The PNG sizes present, smallest first, then the SVG if present."""
    folder = icon_dir()
    files = [folder / f"{ICON_NAME}-{size}.png" for size in ICON_SIZES]
    files.append(folder / f"{ICON_NAME}.svg")
    return [path for path in files if path.is_file()]


def application_icon() -> QIcon:
    """Every PNG size (crisp at that size) plus the SVG (any other size, where the SVG plugin is present).

    Falls back to the desktop theme's icon of that name, else an empty QIcon, when no file is installed."""
    icon = QIcon()
    for path in icon_files():
        if path.suffix == ".png":
            size = int(path.stem.rsplit("-", 1)[1])
            icon.addFile(str(path), QSize(size, size))
        else:
            icon.addFile(str(path))
    if icon.isNull():
        return QIcon.fromTheme(ICON_NAME)
    return icon
