"""A model card read from a file: every field's JSON type checked, required fields present, defaults recorded.

ModelCard itself checks meaning (T >= 1, betas in (0, 1), known names); this layer checks shape first so a
card with a string where a number belongs gets a message about that field, and it names the file.
"""

from __future__ import annotations

import difflib
from dataclasses import fields

from ..checks import is_int, is_number
from ..errors import SettingsError
from ..models.card import CARD_VERSION, ModelCard
from .common import fail

# field -> (test, what the field must be)
FIELD_TYPES = {
    "name": (lambda v: isinstance(v, str), "a string"),
    "role": (lambda v: isinstance(v, str), "a string"),
    "data_kind": (lambda v: isinstance(v, str), "a string"),
    "data_shape": (lambda v: isinstance(v, list) and all(is_int(d) for d in v), "a list of integers"),
    "value_range": (lambda v: isinstance(v, list) and len(v) == 2 and all(is_number(d) for d in v),
                    "a list of two numbers [low, high]"),
    "class_names": (lambda v: isinstance(v, list) and all(isinstance(c, (str, int)) for c in v), "a list of names"),
    "null_class": (lambda v: v is None or is_int(v), "an integer or null"),
    "num_train_timesteps": (is_int, "an integer"),
    "beta_schedule": (lambda v: isinstance(v, str), "a string"),
    "beta_start": (is_number, "a number"),
    "beta_end": (is_number, "a number"),
    "trained_betas": (lambda v: v is None or (isinstance(v, list) and all(is_number(b) for b in v)),
                      "a list of numbers or null"),
    "prediction_type": (lambda v: isinstance(v, str), "a string"),
    "variance_type": (lambda v: isinstance(v, str), "a string"),
    "clip_sample": (lambda v: isinstance(v, bool), "true or false"),
    "clip_sample_range": (is_number, "a number"),
    "format": (lambda v: isinstance(v, str), "a string"),
    "architecture": (lambda v: isinstance(v, dict), "a JSON object"),
    "parameter_count": (is_int, "an integer"),
    "dtype": (lambda v: isinstance(v, str), "a string"),
    "file_size": (is_int, "an integer"),
    "sha256": (lambda v: isinstance(v, str), "a string"),
    "path": (lambda v: isinstance(v, str), "a string"),
    "assumed": (lambda v: isinstance(v, list) and all(isinstance(a, str) for a in v), "a list of field names"),
    "inferred": (lambda v: isinstance(v, list) and all(isinstance(a, str) for a in v), "a list of names"),
    "description": (lambda v: isinstance(v, str), "a string"),
    "card_version": (is_int, "an integer"),
}

REQUIRED = ("name", "data_kind", "data_shape")
# Fields with a diffusers default: a card may leave them out, and the card then lists them as assumed.
DEFAULTED = ("value_range", "num_train_timesteps", "beta_schedule", "beta_start", "beta_end",
             "prediction_type", "variance_type", "clip_sample", "clip_sample_range")
_RECIPE = ("beta_schedule", "beta_start", "beta_end")


def card_from_json(data: dict, path, *, require_architecture: bool = False) -> ModelCard:
    """A ModelCard from the card JSON found in ``path``; every problem is a CheckpointError naming the file."""
    required = REQUIRED + (("architecture",) if require_architecture else ())
    missing = [name for name in required if name not in data]
    if missing:
        raise fail(path, f"model card is missing {', '.join(missing)}")
    known = {f.name for f in fields(ModelCard)}
    unknown = [name for name in data if name not in known]
    if unknown:  # most often a typo, which would otherwise silently fall back to a default
        close = difflib.get_close_matches(unknown[0], known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise fail(path, f"model card has unknown field {unknown[0]}{hint}")
    for name, value in data.items():
        check = FIELD_TYPES.get(name)
        if check is not None and not check[0](value):
            raise fail(path, f"model card field {name} must be {check[1]}, got {value!r:.80}")
    version = data.get("card_version", CARD_VERSION)
    if version > CARD_VERSION:
        raise fail(path, f"model card version {version} is newer than this studio reads ({CARD_VERSION}); "
                         "update Sampling Studio")
    if require_architecture:
        arch = data["architecture"]
        if not isinstance(arch.get("name"), str) or not isinstance(arch.get("config", {}), dict):
            raise fail(path, 'model card field architecture must be {"name": <network>, "config": {...}}')
    data = dict(data)
    if data.get("trained_betas") is not None and "num_train_timesteps" not in data:
        data["num_train_timesteps"] = len(data["trained_betas"])  # diffusers takes T from trained_betas
    irrelevant = _RECIPE if data.get("trained_betas") is not None else ()
    assumed = [f for f in DEFAULTED if f not in data and f not in irrelevant]
    data["assumed"] = list(dict.fromkeys(list(data.get("assumed", [])) + assumed))
    try:
        return ModelCard.from_dict(data)
    except (SettingsError, TypeError, ValueError) as exc:
        text = str(exc)
        raise fail(path, text if text.startswith("model card") else f"model card: {text}") from None
