"""Atomic file writes for training outputs (states, quality reports), over the studio's one atomic writer."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from ..core.atomic import atomic_path


def write_atomically(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(temp_path)``, then move the temp file onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        write(str(tmp))
    return path
