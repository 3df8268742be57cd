"""diffusers folders holding a UNet2DModel (unconditional or class-conditional):

- a pipeline folder: model_index.json, unet/ (config.json + weights), scheduler/scheduler_config.json;
- a model folder: config.json + weights, with scheduler_config.json beside it (or, for a pipeline's unet/,
  in ../scheduler/). Without one, the schedule is diffusers' defaults and the card lists those fields as assumed.

The card is read from the JSON alone (no diffusers import); diffusers is imported only to build the network, and
then only its UNet2DModel (diffusers_classes.py: no pipelines, schedulers or loaders).
An optional ``studio_card.json`` in the folder adds what diffusers does not record (name, class names, ...).
Weights are read with safetensors or torch's weights-only unpickler, never with a full pickle.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..checks import is_int
from ..limits import MAX_CLASSES, MAX_VALUES_PER_SAMPLE, count_text
from ..models.card import ModelCard
from .build_guard import checked_build
from .card_json import card_from_json
from .common import (complete_card, fail, fit_weights, load_pickled_weights, one_line, read_json_object,
                     state_summary, tensor_dict)
from .diffusers_classes import unet2d_class

UNET_CLASS = "UNet2DModel"
INSTALL_HINT = "pip install diffusers (the studio's diffusers extra)"
SCHEDULER_FIELDS = ("num_train_timesteps", "beta_schedule", "beta_start", "beta_end", "trained_betas",
                    "prediction_type", "variance_type", "clip_sample", "clip_sample_range")
# diffusers variances the studio computes the same way under its own name
_VARIANCE_ALIASES = {"fixed_small_log": "fixed_small", "fixed_large_log": "fixed_large"}
OVERRIDE_FILE = "studio_card.json"
_OVERRIDABLE = ("name", "description", "class_names", "null_class", "value_range", "clip_sample", "clip_sample_range")
_WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


@dataclass(frozen=True)
class Layout:
    root: Path                      # the folder the user opened
    unet_dir: Path                  # the folder holding config.json and the weights
    scheduler_config: Path | None   # None: diffusers' defaults, listed as assumed
    pipeline_class: str | None


def is_diffusers_folder(path: Path) -> bool:
    return (path / "model_index.json").is_file() or (path / "config.json").is_file()


def layout(path: str | os.PathLike) -> Layout:
    root = Path(path)
    if (root / "model_index.json").is_file():
        index = read_json_object(root / "model_index.json", "model_index.json")
        entry = index.get("unet")
        if not (isinstance(entry, list) and len(entry) == 2):
            raise fail(root / "model_index.json", "names no unet component; the studio opens pipelines "
                                                  f"built on a {UNET_CLASS}")
        if entry[1] != UNET_CLASS:
            raise fail(root / "model_index.json", f"names unet class {entry[1]!r:.80}, which the studio cannot open "
                                                  f"(it opens diffusers' {UNET_CLASS})")
        if not (root / "unet" / "config.json").is_file():
            raise fail(root, "pipeline folder without unet/config.json")
        scheduler = root / "scheduler" / "scheduler_config.json"
        pipeline = index.get("_class_name")
        return Layout(root, root / "unet", scheduler if scheduler.is_file() else None,
                      pipeline[:200] if isinstance(pipeline, str) else None)
    if (root / "config.json").is_file():
        beside = root / "scheduler_config.json"
        sibling = root.parent / "scheduler" / "scheduler_config.json"  # a pipeline's unet/ opened on its own
        scheduler = beside if beside.is_file() else sibling if sibling.is_file() else None
        return Layout(root, root, scheduler, None)
    raise fail(root, "folder has no model_index.json (a diffusers pipeline) or config.json (a diffusers model)")


def weights_file(unet_dir: Path) -> Path:
    for name in _WEIGHT_NAMES:
        if (unet_dir / name).is_file():
            return unet_dir / name
    variants = sorted(unet_dir.glob("diffusion_pytorch_model.*.safetensors")) + sorted(
        unet_dir.glob("diffusion_pytorch_model.*.bin"))
    variants = [v for v in variants if ".index." not in v.name]
    if variants:
        return variants[0]
    if any(unet_dir.glob("diffusion_pytorch_model*.index.json")):
        raise fail(unet_dir, "holds sharded weights, which the studio does not open; save the UNet unsharded")
    raise fail(unet_dir, "no weights file (diffusion_pytorch_model.safetensors or diffusion_pytorch_model.bin)")


def repo_name(root: Path) -> str:
    """google/ddpm-cifar10-32 for a hub-cache snapshot, else the folder's name."""
    parts = root.resolve().parts
    if len(parts) >= 3 and parts[-2] == "snapshots" and parts[-3].startswith("models--"):
        return parts[-3].removeprefix("models--").replace("--", "/")
    return root.resolve().name


