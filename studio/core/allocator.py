"""Keep freed memory for the next model call instead of handing it back to the system (glibc only).

A sampling loop frees and allocates the same activations at every model call. In the process's main thread
glibc's allocator trims the top of its heap after each large free, so the next call touches fresh pages that
the kernel must fault in and zero, and the run is measurably slower (``python -m studio.bench``). Worker
threads allocate from arenas that are not trimmed so eagerly, so a run in a thread does not pay this.
``keep_freed_memory`` raises glibc's top pad (``M_TOP_PAD``), the free memory a trim leaves at the
top of the heap, to ``TOP_PAD_BYTES``.

Any mallopt call also freezes glibc's self-raising mmap threshold at its start, 128 KiB: every activation of a
megabyte or more would then be mapped and unmapped afresh at each call (measured, a whole ``studio sample`` of a
32x32 UNet at batch 16, 20 DDIM steps: 1.39 million page faults and 3.0 s of system time, against 0.34 million
and 0.8 s with glibc's defaults). So the threshold is set too, to ``MMAP_THRESHOLD_BYTES``, the most glibc's own
rule would raise it to: blocks below it come from the heap, whose freed memory the next call reuses (85,000
faults and 0.3 s on that run).

Only the studio's own entry points call it (``studio`` and its commands, the bench): it changes the allocator
of the whole process, which a library imported by someone else's program should not do.
"""

from __future__ import annotations

import ctypes
import sys

M_TOP_PAD = -2                 # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
TOP_PAD_BYTES = 64 * 2**20     # more than a step of the bundled models frees; at most this much is kept unused
MMAP_THRESHOLD_BYTES = 32 * 2**20   # glibc's largest dynamic threshold (DEFAULT_MMAP_THRESHOLD_MAX, 64-bit)


def keep_freed_memory(top_pad_bytes: int = TOP_PAD_BYTES, mmap_threshold_bytes: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Set glibc's mmap threshold and top pad; True if both were set (False on other C libraries and systems:
    nothing to do)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt   # the C library already loaded (find_library would run ldconfig)
    except (OSError, AttributeError):   # musl and others have no mallopt
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    threshold_set = mallopt(M_MMAP_THRESHOLD, int(mmap_threshold_bytes)) == 1
    return mallopt(M_TOP_PAD, int(top_pad_bytes)) == 1 and threshold_set
