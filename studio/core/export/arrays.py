"""Arrays and records to disk: .npy, .json and the trajectory .npz, each written atomically.

The trajectory .npz holds ``x_t`` (frames, batch, *data_shape) from x_T on, ``x0_pred`` (steps, batch,
*data_shape), ``timesteps`` (steps,) and ``settings``: the run record as a JSON string, so the file loads with
``np.load(path)`` and no pickle (``json.loads(str(data["settings"]))``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .atomic import atomic_write


def write_json(path: str | os.PathLike, data: dict) -> Path:
    text = json.dumps(data, indent=2) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    array = np.ascontiguousarray(array)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:   # a handle, so numpy does not append its own suffix
            np.save(handle, array, allow_pickle=False)

    return atomic_write(path, write)


def write_npz(path: str | os.PathLike, compressed: bool = False, **arrays: np.ndarray) -> Path:
    save = np.savez_compressed if compressed else np.savez

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            save(handle, **arrays)

    return atomic_write(path, write)


def write_trajectory_npz(path: str | os.PathLike, x_t: np.ndarray, x0_pred: np.ndarray, timesteps,
                         record: dict | None = None, **extra: np.ndarray) -> Path:
    """x_t: (S + 1, N, ...) from x_T on; x0_pred: (S, N, ...); timesteps: (S,). ``extra`` arrays go in as they are."""
    x_t = np.asarray(x_t, dtype=np.float32)
    x0_pred = np.asarray(x0_pred, dtype=np.float32)
    timesteps = np.asarray(timesteps, dtype=np.int64)
    if x0_pred.shape[0] != timesteps.shape[0] or x_t.shape[0] not in (timesteps.shape[0], timesteps.shape[0] + 1):
        raise ValueError(f"trajectory shapes disagree: x_t {x_t.shape}, x0_pred {x0_pred.shape}, "
                         f"timesteps {timesteps.shape}")
    settings = np.array(json.dumps(record if record is not None else {}))
    return write_npz(path, x_t=x_t, x0_pred=x0_pred, timesteps=timesteps, settings=settings, **extra)


def read_trajectory_npz(path: str | os.PathLike) -> dict:
    """The arrays of a trajectory .npz, with ``settings`` parsed back into a dict."""
    with np.load(path, allow_pickle=False) as data:
        out = {key: data[key] for key in data.files}
    out["settings"] = json.loads(str(out.get("settings", "{}")))
    return out