def _schedule(layout_: Layout, learned: bool) -> tuple[dict, list[str]]:
    """Card fields from scheduler_config.json (same names) and the ones that were not there."""
    source = read_json_object(layout_.scheduler_config, "scheduler config") if layout_.scheduler_config else {}
    fields = {k: source[k] for k in SCHEDULER_FIELDS if source.get(k) is not None}
    where = layout_.scheduler_config or layout_.root
    if source.get("rescale_betas_zero_snr"):
        raise fail(where, "rescale_betas_zero_snr is set; the studio does not support zero-terminal-SNR schedules")
    if isinstance(fields.get("variance_type"), str):  # any other type: the card check below names it
        fields["variance_type"] = _VARIANCE_ALIASES.get(fields["variance_type"], fields["variance_type"])
    if learned and fields.get("variance_type", "learned_range") not in ("learned", "learned_range"):
        raise fail(where, f"variance_type is {fields['variance_type']!r} but the UNet outputs twice its input "
                          "channels (a learned variance); expected learned or learned_range")
    if not learned and fields.get("variance_type") in ("learned", "learned_range"):
        raise fail(where, f"variance_type is {fields['variance_type']!r} but the UNet's out_channels equal its "
                          "in_channels; a learned variance needs twice as many")
    if fields.get("variance_type") == "learned":
        # diffusers reads a "learned" output as the variance itself; the studio's "learned" is improved-diffusion's
        # log-variance. Opening it under that name would sample with the wrong noise, so say so instead.
        raise fail(where, "variance_type 'learned' means the variance itself in diffusers but the log-variance "
                          "in the studio (improved-diffusion); only learned_range is opened from diffusers")
    if learned and "variance_type" not in fields:
        fields["variance_type"] = "learned_range"  # improved-diffusion's choice; listed as assumed below
    # Validate against the scheduler file so its problems name it.
    card_from_json({"name": "schedule", "data_kind": "vector", "data_shape": [1], **fields}, where)
    assumed = [k for k in SCHEDULER_FIELDS if k not in source or source.get(k) is None]
    if fields.get("trained_betas") is not None:
        assumed = [k for k in assumed if k not in ("beta_schedule", "beta_start", "beta_end", "num_train_timesteps")]
    else:
        assumed.remove("trained_betas")
    return fields, assumed


def _unet_config(layout_: Layout) -> dict:
    config_path = layout_.unet_dir / "config.json"
    config = read_json_object(config_path, "config.json")
    cls = config.get("_class_name")
    if cls != UNET_CLASS:
        named = f"names class {cls!r}" if cls else "names no _class_name"
        raise fail(config_path, f"{named}; the studio opens diffusers' {UNET_CLASS} only")
    return config


def read_card(path: str | os.PathLike) -> ModelCard:
    card, _, _ = _card_and_config(path)
    return card


