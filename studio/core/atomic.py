"""Atomic file writes: write to a temp file in the target's folder, then rename over the target.

A crash, a full disk or an exception never leaves a half-written file under the real name, and the temp file
is removed. The result gets the permissions a plain ``open(path, "w")`` would give (mkstemp makes 0600 files).

Only a kill the process cannot catch (SIGKILL, a power cut, a second SIGTERM) leaves a temp file behind, as
``.NAME.XXXXXXXX.tmp`` beside NAME; ``remove_stale_temporaries`` clears those away the next time the studio
writes into that folder. While a writer is alive it holds an advisory lock (``flock``) on its temp file, so a
second studio process writing into the same folder never takes a file that is still being written.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:   # Windows: an open file cannot be deleted there, which protects a live writer instead
    fcntl = None

TEMP_SUFFIX = ".tmp"
PROBE_PREFIX = ".studio-probe."
STALE_SECONDS = 5.0   # an unlocked temp file younger than this may belong to a writer that is just starting

# exactly what tempfile.mkstemp makes with the prefixes and suffixes the studio passes it: eight characters of
# tempfile's own alphabet (lower-case letters, digits, underscore) between them
_RANDOM = r"[a-z0-9_]{8}"
_TEMPORARY = re.compile(rf"\.(?P<name>.+)\.{_RANDOM}{re.escape(TEMP_SUFFIX)}")
_PROBE = re.compile(rf"{re.escape(PROBE_PREFIX)}{_RANDOM}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without error it becomes ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    tmp_path = Path(tmp)
    fd = _lock(fd)   # "a writer is alive": the lock is held until the file is renamed or removed
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    finally:
        if fd is not None:
            os.close(fd)


def _lock(fd: int) -> int | None:
    """Lock the fresh temp file for as long as it is written; the fd to close afterwards, or None."""
    if fcntl is None:   # Windows cannot rename or delete a file open here: close it at once
        os.close(fd)
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:     # a file system without flock: the age rule alone protects this file
        pass
    return fd


def is_studio_temporary(name: str) -> bool:
    """True for exactly the names the studio's own temp files have (``.NAME.XXXXXXXX.tmp`` from atomic_path,
    ``.studio-probe.XXXXXXXX`` from the export's folder check); never for a name a person is likely to choose."""
    return bool(_TEMPORARY.fullmatch(name) or _PROBE.fullmatch(name))


def _writer_alive(path: Path) -> bool:
    """Whether a live process still holds the lock atomic_path takes (False where locks are not available)."""
    if fcntl is None:
        return False
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return True   # cannot even look: leave it alone
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)   # closing releases the lock this check took
    return False


def remove_stale_temporaries(folder: str | os.PathLike, stale_seconds: float = STALE_SECONDS) -> list[Path]:
    """Remove the studio's own temp files that a killed run left in ``folder`` (not its subfolders); return them.

    A file is removed only when all of these hold: its name is exactly a studio temp name
    (``is_studio_temporary``), it is a regular file (not a link) owned by this user with the 0600 permissions
    mkstemp gives, no live writer holds its lock, and it was last modified at least ``stale_seconds`` ago.
    Anything else, a user's ``.notes.tmp`` included, stays. Errors (a folder that cannot be listed, a file
    that cannot be removed) are not raised: the caller's own checks report an unusable folder.
    """
    removed: list[Path] = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not is_studio_temporary(entry.name):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode) or now - info.st_mtime < stale_seconds:
            continue
        if os.name == "posix" and (info.st_uid != os.geteuid() or stat.S_IMODE(info.st_mode) != 0o600):
            continue
        path = Path(entry.path)
        if _writer_alive(path):
            continue
        try:
            path.unlink()
        except OSError:   # gone already, or (Windows) still open in a writer
            continue
        removed.append(path)
    return removed
