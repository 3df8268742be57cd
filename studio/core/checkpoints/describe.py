"""A model card as readable lines, under the card's own field names (diffusers' names for the schedule)."""

from __future__ import annotations

import json

from ..models.card import ModelCard


def _size(n: int) -> str:
    if n < 1024:
        return f"{n:,} bytes"
    for unit in ("KiB", "MiB"):
        n /= 1024
        if n < 1024:
            return f"{n:,.1f} {unit}"
    return f"{n / 1024:,.1f} GiB"


def _classes(card: ModelCard) -> str:
    if not card.class_names:
        return "none (unconditional)"
    names = list(card.class_names)
    shown = ", ".join(names if len(names) <= 12 else names[:10] + ["...", names[-1]])
    return f"{len(names)}: {shown}"


def card_lines(card: ModelCard) -> list[str]:
    betas = card.trained_betas
    rows = [
        ("name", card.name),
        ("description", card.description or None),
        ("role", card.role),
        ("format", card.format),
        ("path", card.path or None),
        ("file_size", _size(card.file_size) if card.file_size else None),
        ("sha256", card.sha256 or None),
        ("data_kind", card.data_kind),
        ("data_shape", " x ".join(map(str, card.data_shape))),
        ("value_range", f"[{card.value_range[0]:g}, {card.value_range[1]:g}]"),
        ("class_names", _classes(card)),
        ("null_class", card.null_class),
        ("num_train_timesteps", card.num_train_timesteps),
        ("beta_schedule", None if betas else card.beta_schedule),
        ("beta_start", None if betas else f"{card.beta_start:g}"),
        ("beta_end", None if betas else f"{card.beta_end:g}"),
        ("trained_betas", f"{len(betas)} values, {min(betas):g} .. {max(betas):g}" if betas else None),
        ("prediction_type", card.prediction_type),
        ("variance_type", card.variance_type),
        ("clip_sample", str(card.clip_sample).lower()),
        ("clip_sample_range", f"{card.clip_sample_range:g}"),
        ("architecture", _architecture(card.architecture)),
        ("flags", _flags(card.architecture)),
        ("parameter_count", f"{card.parameter_count:,}"),
        ("dtype", card.dtype),
        ("code_check", card.code_check or None),
    ]
    assumed = set(card.assumed)
    width = max(len(key) for key, _ in rows)
    lines = [f"{key:<{width}}  {value}{'  (assumed)' if key in assumed else ''}"
             for key, value in rows if value is not None]
    if assumed:
        lines.append(f"{'assumed':<{width}}  {', '.join(card.assumed)} (not in the file: defaults)")
    if card.inferred:
        lines.append(f"{'inferred':<{width}}  {', '.join(card.inferred)} (decided by the weights' shapes)")
    return lines


def _flags(arch: dict) -> str | None:
    """A guided-diffusion network's flags or a denoising-diffusion-pytorch Unet's and GaussianDiffusion's arguments,
    every one, as the library spells them (the architecture line is cut)."""
    if not str(arch.get("name", "")).startswith(("guided_diffusion.", "denoising_diffusion_pytorch.")):
        return None
    return " ".join(f"{key}={json.dumps(value)}" for key, value in arch.get("config", {}).items())


def _architecture(arch: dict) -> str | None:
    if not arch:
        return None
    config = json.dumps(arch.get("config", {}), separators=(",", ":"), sort_keys=True)
    if len(config) > 160:
        config = config[:157] + "..."
    return f"{arch.get('name', '?')} {config}"
