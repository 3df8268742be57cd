"""Exports are written atomically (``studio.core.atomic``: a temporary file in the target folder, renamed over
the target), so a failure (unwritable folder, full disk, Ctrl+C) never leaves half a file behind; here an
OSError becomes one ExportError that names the file and says why in words."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

from ..atomic import PROBE_PREFIX, atomic_path, remove_stale_temporaries
from ..errors import StudioError
from ..os_reason import os_reason as _reason


class ExportError(StudioError):
    """A file could not be written; the message names the file and the reason."""


def ensure_folder(folder: str | os.PathLike) -> Path:
    """Create ``folder`` (and its parents) and prove a file can be written in it; ExportError otherwise.

    Every run into a folder starts here, so here too the temp files a killed run left in it are removed
    (``studio.core.atomic.remove_stale_temporaries``: only the studio's own, never a file it did not make)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ExportError(f"cannot write into {folder}: it is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(folder)
        fd, probe = tempfile.mkstemp(prefix=PROBE_PREFIX, dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ExportError(f"cannot write into {folder}: {_reason(exc)}") from None
    return folder


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(temporary_path)``, then rename the temporary file to ``path``; any failure removes it, and
    an OSError becomes an ExportError naming ``path``. Writers must not rely on the temporary file's suffix."""
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            write(tmp)
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {_reason(exc)}") from None
    return path
