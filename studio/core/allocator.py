"""Keep freed memory for the next step instead of handing it back to the system (glibc only).

A sampling loop frees and allocates the same activations at every model call. In the process's main thread
glibc's allocator trims the top of its heap after each large free, so the next call touches fresh pages that
the kernel must fault in and zero, and the run is measurably slower (``python -m studio.bench``). Worker
threads allocate from arenas that are not trimmed so eagerly, so a run in a thread does not pay this.
``keep_freed_memory`` raises glibc's top pad (``M_TOP_PAD``), the free memory a trim leaves at the
top of the heap, to ``TOP_PAD_BYTES``.

Only the studio's own entry points call it (``studio`` and its commands, the bench): it changes the allocator
of the whole process, which a library imported by someone else's program should not do.
"""

from __future__ import annotations

import ctypes
import sys

M_TOP_PAD = -2                 # glibc's mallopt parameter number (malloc.h)
TOP_PAD_BYTES = 64 * 2**20     # more than a step of the bundled models frees; at most this much is kept unused


def keep_freed_memory(top_pad_bytes: int = TOP_PAD_BYTES) -> bool:
    """Set glibc's top pad; True if it was set (False on other C libraries and systems: nothing to do)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt   # the C library already loaded (find_library would run ldconfig)
    except (OSError, AttributeError):   # musl and others have no mallopt
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt(M_TOP_PAD, int(top_pad_bytes)) == 1
