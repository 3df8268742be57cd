"""What a run and its exports need in memory, estimated from the request before anything is allocated.

The figures are lower bounds (the network's own activations come on top), so a refusal is never wrong: a
request refused here could not have finished on this machine. Every exported picture is also kept within the
pixel count Pillow opens without calling it a decompression bomb, so whatever the studio writes it can read.
"""

from __future__ import annotations

import math

from .errors import SettingsError
from .memory_budget import require_fits

FLOAT_BYTES = 4
GENERATOR_BYTES = 5 * 1024    # a per-sample torch CPU generator: its mt19937 state and the Python object around it
STATE_COPIES = 6              # x_t, x0_pred, eps_pred, noise drawn ahead and a step's temporaries, per sample
MODEL_CALL_COPIES = 4         # a model call's input, output and conversions, per row, before any activation
MAX_PICTURE_PIXELS = 89_478_485   # Pillow's Image.MAX_IMAGE_PIXELS: larger files it refuses to open as bombs


def sample_values(data_shape) -> int:
    return math.prod(int(d) for d in data_shape)


def run_bytes(data_shape, *, batch: int, model_rows: int, num_samples: int, frames: int) -> int:
    """Bytes a process needs for ``num_samples`` samples made ``batch`` at a time, the model called on
    ``model_rows`` rows, keeping ``frames`` trajectory frames of every sample (0: none)."""
    per_sample = sample_values(data_shape) * FLOAT_BYTES
    return (per_sample * (num_samples * (1 + frames) + STATE_COPIES * batch + MODEL_CALL_COPIES * model_rows)
            + GENERATOR_BYTES * batch)


def require_run_fits(data_shape, *, batch: int, model_rows: int, num_samples: int, frames: int,
                     what: str = "this run") -> None:
    needed = run_bytes(data_shape, batch=batch, model_rows=model_rows, num_samples=num_samples, frames=frames)
    require_fits(needed, f"{what} ({num_samples:,} samples, {batch:,} at a time, the model called on "
                         f"{model_rows:,} rows)")


def require_picture_fits(height: int, width: int, what: str) -> None:
    """A picture of height x width pixels must stay under MAX_PICTURE_PIXELS (so it can be read back)."""
    pixels = int(height) * int(width)
    if pixels > MAX_PICTURE_PIXELS:
        raise SettingsError(f"{what} would be {width:,} x {height:,} pixels ({pixels:,}); the most the studio "
                            f"writes is {MAX_PICTURE_PIXELS:,} pixels (what image readers open without calling "
                            "it a decompression bomb)")
