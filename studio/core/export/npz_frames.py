"""Reading a few frames of a stored trajectory (.npz) without trusting or loading the rest.

A branch needs two frames of a parent's ``x_t`` (x_T and step k), not the whole array. The member's .npy header
is read first and checked against what the caller expects (float32, C order, the shape the run's record
implies) and against the member's real size, so that a small or damaged file can neither ask for gigabytes
nor hand back data of another shape; then only the frames asked for are read, by seeking. Nothing is unpickled.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import SettingsError
from ..npy_header import NpyHeaderError, read_npy_header

_FLOAT32 = np.dtype("<f4")


def read_npz_frames(path: str | os.PathLike, member: str, frames: Sequence[int],
                    expected_shape: tuple[int, ...]) -> np.ndarray:
    """Frames ``frames`` (indices into the first axis) of float32 array ``member`` of the .npz at ``path``,
    whose shape must be ``expected_shape``; (len(frames), *expected_shape[1:]) float32. SettingsError names the
    file and what is wrong."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            try:
                info = archive.getinfo(f"{member}.npy")
            except KeyError:
                raise SettingsError(f"{path}: holds no {member} array") from None
            with archive.open(info) as handle:
                return _read_frames(path, member, handle, info.file_size, frames, tuple(expected_shape))
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as exc:
        raise SettingsError(f"{path}: damaged or truncated ({exc})") from None
    except OSError as exc:
        raise SettingsError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def _read_frames(path: Path, member: str, handle, size: int, frames: Sequence[int],
                 expected_shape: tuple[int, ...]) -> np.ndarray:
    try:
        shape, fortran_order, dtype = read_npy_header(handle)
    except NpyHeaderError as exc:
        raise SettingsError(f"{path}: its {member} array is damaged ({exc})") from None
    if dtype != _FLOAT32 or fortran_order:
        raise SettingsError(f"{path}: its {member} array is {dtype}{' (Fortran order)' if fortran_order else ''}, "
                            "not the float32 the studio writes")
    if tuple(shape) != expected_shape:
        raise SettingsError(f"{path}: its {member} array has shape {tuple(shape)}; the run's record says "
                            f"{expected_shape}")
    start = handle.tell()
    frame_bytes = int(np.prod(expected_shape[1:], dtype=np.int64)) * _FLOAT32.itemsize
    if size != start + frame_bytes * expected_shape[0]:
        raise SettingsError(f"{path}: its {member} array is truncated or damaged ({size} bytes where its "
                            f"header implies {start + frame_bytes * expected_shape[0]})")
    out = np.empty((len(frames), *expected_shape[1:]), dtype=np.float32)
    for i, frame in enumerate(frames):
        if not 0 <= frame < expected_shape[0]:
            raise SettingsError(f"{path}: has no frame {frame} of {member} (it holds {expected_shape[0]})")
        handle.seek(start + frame * frame_bytes)
        data = handle.read(frame_bytes)
        if len(data) != frame_bytes:
            raise SettingsError(f"{path}: its {member} array is truncated")
        out[i] = np.frombuffer(data, dtype=_FLOAT32).reshape(expected_shape[1:])
    return out
