"""What a checkpoint argument names: a bundled model or a path, never a guess between the two.

A bare bundled name ("digits") opens the bundled model; when a file or folder of that name is also in the
current folder the name is ambiguous and refused (``./digits`` names the file, ``bundled:digits`` the model).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from ..bundled import BUNDLED, BUNDLED_PREFIX, bundled_by_name, bundled_of_source
from .common import fail


def _bundled_path(model) -> Path:
    if not model.path.is_file():
        raise fail(model.path, f"bundled model {model.name!r} is not installed (train it with `studio train`, "
                               "see README)")
    return model.path


def _names() -> str:
    return ", ".join(m.name for m in BUNDLED)


def resolve(source: str | os.PathLike) -> Path:
    """The path ``source`` names: a bundled model for "bundled:NAME" or a bare bundled name, else a path."""
    text = os.fspath(source)
    if text.startswith(BUNDLED_PREFIX):
        model = bundled_of_source(text)
        if model is None:
            raise fail(text, f"no bundled model of that name (bundled models: {_names()})")
        return _bundled_path(model)
    bundled = bundled_by_name(text) if isinstance(text, str) else None
    if bundled is not None:
        if os.path.lexists(text):
            raise fail(text, f"ambiguous: names both the bundled {bundled.name!r} model and "
                             f"{Path(text).resolve()}; write ./{text} to open that path, or "
                             f"{BUNDLED_PREFIX}{text} for the bundled model")
        return _bundled_path(bundled)
    path = Path(text).expanduser()
    try:
        path.stat()
    except OSError as exc:
        raise _missing(path, exc) from None
    path = path.absolute()   # "./digits" stays a path when it is resolved again (Path drops the "./")
    if path.name in ("model_index.json", "config.json") and path.is_file():
        return path.parent  # a diffusers folder, picked by its config file
    return path


def _missing(path: Path, exc: OSError):
    if exc.errno == errno.ELOOP:
        return fail(path, "is a symbolic link loop (it points back to itself)")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return fail(path, "permission denied (a folder on the way cannot be searched)")
    if exc.errno == errno.ENOTDIR:
        return fail(path, "a part of the path is a file, not a folder")
    if os.path.islink(path):
        return fail(path, f"is a broken symbolic link (to {os.readlink(path)}, which does not exist)")
    if exc.errno == errno.ENAMETOOLONG:
        return fail(str(path)[:80] + "...", "the path is too long")
    return fail(path, f"no such file or folder (nor a bundled model name: {_names()})")
