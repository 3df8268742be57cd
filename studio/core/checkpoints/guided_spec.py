"""Which flags a guided-diffusion (or improved-diffusion) checkpoint was made with, taken in order from the sidecar
JSON beside it, the preset of its released file name, what its weights' shapes decide, and the scripts' defaults.

Every flag the weights decide is checked against what the sidecar or preset says: a contradiction is refused,
naming the flag, where it was said and what the weights hold. A flag that changes the network's answer but that
neither the weights nor a file says (the image size, the schedule, the attention heads) is refused too, with the
sidecar to write. Defaults are kept only for flags whose default nearly every model keeps; the card lists them as
assumed, and the flags the weights decided as inferred.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch

from .common import fail
from .guided_flags import DEFAULTS, STUDIO_KEYS, flags_text, number_list, read_sidecar, sidecar_path
from .guided_presets import REFUSED, preset_for
from .guided_shapes import CLASSIFIER_CHANNEL_MULT, UNET_CHANNEL_MULT, Shapes, classifier_sizes, encoder_layout, infer

SIDECAR, PRESET, WEIGHTS, DEFAULT = "sidecar", "preset", "weights", "default"
# What to write for a flag nothing said, in the example sidecar of the refusal (the scripts' own defaults)
_EXAMPLE = {"image_size": 64, "noise_schedule": "linear", "diffusion_steps": 1000, "num_heads": 4}


@dataclass(frozen=True)
class Spec:
    """The resolved flags (guided-diffusion's names) of one file and where each came from."""

    role: str                 # "denoiser" (UNetModel) or "classifier" (EncoderUNetModel)
    flags: dict               # every flag that decides the network or the diffusion
    sources: dict             # flag -> sidecar | preset | weights | default
    in_channels: int
    num_classes: int          # a denoiser's label count (0: unconditional); a classifier's classes
    studio: dict              # name, description, class_names given in the sidecar
    origin: str               # where the flags came from, in words

    @property
    def inferred(self) -> tuple[str, ...]:
        return tuple(k for k, s in self.sources.items() if s == WEIGHTS)

    @property
    def assumed(self) -> tuple[str, ...]:
        return tuple(k for k, s in self.sources.items() if s == DEFAULT)


def resolve(path: str | os.PathLike, state: Mapping[str, torch.Tensor]) -> Spec:
    path = Path(path)
    if path.name in REFUSED:
        raise fail(path, f"is {REFUSED[path.name]}, which the studio does not open")
    sidecar = read_sidecar(path) or {}
    preset = preset_for(path.name)
    given, sources = {}, {}
    if preset is not None:
        given.update(preset[1])
        sources.update(dict.fromkeys(preset[1], PRESET))
    flags = {k: v for k, v in sidecar.items() if k not in STUDIO_KEYS}
    given.update(flags)
    sources.update(dict.fromkeys(flags, SIDECAR))
    origin = _origin(path, bool(sidecar), preset)
    shapes = infer(state, path)
    said = _Said(path, given, sources, origin)
    if preset is not None and "classifier_depth" in preset[1] and shapes.role != "classifier":
        raise fail(path, f"is named like guided-diffusion's released {path.name} (a classifier) but holds a "
                         "UNetModel's weights")
    if preset is not None and "classifier_depth" not in preset[1] and shapes.role == "classifier":
        raise fail(path, f"is named like the released {path.name} (a diffusion model) but holds a classifier's "
                         "(EncoderUNetModel's) weights")
    resolved = _denoiser(said, shapes) if shapes.role == "denoiser" else _classifier(said, shapes, state)
    studio = {k: sidecar[k] for k in STUDIO_KEYS if k in sidecar}
    num_classes = (shapes.num_classes or 0) if shapes.role == "denoiser" else shapes.out_channels
    if "class_names" in studio and len(studio["class_names"]) != num_classes:
        raise fail(sidecar_path(path), f"lists {len(studio['class_names'])} class_names but the weights have "
                                       f"{num_classes} classes")
    return Spec(shapes.role, resolved, {k: said.sources[k] for k in resolved}, shapes.in_channels, num_classes,
                studio, origin)


def _origin(path: Path, has_sidecar: bool, preset) -> str:
    parts = []
    if has_sidecar:
        parts.append(f"sidecar {sidecar_path(path).name}")
    if preset is not None:
        parts.append(f"preset for {path.name} ({preset[0]})")
    parts.append("the weights' shapes")
    return ", ".join(parts)


class _Said:
    """The flags the sidecar and the preset give, and the ones taken since, with where each came from."""

    def __init__(self, path: Path, given: dict, sources: dict, origin: str):
        self.path, self.given, self.sources, self.origin = path, given, sources, origin
        self.values: dict = {}

    def take(self, flag: str, inferred=None, same=None):
        """The flag's value: as given (checked against ``inferred`` when the weights decide it), else inferred."""
        if flag in self.given and inferred is not None:
            value = self.given[flag]
            if not (same(value, inferred) if same else value == inferred):
                where = sidecar_path(self.path).name if self.sources[flag] == SIDECAR else \
                    f"the preset for {self.path.name}"
                raise fail(self.path, f"flag {flag} is {value!r} in {where} but the weights say {inferred!r}; "
                                      "the flags contradict the weights (fix or remove the flag)")
        if flag in self.given:
            self.values[flag] = self.given[flag]
        elif inferred is not None:
            self.values[flag], self.sources[flag] = inferred, WEIGHTS
        return self.values.get(flag)

    def default(self, flag: str):
        if flag in self.given:
            self.values[flag] = self.given[flag]
        else:
            self.values[flag], self.sources[flag] = DEFAULTS[flag], DEFAULT
        return self.values[flag]

    def require(self, flags: list[str]) -> None:
        missing = [f for f in flags if f not in self.values]
        if not missing:
            return
        example = {f.split(" or ")[0]: _EXAMPLE.get(f.split(" or ")[0], DEFAULTS.get(f)) for f in missing}
        beside = sidecar_path(self.path).name
        raise fail(self.path, f"guided-diffusion checkpoint whose flags {', '.join(missing)} are unknown (the "
                              f"weights do not say them and no released file has this name; flags from "
                              f"{self.origin}): write them into {beside} beside it, for example "
                              f"{flags_text(example)} (the values it was trained with)")


def _resolutions(image_size: int, attention_ds) -> str:
    return ",".join(str(image_size // ds) for ds in attention_ds)


def _same_attention(levels: int, image_size: int):
    """Two attention-resolution lists mean the same network if they put attention at the same levels."""
    rates = {2 ** level for level in range(levels)}

    def same(given, inferred) -> bool:
        given_list, inferred_list = number_list(given), number_list(inferred)
        if given_list is None or inferred_list is None:
            return False
        as_rates = lambda values: {image_size // int(v) for v in values} & rates  # noqa: E731
        return as_rates(given_list) == as_rates(inferred_list)

    return same


def _same_mult(image_size):
    """channel_mult as given ("" is the scripts' default for the image size, if it has one) against the weights'."""
    def same(given, inferred) -> bool:
        if given == "" and image_size not in UNET_CHANNEL_MULT:
            return True
        given_list = number_list(given, allow_fractions=True) if given != "" else UNET_CHANNEL_MULT[image_size]
        return given_list is not None and tuple(map(float, given_list)) == tuple(
            map(float, number_list(inferred, allow_fractions=True)))

    return same


def _denoiser(said: _Said, shapes: Shapes) -> dict:
    if shapes.out_channels not in (shapes.in_channels, 2 * shapes.in_channels):
        raise fail(said.path, f"does not fit a guided-diffusion UNetModel: {shapes.out_channels} output channels for "
                              f"{shapes.in_channels} input channels (expected as many, or twice as many for a "
                              "learned variance)")
    image_size = said.take("image_size")
    said.take("num_channels", shapes.model_channels)
    said.take("num_res_blocks", shapes.num_res_blocks)
    mult = ",".join(map(str, shapes.channel_mult))
    said.take("channel_mult", mult, same=_same_mult(image_size))
    if said.values["channel_mult"] == "":   # the default for the size, which the weights spell out
        said.values["channel_mult"] = mult
    if image_size is not None:
        said.take("attention_resolutions", _resolutions(image_size, shapes.attention_ds),
                  same=_same_attention(len(shapes.channel_mult), image_size))
    said.take("learn_sigma", shapes.out_channels == 2 * shapes.in_channels)
    said.take("class_cond", shapes.num_classes is not None)
    said.take("use_scale_shift_norm", shapes.use_scale_shift_norm)
    if shapes.resblock_updown is not None:
        said.take("resblock_updown", shapes.resblock_updown)
    else:
        said.values["resblock_updown"], said.sources["resblock_updown"] = False, WEIGHTS   # nothing to resample
    said.take("diffusion_steps")
    said.take("noise_schedule")
    heads = said.given.get("num_head_channels", -1) != -1
    if heads:
        said.take("num_head_channels")
    elif "num_heads" in said.given:
        said.take("num_heads")
        said.default("num_heads_upsample")
    said.default("use_new_attention_order")
    said.default("rescale_timesteps")
    said.default("predict_xstart")
    if not said.values["learn_sigma"]:
        said.default("sigma_small")
    needed = ["image_size", "noise_schedule", "diffusion_steps"]
    if not heads:
        needed.append("num_heads")   # or num_head_channels: the example names the first
    said.require([f if f != "num_heads" else "num_heads or num_head_channels" for f in needed
                  if f not in said.values])
    return dict(said.values)


def _classifier(said: _Said, shapes: Shapes, state) -> dict:
    if "image_size" in said.given:
        image_size = said.take("image_size")
    else:
        sizes = classifier_sizes(shapes, state, said.path)
        if len(sizes) != 1:
            said.require(["image_size"])
        image_size = said.take("image_size", sizes[0])
    layout = encoder_layout(shapes, image_size, state, said.path)
    if layout is None:
        raise fail(said.path, f"the weights do not fit a guided-diffusion classifier of image_size {image_size} (the "
                              "levels create_classifier builds for that size); the flags contradict the weights")
    levels = len(CLASSIFIER_CHANNEL_MULT[image_size])
    for flag, value in layout.items():
        same = _same_attention(levels, image_size) if flag == "classifier_attention_resolutions" else None
        said.take(flag, value, same=same)
    said.default("diffusion_steps")
    said.default("noise_schedule")
    said.default("rescale_timesteps")
    return dict(said.values)
