"""The core never imports Qt: importing every core module in a fresh interpreter loads no Qt module."""

import pkgutil
import subprocess
import sys

import studio.core

QT_PREFIXES = ("PySide6", "PyQt5", "PyQt6", "pyqtgraph", "shiboken6", "qtpy", "superqt")


def test_core_imports_no_qt():
    modules = [m.name for m in pkgutil.walk_packages(studio.core.__path__, "studio.core.")]
    assert "studio.core.engine" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {QT_PREFIXES!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"studio.core pulled in Qt modules: {out.stdout.strip()}"


def test_core_sources_do_not_mention_qt_imports():
    import pathlib
    import re

    root = pathlib.Path(studio.core.__file__).parent
    pattern = re.compile(r"^\s*(from|import)\s+(PySide6|PyQt\d|pyqtgraph|superqt|qtpy)\b", re.M)
    offenders = [str(p) for p in root.rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []
