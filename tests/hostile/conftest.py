"""Hostile-input tests share the core tests' file makers and CLI runner and the GUI tests' window fixtures."""

import sys
from pathlib import Path

_TESTS = Path(__file__).resolve().parent.parent
for _folder in ("core", "gui"):
    if str(_TESTS / _folder) not in sys.path:
        sys.path.insert(0, str(_TESTS / _folder))

from gui_fixtures import isolated_settings, make_window  # noqa: E402,F401 -- fixtures
