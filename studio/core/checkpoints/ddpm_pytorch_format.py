"""lucidrains' denoising-diffusion-pytorch checkpoints: the Trainer's ``model-N.pt`` (or a bare GaussianDiffusion
state dict), its EMA weights by default, with what the file cannot say in a sidecar ``model-N.json`` (``ddpm_pytorch_spec``).

The card follows the GaussianDiffusion the file was saved from: its stored betas (float64 where they are the
library's named schedule, which every buffer was computed from in float64 and rounded once, as the studio's float64
schedule precision does), objective pred_noise / pred_x0 / pred_v as epsilon / sample / v_prediction, the posterior
variance (fixed_small) of its p_sample, x0 clipped to [-1, 1] as p_sample and ddim_sample clip it, and the value range
of its data: [-1, 1] with auto_normalize (images in [0, 1] scaled to [-1, 1]), else [0, 1] (the Trainer's images as
they are). The network is called with the integer timestep, as the library calls it. The weights are read with
torch's weights-only loader; the package (module ``denoising_diffusion_pytorch``) is imported only to build the Unet.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..memory_budget import available_bytes, size_text
from ..models.card import ModelCard
from .build_guard import checked_build
from .card_json import card_from_json
from .common import complete_card, fail, fit_weights, load_pickled_weights, one_line, probe_network, state_summary
from .ddpm_pytorch_library import unet_class
from .ddpm_pytorch_sidecar import sidecar_path
from .ddpm_pytorch_spec import Spec, resolve
from .ddpm_pytorch_weights import per_stage

FORMAT = "ddpm_pytorch"
UNET = "denoising_diffusion_pytorch.Unet"
PREDICTION_TYPES = {"pred_noise": "epsilon", "pred_x0": "sample", "pred_v": "v_prediction"}


def read_card(path: str | os.PathLike) -> ModelCard:
    card, _ = _describe(path)
    return card


def load(path: str | os.PathLike) -> tuple[torch.nn.Module, ModelCard]:
    card, spec = _describe(path)
    _check_attention_memory(spec, path)
    library_unet = unet_class(path)
    kwargs = _unet_kwargs(spec)
    what = f"the {UNET} its weights describe"
    state = spec.contents.unet
    module = checked_build(lambda: _built(library_unet, kwargs, path), card, state, path, what,
                           forward=LibraryUNetNetwork)
    fit_weights(module, state, path, what)
    network = LibraryUNetNetwork(module).eval()
    probe_network(network, card, path)
    return network, card


def _describe(path) -> tuple[ModelCard, Spec]:
    path = Path(path)
    spec = resolve(path, load_pickled_weights(path))
    count, dtype = state_summary(spec.contents.unet)
    card = complete_card(_card(path, spec), format=FORMAT, path=path, weights_file=path, parameter_count=count,
                         dtype=dtype)
    return card, spec


def _card(path: Path, spec: Spec) -> ModelCard:
    found = spec.contents
    which = {"ema": "its EMA weights", "model": "its raw (online) weights"}[found.weights]
    if found.trainer:
        other = {"ema": 'write {"weights": "model"} into ' + sidecar_path(path).name + " for the raw weights",
                 "model": 'write {"weights": "ema"} for the EMA weights' if found.has_ema else "it has no EMA weights"}
        what = (f"denoising-diffusion-pytorch Trainer checkpoint (step {found.step}, library {found.version or '?'}); "
                f"{which} ({other[found.weights]})")
    else:
        what = f"denoising-diffusion-pytorch GaussianDiffusion state dict; {which}"
    config = {**spec.unet, "image_size": list(spec.image_size), "timesteps": len(spec.betas),
              "objective": spec.objective, "beta_schedule": spec.beta_schedule or "stored betas",
              "auto_normalize": spec.auto_normalize, "weights": found.weights}
    height, width = spec.image_size
    data = {
        "name": spec.studio.get("name", path.stem),
        "description": spec.studio.get("description", f"{what}; arguments from {spec.origin}"),
        "data_kind": "image",
        "data_shape": [spec.unet["channels"], height, width],
        "value_range": [-1.0, 1.0] if spec.auto_normalize else [0.0, 1.0],
        "num_train_timesteps": len(spec.betas),
        "trained_betas": list(spec.betas),
        "prediction_type": PREDICTION_TYPES[spec.objective],
        "variance_type": "fixed_small",   # p_sample's posterior variance
        "clip_sample": True,              # p_sample and ddim_sample clamp x0 to [-1, 1]
        "clip_sample_range": 1.0,
        "architecture": {"name": UNET, "config": config},
        "assumed": list(spec.assumed),
        "inferred": list(spec.inferred),
    }
    return card_from_json(data, path)


def _unet_kwargs(spec: Spec) -> dict:
    unet = dict(spec.unet)
    stages = len(unet["dim_mults"])
    unet["dim_mults"] = tuple(unet["dim_mults"])
    unet["full_attn"] = tuple(per_stage(unet["full_attn"], stages))
    for key in ("attn_heads", "attn_dim_head"):
        unet[key] = tuple(per_stage(unet[key], stages))
    return unet


def _built(library_unet, kwargs: dict, path) -> torch.nn.Module:
    try:
        return library_unet(**kwargs)
    except (AssertionError, ValueError, TypeError, KeyError, ZeroDivisionError, NotImplementedError) as exc:
        raise fail(path, f"the arguments do not describe a Unet the library builds: {one_line(exc)}") from None


def _check_attention_memory(spec: Spec, path) -> None:
    """The scores of the full attentions (heads x positions^2, float32, about three copies) of one sample must fit
    in memory: image_size is what a sidecar says and no weight checks, and a tiny file claiming 4096 x 4096 images
    would otherwise ask for terabytes."""
    unet, (height, width) = spec.unet, spec.image_size
    stages = len(unet["dim_mults"])
    full = per_stage(unet["full_attn"], stages)
    heads = per_stage(unet["attn_heads"], stages)
    needed = 0
    for stage in range(stages):   # stage i works at the image halved i times; the middle at the last stage's size
        if full[stage] or stage == stages - 1:
            positions = (height >> stage) * (width >> stage)
            needed = max(needed, 3 * 4 * heads[stage] * (positions + 4) ** 2)
    if needed > available_bytes():
        raise fail(path, f"refused: image_size {list(spec.image_size)} puts full attention over "
                         f"{(height >> (stages - 1)) * (width >> (stages - 1)):,} or more positions; the scores of one "
                         f"sample take about {size_text(needed)}, more than the {size_text(available_bytes())} this "
                         "machine has available")


class LibraryUNetNetwork(torch.nn.Module):
    """(x, t, labels or None) -> the library Unet's output, t the integer timestep as GaussianDiffusion passes it.
    In half precision the sinusoidal time embedding (float32, from the timestep) meets the time MLP in its dtype."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner
        first = inner.time_mlp[1] if hasattr(inner, "time_mlp") else None
        if first is not None:
            first.register_forward_pre_hook(lambda layer, args: (args[0].to(layer.weight.dtype),))

    def forward(self, x, t, class_labels=None):
        return self.inner(x, t)