def _card_and_config(path) -> tuple[ModelCard, dict, Layout]:
    lay = layout(path)
    config = _unet_config(lay)
    config_path = lay.unet_dir / "config.json"
    in_ch, out_ch = config.get("in_channels", 3), config.get("out_channels", 3)
    size = config.get("sample_size")
    side = [size, size] if is_int(size) else size
    if not (isinstance(side, list) and len(side) == 2 and all(is_int(s) and s > 0 for s in side)):
        raise fail(config_path, f"sample_size must be an image side or [height, width], got {size!r:.80}")
    if not is_int(in_ch) or in_ch < 1 or not is_int(out_ch) or out_ch not in (in_ch, 2 * in_ch):
        raise fail(config_path, f"out_channels ({out_ch!r:.40}) must equal in_channels ({in_ch!r:.40}), or twice it "
                                "for a learned variance")
    values = in_ch * side[0] * side[1]
    if values > MAX_VALUES_PER_SAMPLE:
        raise fail(config_path, f"in_channels {in_ch} x sample_size {side[0]} x {side[1]} is {count_text(values)} "
                                f"values per sample; the studio samples at most {MAX_VALUES_PER_SAMPLE:,}")
    if config.get("class_embed_type") is not None:
        raise fail(config_path, f"class_embed_type {config['class_embed_type']!r:.80} is not supported; the studio "
                                "opens class-conditional UNets with an embedding table (num_class_embeds)")
    num_classes = config.get("num_class_embeds") or 0
    if not is_int(num_classes) or not 0 <= num_classes <= MAX_CLASSES:
        raise fail(config_path, f"num_class_embeds must be a number of classes from 0 to {MAX_CLASSES:,}, "
                                f"got {num_classes!r:.40}")
    schedule, assumed = _schedule(lay, learned=out_ch == 2 * in_ch)
    in_pipeline = lay.root.name == "unet" and (lay.root.parent / "model_index.json").is_file()
    data = {
        "name": repo_name(lay.root.parent if in_pipeline else lay.root),
        "description": f"diffusers {lay.pipeline_class or UNET_CLASS} folder",
        "data_kind": "image",
        "data_shape": [in_ch, *side],
        "value_range": [-1.0, 1.0],  # diffusers pipelines map images to [-1, 1]
        "class_names": [str(k) for k in range(num_classes)],
        "architecture": {"name": f"diffusers.{UNET_CLASS}", "config": config},
        **schedule,
    }
    assumed = ["value_range", *assumed]
    override_path = lay.root / OVERRIDE_FILE
    if override_path.is_file():
        override = read_json_object(override_path, "studio card")
        unknown = sorted(set(override) - set(_OVERRIDABLE))
        if unknown:
            raise fail(override_path, f"cannot set {', '.join(unknown)}; it may set {', '.join(_OVERRIDABLE)}")
        if "class_names" in override and isinstance(override["class_names"], list) \
                and len(override["class_names"]) != num_classes:
            raise fail(override_path, f"lists {len(override['class_names'])} class_names but the UNet has "
                                      f"num_class_embeds = {num_classes}")
        data.update(override)
        assumed = [a for a in assumed if a not in override]
    data["assumed"] = assumed
    card = card_from_json(data, override_path if override_path.is_file() else lay.root)
    weights = weights_file(lay.unet_dir)
    count, dtype = _weights_summary(weights)
    card = complete_card(card, format="diffusers", path=lay.root, weights_file=weights,
                         parameter_count=count, dtype=dtype)
    return card, config, lay


def _weights_summary(weights: Path) -> tuple[int, str]:
    if weights.suffix == ".safetensors":
        from .studio_format import header_summary, read_safetensors_header

        return header_summary(read_safetensors_header(weights))
    return state_summary(_load_state(weights))


def _load_state(weights: Path) -> dict[str, torch.Tensor]:
    if weights.suffix == ".safetensors":
        from .studio_format import load_tensors, read_safetensors_header

        read_safetensors_header(weights)
        return load_tensors(weights)
    return tensor_dict(load_pickled_weights(weights), weights)


class DiffusersUNetNetwork(torch.nn.Module):
    """(x, t, labels or None) -> unet(x, t, class_labels=labels).sample"""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, x, t, class_labels=None):
        return self.unet(x, t, class_labels=class_labels).sample


def load(path: str | os.PathLike) -> tuple[torch.nn.Module, ModelCard]:
    card, config, lay = _card_and_config(path)
    try:
        UNet2DModel = unet2d_class()   # diffusers' own class, without the rest of diffusers (diffusers_classes.py)
    except ImportError:
        raise fail(path, f"opening a diffusers folder needs the diffusers package: {INSTALL_HINT}") from None
    config_path = lay.unet_dir / "config.json"
    weights = weights_file(lay.unet_dir)
    state = _load_state(weights)
    what = f"the {UNET_CLASS} in config.json"

    def build():
        try:
            return UNet2DModel.from_config(config)
        except Exception as exc:  # diffusers raises ValueError, TypeError or KeyError for a config it cannot build
            raise fail(config_path, f"does not describe a valid {UNET_CLASS}: {one_line(exc)}") from None

    def fix_keys(unet) -> None:
        if hasattr(unet, "_fix_state_dict_keys_on_load"):  # old checkpoints name attention weights query/key/value
            unet._fix_state_dict_keys_on_load(state)

    unet = checked_build(build, card, state, weights, what, forward=DiffusersUNetNetwork, inspect=fix_keys)
    fit_weights(unet, state, weights, what)
    return DiffusersUNetNetwork(unet).eval(), card
