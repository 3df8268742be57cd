"""OpenAI guided-diffusion and improved-diffusion checkpoints: a plain state dict of the library's ``UNetModel``
(a denoiser) or ``EncoderUNetModel`` (a noise-aware classifier for classifier guidance), ``64x64_diffusion.pt``,
with its flags from a sidecar ``64x64_diffusion.json``, the released file's preset, or its weights' shapes
(``guided_spec``).

The card follows the flags as ``create_gaussian_diffusion`` does: ``noise_schedule`` linear is Ho et al.'s linear
betas stretched to T (1e-4 and 0.02 times 1000 / T), cosine is Nichol & Dhariwal's (the studio's cosine betas are
the library's, number for number); ``learn_sigma`` means improved-diffusion's learned range, else ``sigma_small``
picks fixed small over fixed large; ``predict_xstart`` means an x0 model. The network is called with the original
timestep, times 1000 / T when the model was trained with ``rescale_timesteps``, as the library's spaced diffusion
calls it. The weights are read with torch's weights-only loader; the guided-diffusion-sdk package (module
``guided_diffusion``) is imported only to build the network.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from ..models.card import ModelCard
from ..memory_budget import available_bytes, size_text
from .build_guard import checked_build
from .card_json import card_from_json
from .common import complete_card, fail, fit_weights, one_line, probe_network, state_summary
from .guided_flags import number_list
from .guided_shapes import CLASSIFIER_CHANNEL_MULT
from .guided_spec import Spec, resolve
from .state_dict_format import load_state

FORMAT = "guided_diffusion"
UNET = "guided_diffusion.UNetModel"
ENCODER = "guided_diffusion.EncoderUNetModel"
INSTALL_HINT = "pip install -e '.[guided]' (the guided-diffusion-sdk package)"
CLASSIFIER_HEAD_CHANNELS = 64   # create_classifier's fixed attention head width


def read_card(path: str | os.PathLike) -> ModelCard:
    card, _, _ = _describe(path)
    return card


def load(path: str | os.PathLike) -> tuple[torch.nn.Module, ModelCard]:
    card, spec, state = _describe(path)
    _check_attention_memory(spec, path)
    library = _library(path)
    build, wrap = (_unet_builder(library, spec), _denoiser_network) if spec.role == "denoiser" else \
        (_encoder_builder(library, spec), _classifier_network)
    what = f"the {card.architecture['name']} its flags describe ({spec.origin})"
    module = checked_build(lambda: _built(build, path), card, state, path, what,
                           forward=lambda m: wrap(m, spec))
    fit_weights(module, state, path, what)
    network = wrap(module, spec).eval()
    probe_network(network, card, path)
    return network, card


def _describe(path) -> tuple[ModelCard, Spec, dict]:
    path = Path(path)
    state = load_state(path)
    spec = resolve(path, state)
    count, dtype = state_summary(state)
    card = complete_card(_card(path, spec), format=FORMAT, path=path, weights_file=path, parameter_count=count,
                         dtype=dtype)
    return card, spec, state


def _card(path: Path, spec: Spec) -> ModelCard:
    flags = spec.flags
    steps = flags["diffusion_steps"]
    if flags["noise_schedule"] == "linear":
        scale = 1000 / steps   # as get_named_beta_schedule stretches Ho et al.'s betas to any T
        schedule = {"beta_schedule": "linear", "beta_start": scale * 0.0001, "beta_end": scale * 0.02}
    else:
        schedule = {"beta_schedule": "squaredcos_cap_v2", "beta_start": 0.0001, "beta_end": 0.02}   # unused
    if spec.role == "denoiser":
        variance = "learned_range" if flags["learn_sigma"] else \
            "fixed_small" if flags.get("sigma_small") else "fixed_large"
        prediction = "sample" if flags.get("predict_xstart") else "epsilon"
        network = UNET
        library = "improved-diffusion" if "improved-diffusion" in spec.origin else "guided-diffusion"
        what = f"OpenAI {library} UNetModel"
    else:
        variance, prediction, network = "fixed_small", "epsilon", ENCODER
        what = "OpenAI guided-diffusion noise-aware classifier (EncoderUNetModel)"
    size = flags["image_size"]
    data = {
        "name": spec.studio.get("name", path.stem),
        "description": spec.studio.get("description", f"{what}; flags from {spec.origin}"),
        "role": spec.role,
        "data_kind": "image",
        "data_shape": [spec.in_channels, size, size],
        "value_range": [-1.0, 1.0],   # the library's image loader maps pixels to [-1, 1]
        "class_names": spec.studio.get("class_names", [str(k) for k in range(spec.num_classes)]),
        "num_train_timesteps": steps,
        **schedule,
        "prediction_type": prediction,
        "variance_type": variance,
        "clip_sample": True,          # the sampling scripts' clip_denoised
        "clip_sample_range": 1.0,
        "architecture": {"name": network, "config": {**flags, "in_channels": spec.in_channels,
                                                     "num_classes": spec.num_classes}},
        "assumed": list(spec.assumed),
        "inferred": list(spec.inferred),
    }
    return card_from_json(data, path)


def _check_attention_memory(spec: Spec, path) -> None:
    """The attention scores of one sample (heads x positions^2, float32, about three copies as the library's attention
    makes them) must fit in memory. The build guard measures module outputs, not these, and ``image_size`` is the one
    thing a sidecar says that the weights cannot check: a tiny file claiming attention over a 4096 x 4096 image would
    otherwise ask for petabytes."""
    flags, size = spec.flags, spec.flags["image_size"]
    if spec.role == "denoiser":
        key, width, levels = "attention_resolutions", flags["num_channels"], number_list(flags["channel_mult"], True)
        head_channels = flags.get("num_head_channels", -1)
        heads = max(flags.get("num_heads", 1), flags.get("num_heads_upsample", -1))
    else:
        key, width = "classifier_attention_resolutions", flags["classifier_width"]
        levels, head_channels, heads = CLASSIFIER_CHANNEL_MULT[size], CLASSIFIER_HEAD_CHANNELS, 1
    deepest = 2 ** (len(levels) - 1)                     # the middle block always attends
    rates = {rate for rate in _attention_rates(flags, key) if rate <= deepest} | {deepest}
    widest = int(max(levels) * width)
    if head_channels != -1:
        heads = max(1, widest // head_channels)
    positions = max((size // rate) ** 2 for rate in rates)
    needed = 3 * 4 * heads * positions ** 2
    if needed > available_bytes():
        raise fail(path, f"refused: image_size {size} puts attention over {positions:,} positions; the scores of one "
                         f"sample take about {size_text(needed)}, more than the {size_text(available_bytes())} this "
                         "machine has available")


# --- the library's networks ----------------------------------------------------------------------------------------
def _library(path):
    try:
        with warnings.catch_warnings():   # its nn.py uses torch.cuda.amp decorators that torch deprecates
            warnings.simplefilter("ignore", FutureWarning)
            from guided_diffusion import unet
    except ImportError:
        raise fail(path, f"opening a guided-diffusion checkpoint needs the guided_diffusion module: {INSTALL_HINT}") \
            from None
    return unet


def _built(build, path) -> torch.nn.Module:
    try:
        return build()
    except (AssertionError, ValueError, TypeError, KeyError, ZeroDivisionError, NotImplementedError) as exc:
        raise fail(path, f"the flags do not describe a network the library builds: {one_line(exc)}") from None


def _attention_rates(flags: dict, key: str) -> tuple[int, ...]:
    return tuple(flags["image_size"] // int(r) for r in number_list(flags[key]))


def _unet_builder(library, spec: Spec):
    flags = spec.flags
    kwargs = dict(
        image_size=flags["image_size"], in_channels=spec.in_channels, model_channels=flags["num_channels"],
        out_channels=spec.in_channels * (2 if flags["learn_sigma"] else 1), num_res_blocks=flags["num_res_blocks"],
        attention_resolutions=_attention_rates(flags, "attention_resolutions"),
        channel_mult=number_list(flags["channel_mult"], allow_fractions=True),
        num_classes=spec.num_classes or None, use_scale_shift_norm=flags["use_scale_shift_norm"],
        resblock_updown=flags["resblock_updown"], use_new_attention_order=flags["use_new_attention_order"],
        num_heads=flags.get("num_heads", 1), num_head_channels=flags.get("num_head_channels", -1),
        num_heads_upsample=flags.get("num_heads_upsample", -1))
    return lambda: library.UNetModel(**kwargs)


def _encoder_builder(library, spec: Spec):
    flags = spec.flags
    size = flags["image_size"]
    kwargs = dict(
        image_size=size, in_channels=spec.in_channels, model_channels=flags["classifier_width"],
        out_channels=spec.num_classes, num_res_blocks=flags["classifier_depth"],
        attention_resolutions=_attention_rates(flags, "classifier_attention_resolutions"),
        channel_mult=CLASSIFIER_CHANNEL_MULT[size], num_head_channels=CLASSIFIER_HEAD_CHANNELS,
        use_scale_shift_norm=flags["classifier_use_scale_shift_norm"],
        resblock_updown=flags["classifier_resblock_updown"], pool=flags["classifier_pool"])
    return lambda: library.EncoderUNetModel(**kwargs)


def _timestep_scale(spec: Spec) -> float | None:
    return 1000.0 / spec.flags["diffusion_steps"] if spec.flags.get("rescale_timesteps") else None


def _denoiser_network(module, spec: Spec) -> "GuidedUNetNetwork":
    return GuidedUNetNetwork(module, _timestep_scale(spec))


def _classifier_network(module, spec: Spec) -> "GuidedClassifierNetwork":
    return GuidedClassifierNetwork(module, _timestep_scale(spec))


class _HalfTorso(torch.nn.Module):
    """Moves like any module, but a half-precision ``to`` converts only the convolutions of the network's torso, as
    the library's own ``use_fp16`` does (its embeddings, norms and output head stay float32, and it casts between
    them itself); float32 undoes it."""

    def __init__(self, inner: torch.nn.Module, timestep_scale: float | None):
        super().__init__()
        self.inner = inner
        self.timestep_scale = timestep_scale

    def to(self, *args, **kwargs):
        device, dtype, non_blocking, memory_format = torch._C._nn._parse_to(*args, **kwargs)
        moved = {"device": device, "non_blocking": non_blocking}
        if memory_format is not None:
            moved["memory_format"] = memory_format
        super().to(**moved)
        if dtype is not None:
            super().to(dtype=torch.float32)
            if dtype != torch.float32:
                torso = [getattr(self.inner, name) for name in ("input_blocks", "middle_block", "output_blocks")
                         if hasattr(self.inner, name)]
                for part in torso:
                    for layer in part.modules():
                        if isinstance(layer, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)):
                            layer.to(dtype=dtype)
            self.inner.dtype = dtype
        return self

    def timesteps(self, t: torch.Tensor) -> torch.Tensor:
        return t if self.timestep_scale is None else t.float() * self.timestep_scale


class GuidedUNetNetwork(_HalfTorso):
    """(x, t, labels or None) -> the UNetModel's output (C channels, or 2C with a learned variance)."""

    def forward(self, x, t, class_labels=None):
        return self.inner(x.float(), self.timesteps(t), y=class_labels)


class GuidedClassifierNetwork(_HalfTorso):
    """log p(y | x_t) per sample from the EncoderUNetModel's logits, as guided-diffusion's classifier_sample.py
    takes it: log_softmax over the classes, the label's entry."""

    def log_prob(self, x, t, labels):
        logits = self.inner(x.float(), self.timesteps(t))
        return torch.log_softmax(logits, dim=-1)[torch.arange(len(logits), device=logits.device), labels.view(-1)]

    def forward(self, x, t, labels=None):
        return self.inner(x.float(), self.timesteps(t))
