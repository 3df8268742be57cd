"""An OSError in words, for the one-line messages of reads and writes ("permission denied", not errno 13)."""

from __future__ import annotations

import errno

_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "the file system is read-only",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder",
}


def os_reason(exc: OSError, **overrides: str) -> str:
    """The reason ``exc`` happened, in words; ``overrides`` maps errno names (``ENOENT=...``) to what a caller
    knows better (a write's missing file is its missing folder)."""
    for name, text in overrides.items():
        if exc.errno == getattr(errno, name):
            return text
    return _REASONS.get(exc.errno) or exc.strerror or str(exc)
