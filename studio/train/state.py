"""The training state: what ``--resume`` needs to continue a run bit for bit.

One file written with torch.save (atomically) and read back with ``torch.load(weights_only=True)``: the recipe
(JSON), the data's fingerprint, the step, the raw and EMA weights, the optimizer's state and both random states
(torch's global generator, which drives dropout, and the generator that draws batches, timesteps and noise).
"""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch

from ..core.errors import CheckpointError
from .files import write_atomically

STATE_FORMAT = "sampling-studio-train-state"
STATE_VERSION = 1
STATE_SUFFIX = ".train.pt"


@dataclass
class TrainState:
    recipe: dict
    data_fingerprint: str
    step: int
    model: dict
    ema: dict
    optimizer: dict
    torch_rng: torch.Tensor
    data_rng: torch.Tensor


def default_state_path(output: str | os.PathLike) -> Path:
    """Beside the output: ``model.safetensors`` -> ``model.train.pt``."""
    output = Path(output)
    return output.with_name(output.stem + STATE_SUFFIX)


def save_state(path: str | os.PathLike, state: TrainState) -> Path:
    path = Path(path)
    payload = {
        "format": STATE_FORMAT, "version": STATE_VERSION, "recipe": json.dumps(state.recipe),
        "data_fingerprint": state.data_fingerprint, "step": state.step, "model": state.model, "ema": state.ema,
        "optimizer": state.optimizer, "torch_rng": state.torch_rng, "data_rng": state.data_rng,
    }
    write_atomically(path, lambda tmp: torch.save(payload, tmp))
    return path


def load_state(path: str | os.PathLike) -> TrainState:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"training state {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch's own text here suggests weights_only=False, which we never do
        raise CheckpointError(f"training state {str(path)!r} cannot be read: it is not a torch file, or it holds "
                              "more than tensors and plain data") from None
    except Exception as exc:  # truncated or corrupt archive
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"training state {str(path)!r} cannot be read: {first_line}") from None
    if not isinstance(payload, dict) or payload.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a studio training state (written by studio train)")
    if payload.get("version") != STATE_VERSION:
        raise CheckpointError(f"training state {str(path)!r} has version {payload.get('version')!r}; "
                              f"this studio reads version {STATE_VERSION}")
    try:
        return TrainState(json.loads(payload["recipe"]), payload["data_fingerprint"], int(payload["step"]),
                          payload["model"], payload["ema"], payload["optimizer"], payload["torch_rng"],
                          payload["data_rng"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"training state {str(path)!r} is incomplete: {exc}") from None
