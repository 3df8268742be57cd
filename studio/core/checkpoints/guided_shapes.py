"""What the tensors of a guided-diffusion state dict decide about its architecture, read from their names and
shapes alone (nothing is built).

A ``UNetModel`` (the denoiser) and an ``EncoderUNetModel`` (the noise-aware classifier) name their tensors after
their modules: ``time_embed.0.weight`` is [4 C, C] for C = num_channels; ``input_blocks.0.0.weight`` is the first
convolution, [channel_mult[0] C, in_channels, 3, 3]; every level has num_res_blocks residual blocks (an attention
block after each where the level's downsampling rate is in the attention resolutions) and, but for the last level,
one downsampling block (a strided convolution ``op``, or with resblock_updown a residual block); the decoder's
``output_blocks`` mirror them with one block more per level, the last of each level but the first ending in an
upsampler. ``out.2.weight`` gives the output channels (twice the input's for a learned variance), ``label_emb``
the classes. Which flags these decide is in ``UNET_INFERRED`` and ``ENCODER_INFERRED``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

import torch

from .common import fail

UNET_INFERRED = ("num_channels", "num_res_blocks", "channel_mult", "attention_resolutions", "learn_sigma",
                 "class_cond", "use_scale_shift_norm", "resblock_updown")
ENCODER_INFERRED = ("classifier_width", "classifier_depth", "classifier_attention_resolutions",
                    "classifier_use_scale_shift_norm", "classifier_resblock_updown", "classifier_pool")
# guided-diffusion's create_classifier: the channel multipliers of each image size it builds a classifier for
CLASSIFIER_CHANNEL_MULT = {512: (0.5, 1, 1, 2, 2, 4, 4), 256: (1, 1, 2, 2, 4, 4), 128: (1, 1, 2, 3, 4),
                           64: (1, 2, 3, 4)}
# create_model's defaults by image size, and improved-diffusion's 32x32 (CIFAR-10) one
UNET_CHANNEL_MULT = {**CLASSIFIER_CHANNEL_MULT, 32: (1, 2, 2, 2)}

_BLOCK = re.compile(r"^(input_blocks|output_blocks)\.(\d+)\.(\d+)\.")


@dataclass
class Shapes:
    """What the weights say. ``role``: "denoiser" (UNetModel) or "classifier" (EncoderUNetModel). Image-size
    dependent facts are kept as downsampling rates (``attention_ds``) until the image size is known."""

    role: str
    in_channels: int
    out_channels: int                      # denoiser: C or 2C; classifier: its number of classes
    model_channels: int
    num_input_blocks: int
    num_classes: int | None = None         # a class-conditional denoiser's label count
    num_res_blocks: int | None = None      # denoiser only (a classifier's needs the image size)
    channel_mult: tuple | None = None
    attention_ds: tuple = ()
    use_scale_shift_norm: bool = True
    resblock_updown: bool | None = None    # None: no downsampling at all, so nothing says
    pool: str | None = None                # classifier only
    pool_side: int | None = None           # the attention pool's grid side (image_size / 2^(levels-1))
    blocks: dict = field(default_factory=dict)   # input/output block index -> {sub-index: kind}


def looks_guided(keys) -> bool:
    keys = set(keys)
    return "time_embed.0.weight" in keys and "input_blocks.0.0.weight" in keys


def infer(state: Mapping[str, torch.Tensor], path) -> Shapes:
    """The architecture facts the weights decide; a CheckpointError naming what is missing when they are not a
    guided-diffusion UNetModel or EncoderUNetModel."""
    if not looks_guided(state):
        some = ", ".join(list(state)[:3])
        raise fail(path, "holds no guided-diffusion UNetModel or EncoderUNetModel weights (no time_embed.0.weight "
                         f"and input_blocks.0.0.weight; it starts with {some:.120})")
    width = _shape(state, "time_embed.0.weight", path, dims=2)[1]
    first = _shape(state, "input_blocks.0.0.weight", path, dims=4)
    inputs = _blocks(state, "input_blocks")
    if "output_blocks.0.0.in_layers.0.weight" in state:
        return _unet(state, path, width, first[1], inputs)
    return _encoder(state, path, width, first[1], inputs)


def _shape(state, key: str, path, dims: int | None = None) -> tuple:
    tensor = state.get(key)
    if not isinstance(tensor, torch.Tensor):
        raise fail(path, f"does not fit a guided-diffusion network: it lacks {key}")
    if dims is not None and tensor.dim() != dims:
        raise fail(path, f"does not fit a guided-diffusion network: {key} has shape {list(tensor.shape)}")
    return tuple(tensor.shape)


def _blocks(state, prefix: str) -> dict[int, dict[int, str]]:
    """block index -> {sub-module index: "res" | "attention" | "conv" (Upsample) | "op" (Downsample) | "other"}"""
    found: dict[int, dict[int, str]] = {}
    for key in state:
        match = _BLOCK.match(key)
        if not match or match.group(1) != prefix:
            continue
        block, sub = int(match.group(2)), int(match.group(3))
        rest = key[match.end():]
        kind = ("res" if rest.startswith("in_layers.") else "attention" if rest.startswith("qkv.")
                else "conv" if rest.startswith("conv.") else "op" if rest.startswith("op.") else None)
        subs = found.setdefault(block, {})
        if kind is not None:
            subs[sub] = kind
        else:
            subs.setdefault(sub, "other")
    return found


def _contiguous(blocks: dict, what: str, path) -> int:
    count = len(blocks)
    if sorted(blocks) != list(range(count)):
        raise fail(path, f"does not fit a guided-diffusion network: its {what} are not numbered 0..{count - 1}")
    return count


def _res_out(state, prefix: str, path) -> int:
    return _shape(state, f"{prefix}.out_layers.3.weight", path, dims=4)[0]


def _mult(channels: int, width: int):
    value = channels / width
    return int(value) if value.is_integer() else value


def _unet(state, path, width: int, in_channels: int, inputs: dict) -> Shapes:
    num_inputs = _contiguous(inputs, "input blocks", path)
    outputs = _blocks(state, "output_blocks")
    num_outputs = _contiguous(outputs, "output blocks", path)
    # the first output block that ends in an upsampler is the last of its level: num_res_blocks + 1 blocks each
    upsampler_at = [k for k in range(num_outputs)
                    if any(kind in ("conv", "res") for sub, kind in outputs[k].items() if sub >= 1)]
    res_blocks = upsampler_at[0] if upsampler_at else num_outputs - 1
    per_level = res_blocks + 1
    levels = num_outputs // per_level
    if res_blocks < 1 or num_outputs % per_level or num_inputs != num_outputs:
        raise fail(path, f"does not fit a guided-diffusion UNetModel: {num_inputs} input blocks and {num_outputs} "
                         "output blocks do not make levels of equal depth")
    mult, attention_ds = [], []
    for level in range(levels):
        start = 1 + level * per_level
        for block in range(start, start + res_blocks):
            if inputs[block].get(0) != "res":
                raise fail(path, f"does not fit a guided-diffusion UNetModel: input block {block} is no residual "
                                 "block")
        mult.append(_mult(_res_out(state, f"input_blocks.{start}.0", path), width))
        if inputs[start].get(1) == "attention":
            attention_ds.append(2 ** level)
    updown = None
    if levels > 1:
        down = inputs[per_level].get(0)
        updown = down == "res"
        if down not in ("res", "op"):
            raise fail(path, f"does not fit a guided-diffusion UNetModel: input block {per_level} is no "
                             "downsampling block")
    out_shape = _shape(state, "out.2.weight", path, dims=4)
    emb = _shape(state, "input_blocks.1.0.emb_layers.1.weight", path, dims=2)[0]
    label = state.get("label_emb.weight")
    return Shapes(role="denoiser", in_channels=in_channels, out_channels=out_shape[0], model_channels=width,
                  num_input_blocks=num_inputs, num_res_blocks=res_blocks, channel_mult=tuple(mult),
                  attention_ds=tuple(attention_ds),
                  use_scale_shift_norm=emb == 2 * _res_out(state, "input_blocks.1.0", path),
                  resblock_updown=updown,
                  num_classes=int(label.shape[0]) if isinstance(label, torch.Tensor) and label.dim() == 2 else None,
                  blocks=inputs)


def _encoder(state, path, width: int, in_channels: int, inputs: dict) -> Shapes:
    num_inputs = _contiguous(inputs, "input blocks", path)
    emb = _shape(state, "input_blocks.1.0.emb_layers.1.weight", path, dims=2)[0]
    shapes = Shapes(role="classifier", in_channels=in_channels, out_channels=0, model_channels=width,
                    num_input_blocks=num_inputs, use_scale_shift_norm=emb == 2 * _res_out(state, "input_blocks.1.0",
                                                                                          path),
                    blocks=inputs)
    if "out.2.positional_embedding" in state:
        shapes.pool = "attention"
        positions = _shape(state, "out.2.positional_embedding", path, dims=2)[1] - 1
        side = round(positions ** 0.5)
        shapes.pool_side = side if side * side == positions else None
        shapes.out_channels = _shape(state, "out.2.c_proj.weight", path)[0]
    elif "out.3.weight" in state and state["out.3.weight"].dim() == 4:
        shapes.pool, shapes.out_channels = "adaptive", state["out.3.weight"].shape[0]
    elif "out.3.weight" in state:
        shapes.pool, shapes.out_channels = "spatial_v2", state["out.3.weight"].shape[0]
    elif "out.2.weight" in state and state["out.2.weight"].dim() == 2:
        shapes.pool, shapes.out_channels = "spatial", state["out.2.weight"].shape[0]
    else:
        raise fail(path, "does not fit a guided-diffusion network: neither a UNetModel (no output_blocks) nor an "
                         "EncoderUNetModel (no attention, adaptive or spatial pooling head under out.)")
    return shapes


def encoder_layout(shapes: Shapes, image_size: int, state, path) -> dict | None:
    """The classifier flags the weights decide once the image size is known (it fixes the levels, as
    guided-diffusion's create_classifier does); None when the weights do not fit that size."""
    mult = CLASSIFIER_CHANNEL_MULT.get(image_size)
    if mult is None:
        return None
    levels = len(mult)
    if shapes.num_input_blocks % levels:
        return None
    depth = shapes.num_input_blocks // levels - 1
    if depth < 1:
        return None
    attention_ds, updown = [], None
    for level in range(levels):
        start = 1 + level * (depth + 1)
        for block in range(start, start + depth):
            if shapes.blocks.get(block, {}).get(0) != "res":
                return None
            if _res_out(state, f"input_blocks.{block}.0", path) != int(mult[level] * shapes.model_channels):
                return None
        if shapes.blocks[start].get(1) == "attention":
            attention_ds.append(2 ** level)
        if level < levels - 1:
            down = shapes.blocks.get(start + depth, {}).get(0)
            if down not in ("res", "op") or (updown is not None and updown != (down == "res")):
                return None
            updown = down == "res"
    if shapes.pool == "attention" and shapes.pool_side != image_size // 2 ** (levels - 1):
        return None
    return {"classifier_width": shapes.model_channels, "classifier_depth": depth,
            "classifier_attention_resolutions": ",".join(str(image_size // ds) for ds in attention_ds),
            "classifier_use_scale_shift_norm": shapes.use_scale_shift_norm,
            "classifier_resblock_updown": bool(updown), "classifier_pool": shapes.pool}


def classifier_sizes(shapes: Shapes, state, path) -> list[int]:
    """The image sizes create_classifier builds that these weights fit."""
    return [size for size in CLASSIFIER_CHANNEL_MULT if encoder_layout(shapes, size, state, path) is not None]
