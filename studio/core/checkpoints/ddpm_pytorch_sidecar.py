"""The sidecar JSON beside a denoising-diffusion-pytorch checkpoint: ``model-10.pt`` + ``model-10.json``.

It holds, under the library's own argument names, what the file cannot say: ``{"image_size": 32}`` at least (no
weight of a Unet depends on the image size), and where a file does not decide them the ``objective`` (files of
library versions before its ``loss_weight`` buffer) and ``auto_normalize``. Anything the weights decide may be given
too and is then checked against them. ``"weights": "model"`` opens the raw (online) weights of a Trainer checkpoint
instead of its EMA ones. A key that is neither a ``Unet`` nor a ``GaussianDiffusion`` argument nor one of the
studio's (name, description, weights) is refused, with a suggestion. Nothing here imports the library.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from ..checks import is_int, is_number
from .common import fail, read_json_object

MAX_IMAGE_SIDE = 4096
OBJECTIVES = ("pred_noise", "pred_x0", "pred_v")
BETA_SCHEDULES = ("linear", "cosine", "sigmoid")
WEIGHTS = ("ema", "model")
# Unet(...) arguments the weights decide (checked when given)
UNET_DECIDED = ("dim", "init_dim", "out_dim", "dim_mults", "channels", "self_condition", "learned_variance",
                "learned_sinusoidal_cond", "random_fourier_features", "learned_sinusoidal_dim", "attn_dim_head",
                "attn_heads", "full_attn")
# Unet(...) arguments the weights do not decide: sinusoidal_pos_emb_theta changes the answer; dropout (off when
# sampling) and flash_attn (the same attention by another kernel) do not
UNET_FREE = ("sinusoidal_pos_emb_theta", "dropout", "flash_attn")
# GaussianDiffusion(...) arguments: what the studio reads, and what only concerns training or the library's own
# sampling loop (the studio chooses steps and eta itself), accepted so that a copied set of arguments reads
DIFFUSION_READ = ("image_size", "timesteps", "objective", "beta_schedule", "auto_normalize")
DIFFUSION_IGNORED = ("sampling_timesteps", "schedule_fn_kwargs", "ddim_sampling_eta", "offset_noise_strength",
                     "min_snr_loss_weight", "min_snr_gamma", "immiscible")
STUDIO_KEYS = ("name", "description", "weights")
KNOWN = UNET_DECIDED + UNET_FREE + DIFFUSION_READ + DIFFUSION_IGNORED + STUDIO_KEYS
DEFAULTS = {"sinusoidal_pos_emb_theta": 10000, "dropout": 0.0, "flash_attn": False, "auto_normalize": True,
            "weights": "ema"}


def sidecar_path(path: str | os.PathLike) -> Path:
    return Path(path).with_suffix(".json")


def read_sidecar(path: str | os.PathLike) -> dict:
    """The checked keys of the sidecar beside ``path`` ({} when there is none)."""
    beside = sidecar_path(path)
    if not beside.is_file():
        return {}
    data = read_json_object(beside, "sidecar")
    if "data_kind" in data or "architecture" in data:
        raise fail(beside, "is a studio model card, but the file beside it is a denoising-diffusion-pytorch "
                           "checkpoint: its sidecar holds the library's arguments (image_size, objective, ...)")
    for key, value in data.items():
        if key not in KNOWN:
            close = difflib.get_close_matches(key, sorted(KNOWN), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise fail(beside, f"unknown key {key!r:.60}{hint}; a denoising-diffusion-pytorch sidecar holds the "
                               "Unet's and GaussianDiffusion's arguments under their own names (image_size, "
                               "objective, auto_normalize, dim, dim_mults, ...) and weights (ema or model)")
        problem = _type_problem(key, value)
        if problem:
            raise fail(beside, f"{key} must be {problem}, got {value!r:.80}")
    return dict(data)


def image_size_of(value) -> tuple[int, int]:
    return (value, value) if is_int(value) else (int(value[0]), int(value[1]))


def _positive_ints(value, length=None) -> bool:
    return isinstance(value, list) and bool(value) and all(is_int(v) and v >= 1 for v in value) and \
        (length is None or len(value) == length)


def _type_problem(key: str, value) -> str | None:
    side = lambda v: is_int(v) and 1 <= v <= MAX_IMAGE_SIDE   # noqa: E731
    if key in ("name", "description"):
        return None if isinstance(value, str) and value else "a non-empty string"
    if key == "weights":
        return None if value in WEIGHTS else "ema (the EMA weights, the default) or model (the raw weights)"
    if key == "image_size":
        ok = side(value) or (isinstance(value, list) and len(value) == 2 and all(side(v) for v in value))
        return None if ok else f"an integer from 1 to {MAX_IMAGE_SIDE}, or [height, width]"
    if key == "objective":
        return None if value in OBJECTIVES else " or ".join(OBJECTIVES)
    if key == "beta_schedule":
        return None if value in BETA_SCHEDULES else " or ".join(BETA_SCHEDULES)
    if key in ("self_condition", "learned_variance", "learned_sinusoidal_cond", "random_fourier_features",
               "flash_attn", "auto_normalize", "min_snr_loss_weight", "immiscible"):
        return None if isinstance(value, bool) else "true or false"
    if key in ("init_dim", "out_dim"):
        return None if value is None or (is_int(value) and value >= 1) else "an integer >= 1 or null"
    if key in ("dim", "channels", "learned_sinusoidal_dim", "timesteps", "sampling_timesteps"):
        return None if is_int(value) and value >= 1 else "an integer >= 1"
    if key == "dim_mults":
        return None if _positive_ints(value) else "a list of integers >= 1, e.g. [1, 2, 4, 8]"
    if key in ("attn_dim_head", "attn_heads"):
        return None if (is_int(value) and value >= 1) or _positive_ints(value) \
            else "an integer >= 1 or a list of them (one per stage)"
    if key == "full_attn":
        return None if value is None or isinstance(value, bool) or (
            isinstance(value, list) and value and all(isinstance(v, bool) for v in value)) \
            else "null, true or false, or a list of them (one per stage)"
    if key == "schedule_fn_kwargs":
        return None if isinstance(value, dict) else "a JSON object"
    if key in ("sinusoidal_pos_emb_theta", "min_snr_gamma"):
        return None if is_number(value) and value > 0 else "a number > 0"
    if key in ("dropout", "ddim_sampling_eta", "offset_noise_strength"):
        return None if is_number(value) and value >= 0 else "a number >= 0"
    return None
