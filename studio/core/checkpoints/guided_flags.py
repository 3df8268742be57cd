"""The flags of OpenAI's guided-diffusion and improved-diffusion scripts, under their own names, and the sidecar
JSON that gives them for a checkpoint: ``64x64_diffusion.pt`` + ``64x64_diffusion.json``.

Their checkpoints are bare state dicts: the architecture and the diffusion are command-line flags
(``--image_size 64 --num_channels 192 ...``) that the file does not record. A sidecar holds them as one JSON
object, for example ``{"image_size": 64, "noise_schedule": "cosine", "diffusion_steps": 1000,
"num_head_channels": 64, "use_new_attention_order": true}``. A key that is not one of their flags is refused (a
typo would otherwise fall back to a default), with a suggestion. Nothing here imports guided_diffusion.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from ..checks import is_int, is_number
from .common import fail, read_json_object

# The scripts' defaults (guided-diffusion's model_and_diffusion_defaults, classifier_defaults and
# create_gaussian_diffusion): what a flag means when nobody gave it.
MODEL_DEFAULTS = {
    "image_size": 64, "num_channels": 128, "num_res_blocks": 2, "num_heads": 4, "num_heads_upsample": -1,
    "num_head_channels": -1, "attention_resolutions": "16,8", "channel_mult": "", "dropout": 0.0,
    "class_cond": False, "use_checkpoint": False, "use_scale_shift_norm": True, "resblock_updown": False,
    "use_fp16": False, "use_new_attention_order": False,
}
DIFFUSION_DEFAULTS = {
    "learn_sigma": False, "sigma_small": False, "diffusion_steps": 1000, "noise_schedule": "linear",
    "timestep_respacing": "", "use_kl": False, "predict_xstart": False, "rescale_timesteps": False,
    "rescale_learned_sigmas": False,
}
CLASSIFIER_DEFAULTS = {
    "classifier_use_fp16": False, "classifier_width": 128, "classifier_depth": 2,
    "classifier_attention_resolutions": "32,16,8", "classifier_use_scale_shift_norm": True,
    "classifier_resblock_updown": True, "classifier_pool": "attention",
}
DEFAULTS = {**MODEL_DEFAULTS, **DIFFUSION_DEFAULTS, **CLASSIFIER_DEFAULTS}
# Flags that only concern training or the scripts' own run (the studio chooses steps, precision and guidance
# itself): accepted in a sidecar so that a copied set of flags reads, and otherwise ignored.
IGNORED = ("dropout", "use_checkpoint", "use_fp16", "classifier_use_fp16", "timestep_respacing", "use_kl",
           "rescale_learned_sigmas")
# What a sidecar may add besides flags: the studio's own words for the model.
STUDIO_KEYS = ("name", "description", "class_names")
NOISE_SCHEDULES = ("linear", "cosine")
POOLS = ("attention", "adaptive", "spatial", "spatial_v2")
MAX_IMAGE_SIDE = 4096

_BOOL = {k for k, v in DEFAULTS.items() if isinstance(v, bool)}
_INT = {k for k, v in DEFAULTS.items() if is_int(v)}
_LISTS = ("attention_resolutions", "classifier_attention_resolutions", "channel_mult")


def sidecar_path(path: str | os.PathLike) -> Path:
    return Path(path).with_suffix(".json")


def is_flags_object(data: dict) -> bool:
    """A JSON object beside a state dict holds flags unless it is a studio model card (which has data_kind and
    architecture; a card without both is incomplete anyway)."""
    return "data_kind" not in data and "architecture" not in data


def read_sidecar(path: str | os.PathLike) -> dict | None:
    """The checked flags of the sidecar beside ``path`` (None when there is none)."""
    beside = sidecar_path(path)
    if not beside.is_file():
        return None
    data = read_json_object(beside, "flags file")
    return check_flags(data, beside)


def check_flags(data: dict, where) -> dict:
    """``data`` with every key a known flag (or name/description/class_names) of the right type; a
    CheckpointError naming ``where`` and the first bad key otherwise."""
    known = set(DEFAULTS) | set(STUDIO_KEYS)
    for key, value in data.items():
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise fail(where, f"unknown flag {key!r:.60}{hint}; a guided-diffusion flags file holds the scripts' "
                              "flags under their own names (image_size, num_channels, noise_schedule, "
                              "diffusion_steps, num_head_channels, classifier_depth, ...)")
        problem = _type_problem(key, value)
        if problem:
            raise fail(where, f"flag {key} must be {problem}, got {value!r:.80}")
    return dict(data)


def _type_problem(key: str, value) -> str | None:
    if key in ("name", "description"):
        return None if isinstance(value, str) and value else "a non-empty string"
    if key == "class_names":
        return None if isinstance(value, list) and all(isinstance(c, (str, int)) for c in value) \
            else "a list of names"
    if key in _BOOL:
        return None if isinstance(value, bool) else "true or false"
    if key == "image_size":
        return None if is_int(value) and 1 <= value <= MAX_IMAGE_SIDE else f"an integer from 1 to {MAX_IMAGE_SIDE}"
    if key in ("num_heads_upsample", "num_head_channels"):
        return None if is_int(value) and (value == -1 or value >= 1) else "an integer >= 1, or -1 (unset)"
    if key in _INT:
        return None if is_int(value) and value >= 1 else "an integer >= 1"
    if key == "dropout":
        return None if is_number(value) and 0 <= value < 1 else "a number in [0, 1)"
    if key == "noise_schedule":
        return None if value in NOISE_SCHEDULES else " or ".join(NOISE_SCHEDULES)
    if key == "classifier_pool":
        return None if value in POOLS else "one of " + ", ".join(POOLS)
    if key in _LISTS:
        return None if number_list(value, allow_fractions=key == "channel_mult") is not None \
            else 'a comma-separated list of positive numbers ("32,16,8") or a list of them'
    if key == "timestep_respacing":
        return None if isinstance(value, str) else 'a string ("250", "ddim25")'
    return None


def number_list(value, allow_fractions: bool = False) -> tuple | None:
    """"32,16,8" (the scripts' form) or [32, 16, 8] as a tuple; "" or [] as (); None when it is neither. With
    ``allow_fractions`` an entry may be a fraction (guided-diffusion's 512x512 channel_mult starts with 0.5)."""
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")] if value.strip() else []
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            return None
    elif isinstance(value, list) and all(is_number(v) for v in value):
        numbers = [float(v) for v in value]
    else:
        return None
    if not all(0 < n < 1e6 and (allow_fractions or n.is_integer()) for n in numbers):
        return None
    return tuple(int(n) if n.is_integer() else n for n in numbers)


def flags_text(flags: dict) -> str:
    """Flags as the one-line JSON a user would write into the sidecar."""
    import json

    return json.dumps(flags, separators=(", ", ": "))
