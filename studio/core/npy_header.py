"""Read a .npy header (format 1.0 or 2.0) without reading its data, so a caller checks the dtype, shape and size
the header claims before any allocation; a file is data and its header may lie."""

from __future__ import annotations

from typing import BinaryIO

import numpy as np

MAX_HEADER_BYTES = 10_000   # numpy's own default cap: a header that asks for more is not an array's


class NpyHeaderError(ValueError):
    """The header cannot be read: the message says why (the caller names the file)."""


def read_npy_header(handle: BinaryIO) -> tuple[tuple[int, ...], bool, np.dtype]:
    """``(shape, fortran_order, dtype)`` from ``handle`` at the array's start; ``handle`` is left at its data."""
    from numpy.lib import format as npy_format

    try:
        version = npy_format.read_magic(handle)
        if version == (1, 0):
            shape, fortran_order, dtype = npy_format.read_array_header_1_0(handle, max_header_size=MAX_HEADER_BYTES)
        elif version == (2, 0):
            shape, fortran_order, dtype = npy_format.read_array_header_2_0(handle, max_header_size=MAX_HEADER_BYTES)
        else:
            raise NpyHeaderError(f"not a readable .npy array: its format version is {version[0]}.{version[1]} "
                                 "(the studio reads 1.0 and 2.0)")
    except (ValueError, TypeError, SyntaxError, EOFError) as exc:
        if isinstance(exc, NpyHeaderError):
            raise
        raise NpyHeaderError(f"not a readable .npy array ({str(exc)[:200]})") from None
    return tuple(int(n) for n in shape), bool(fortran_order), dtype
