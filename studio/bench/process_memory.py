"""This process's memory in MiB: resident now, and the peak (high-water mark), which can be reset so that a
measurement sees only its own peak (Linux /proc; getrusage's lifetime peak elsewhere)."""

from __future__ import annotations

import os
import resource


def resident_mib() -> float:
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return float("nan")


def reset_peak() -> bool:
    """Set the high-water mark to the resident size now (Linux >= 4.0); False where that cannot be done."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def peak_mib() -> float:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # Linux reports KiB
