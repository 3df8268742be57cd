"""How much memory this machine can give a run or an export, and the one message for a request that cannot fit.

Requests are estimated before anything is allocated: a flag such as ``--batch 10000000`` or a file that
describes a huge network must fail in a second with what it needs, not after minutes of swapping.
"""

from __future__ import annotations

import os

from .errors import SettingsError

GiB = 1 << 30


def available_bytes() -> int:
    """Memory a new allocation can use now: MemAvailable on Linux, else the physical memory."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 * GiB   # unknown platform: a laptop's worth


def size_text(n: float) -> str:
    if n < 1024:
        return f"{n:,.0f} bytes"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        n /= 1024
        if n < 1024:
            return f"{n:,.1f} {unit}"
    return f"{n / 1024:,.1f} PiB"


def require_fits(needed: float, what: str, available: int | None = None) -> None:
    """SettingsError naming ``what`` and both figures when ``needed`` bytes exceed what the machine has."""
    available = available_bytes() if available is None else available
    if needed > available:
        raise SettingsError(f"{what} needs about {size_text(needed)} of memory, but this machine has "
                            f"{size_text(available)} available")
