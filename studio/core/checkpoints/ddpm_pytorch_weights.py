"""What the tensors of a denoising-diffusion-pytorch checkpoint decide, read without the library.

A Trainer checkpoint (``model-N.pt``) is ``{"step", "model", "opt", "ema", "scaler", "version"}``: ``model`` is the
GaussianDiffusion's state dict (its Unet under ``model.``, then the schedule's buffers: betas, alphas_cumprod, ...,
loss_weight) and ``ema`` the EMA wrapper's (``ema_model.`` the averaged GaussianDiffusion, ``online_model.`` the
raw one again, ``initted``, ``step``). A bare GaussianDiffusion state dict opens too.

- The Unet's arguments, from its tensors' shapes: dim (the time MLP's input), init_dim (the first convolution),
  channels and out_dim (the first and last convolutions), dim_mults (each stage's width over dim), full_attn (a
  stage with a full Attention has ``to_out.weight``, a LinearAttention ``to_out.0.weight``), attn_heads and
  attn_dim_head (each stage's memory key/values), self_condition (twice the channels in), learned_variance (twice
  out), a learned or random sinusoidal time embedding (``time_mlp.0.weights``).
- The schedule: the stored float32 betas, or, where they are exactly the library's linear, cosine or sigmoid betas
  for T rounded to float32, those float64 betas (what the library computed every buffer from); the stored
  alphas_cumprod must follow from them.
- The objective, from the loss_weight buffer (SNR-based and different for each: 1 for pred_noise, snr for pred_x0,
  snr / (snr + 1) for pred_v, each with min-SNR clamping at some gamma); files older than that buffer do not say it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Mapping

import torch

from ..checks import is_int
from .common import fail

EMA_PREFIX, ONLINE_PREFIX, UNET_PREFIX = "ema_model.", "online_model.", "model."
SCHEDULE_BUFFERS = ("betas", "alphas_cumprod")
KNOWN_BUFFERS = ("betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
                 "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
                 "sqrt_recipm1_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
                 "posterior_mean_coef1", "posterior_mean_coef2", "loss_weight", "p2_loss_weight")
_STAGE = re.compile(r"downs\.(\d+)\.")


@dataclass(frozen=True)
class Contents:
    """The GaussianDiffusion state chosen from a file, split into the Unet's tensors and the schedule's buffers."""

    unet: dict               # Unet state dict (``model.`` taken off)
    buffers: dict            # betas, alphas_cumprod, ... loss_weight
    weights: str             # "ema" or "model": which weights of a Trainer checkpoint these are
    has_ema: bool            # whether the file has EMA weights at all
    trainer: bool            # a Trainer checkpoint (else a bare state dict)
    step: int | None         # the Trainer's step
    version: str | None      # the library version that saved it


def _tensors(value) -> bool:
    return isinstance(value, Mapping) and bool(value) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def _strip(state: Mapping, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def contents(obj, path, weights: str | None) -> Contents:
    """The chosen weights (``weights``: "ema", "model", or None for the EMA ones where the file has them)."""
    trainer = isinstance(obj, Mapping) and ("model" in obj or "ema" in obj) and not _tensors(obj)
    step = version = None
    if trainer:
        model = obj.get("model")
        ema_state = obj.get("ema")
        if model is not None and not _tensors(model):
            raise fail(path, "is not a denoising-diffusion-pytorch Trainer checkpoint: its 'model' entry is not a "
                             "state dict")
        ema = _strip(ema_state, EMA_PREFIX) if _tensors(ema_state) else {}
        step = obj.get("step") if is_int(obj.get("step")) else None
        version = obj.get("version") if isinstance(obj.get("version"), str) else None
        if not ema and model is None:
            raise fail(path, "Trainer checkpoint with neither raw weights ('model') nor EMA weights ('ema_model.' "
                             "in 'ema')")
        if model is None and ema_state is not None:
            model = _strip(ema_state, ONLINE_PREFIX) or None
    elif _tensors(obj):
        flat = dict(obj)
        ema = _strip(flat, EMA_PREFIX)
        model = _strip(flat, ONLINE_PREFIX) if ema else flat
        model = model or None
    else:
        raise fail(path, "holds no denoising-diffusion-pytorch weights (expected a Trainer checkpoint, a dict with "
                         "'model' and 'ema', or a GaussianDiffusion state dict)")
    if weights == "ema" and not ema:
        raise fail(path, "the sidecar asks for weights 'ema' but the file has no EMA weights ('ema_model.' entries)")
    if weights == "model" and model is None:
        raise fail(path, "the sidecar asks for weights 'model' but the file has only EMA weights")
    chosen = weights or ("ema" if ema else "model")
    state = ema if chosen == "ema" else dict(model)
    unet = _strip(state, UNET_PREFIX)
    buffers = {k: v for k, v in state.items() if not k.startswith(UNET_PREFIX)}
    if not unet or "init_conv.weight" not in unet or "final_conv.weight" not in unet:
        raise fail(path, "holds no denoising-diffusion-pytorch Unet weights (no model.init_conv.weight and "
                         "model.final_conv.weight: a GaussianDiffusion of another network, or another library's file)")
    unknown = [k for k in buffers if k not in KNOWN_BUFFERS]
    if unknown:
        raise fail(path, f"has {unknown[0]} beside the Unet, which a GaussianDiffusion does not hold (a subclass of "
                         "it the studio does not open, or another file)")
    missing = [k for k in SCHEDULE_BUFFERS if k not in buffers]
    if missing:
        raise fail(path, f"has no {missing[0]} buffer: the schedule cannot be read from the file")
    return Contents(unet, buffers, chosen, bool(ema), trainer, step, version)


# --- the Unet ------------------------------------------------------------------------------------------------------
def _shape(state: Mapping, key: str, path) -> tuple[int, ...]:
    if key not in state:
        raise fail(path, f"does not fit a denoising-diffusion-pytorch Unet: it lacks model.{key}")
    return tuple(state[key].shape)


def unet_arguments(state: Mapping[str, torch.Tensor], path) -> dict:
    """The Unet(...) arguments the weights decide, under the library's names."""
    init_out, init_in = _shape(state, "init_conv.weight", path)[:2]
    out_dim = _shape(state, "final_conv.weight", path)[0]
    if "time_mlp.0.weights" in state:
        learned_dim = _shape(state, "time_mlp.0.weights", path)[0] * 2
        return {"learned_sinusoidal_cond": True, "learned_sinusoidal_dim": learned_dim}
    time_dim, dim = _shape(state, "time_mlp.1.weight", path)
    if time_dim != 4 * dim:
        raise fail(path, f"does not fit a denoising-diffusion-pytorch Unet: its time MLP maps {dim} to {time_dim} "
                         "(the Unet maps dim to 4 dim)")
    stages = sorted({int(m.group(1)) for k in state for m in [_STAGE.match(k)] if m})
    if not stages or stages != list(range(len(stages))):
        raise fail(path, "does not fit a denoising-diffusion-pytorch Unet: no down stages (downs.0, downs.1, ...)")
    widths, full, heads, head_dims = [], [], [], []
    for i in stages:
        last = i == stages[-1]
        key = f"downs.{i}.3.weight" if last else f"downs.{i}.3.1.weight"
        widths.append(_shape(state, key, path)[0])
        is_full = f"downs.{i}.2.to_out.weight" in state
        kv = _shape(state, f"downs.{i}.2.mem_kv", path)
        if len(kv) != 4:
            raise fail(path, f"does not fit a denoising-diffusion-pytorch Unet: downs.{i}.2.mem_kv has shape "
                             f"{list(kv)}")
        full.append(is_full)
        heads.append(kv[1])
        head_dims.append(kv[3] if is_full else kv[2])
    if any(w % dim for w in widths):
        raise fail(path, f"does not fit a denoising-diffusion-pytorch Unet: stage widths {widths} are not multiples "
                         f"of dim {dim}")
    channels = init_in
    self_condition = False
    learned_variance = False
    if init_in == 2 * out_dim:
        channels, self_condition = out_dim, True
    elif out_dim == 2 * init_in:
        learned_variance = True
    elif out_dim != init_in:
        raise fail(path, f"does not fit a GaussianDiffusion's Unet: {init_in} channels in, {out_dim} out (the same "
                         "number, as GaussianDiffusion requires)")
    return {
        "dim": dim, "init_dim": init_out, "out_dim": out_dim, "dim_mults": [w // dim for w in widths],
        "channels": channels, "self_condition": self_condition, "learned_variance": learned_variance,
        "learned_sinusoidal_cond": False, "random_fourier_features": False,
        "attn_dim_head": _one_or_all(head_dims), "attn_heads": _one_or_all(heads), "full_attn": full,
    }


def _one_or_all(values: list[int]):
    return values[0] if len(set(values)) == 1 else list(values)


def per_stage(value, stages: int) -> list:
    """A Unet argument as the library casts it (``cast_tuple``): a scalar for every stage, else the list."""
    return list(value) if isinstance(value, (list, tuple)) else [value] * stages


# --- the schedule --------------------------------------------------------------------------------------------------
def _named_betas(name: str, T: int) -> torch.Tensor:
    """The library's linear_beta_schedule, cosine_beta_schedule and sigmoid_beta_schedule (default arguments),
    op for op in float64."""
    if name == "linear":
        scale = 1000 / T
        return torch.linspace(scale * 0.0001, scale * 0.02, T, dtype=torch.float64)
    t = torch.linspace(0, T, T + 1, dtype=torch.float64) / T
    if name == "cosine":
        s = 0.008
        alphas_cumprod = torch.cos((t + s) / (1 + s) * math.pi * 0.5) ** 2
    else:
        start, end, tau = -3, 3, 1
        v_start, v_end = torch.tensor(start / tau).sigmoid(), torch.tensor(end / tau).sigmoid()
        alphas_cumprod = (-((t * (end - start) + start) / tau).sigmoid() + v_end) / (v_end - v_start)
    alphas_cumprod = alphas_cumprod / alphas_cumprod[0]
    betas = 1 - (alphas_cumprod[1:] / alphas_cumprod[:-1])
    return torch.clip(betas, 0, 0.999)


def schedule(buffers: Mapping[str, torch.Tensor], path) -> tuple[tuple[float, ...], str | None]:
    """(the float64 betas every coefficient is made from, the library schedule's name or None for others)."""
    stored = buffers["betas"].detach().to(torch.float32).reshape(-1)
    T = stored.numel()
    if buffers["alphas_cumprod"].numel() != T or buffers["betas"].dim() != 1:
        raise fail(path, f"its betas ({list(buffers['betas'].shape)}) and alphas_cumprod "
                         f"({list(buffers['alphas_cumprod'].shape)}) are not two lists of the same length")
    if not bool(torch.isfinite(stored).all()) or not bool(((stored > 0) & (stored < 1)).all()):
        raise fail(path, "its stored betas are not all in (0, 1)")
    betas, name = stored.double(), None
    for candidate in ("linear", "cosine", "sigmoid"):
        exact = _named_betas(candidate, T)
        if torch.equal(exact.float(), stored):
            betas, name = exact, candidate
            break
    alphas_cumprod = torch.cumprod(1 - betas, dim=0).float()
    stored_cumprod = buffers["alphas_cumprod"].detach().float().reshape(-1)
    error = ((alphas_cumprod - stored_cumprod).abs() / alphas_cumprod).max().item()
    if not error <= 1e-5:
        raise fail(path, f"its stored alphas_cumprod does not follow from its stored betas (relative difference "
                         f"{error:.2g}): a damaged or edited file")
    return tuple(betas.tolist()), name


def objective(buffers: Mapping[str, torch.Tensor], betas: tuple[float, ...]) -> str | None:
    """The objective the loss_weight buffer was made for; None where there is none or it fits no single one."""
    weight = buffers.get("loss_weight")
    if weight is None or weight.numel() != len(betas):
        return None
    alphas_cumprod = torch.cumprod(1 - torch.tensor(betas, dtype=torch.float64), dim=0)
    snr = alphas_cumprod / (1 - alphas_cumprod)
    weight = weight.detach().double().reshape(-1)
    clamped = {"pred_noise": weight * snr, "pred_x0": weight, "pred_v": weight * (snr + 1)}   # each min(snr, gamma)
    fits = [name for name, values in clamped.items()
            if torch.allclose(values, torch.clamp(snr, max=values.max().item()), rtol=1e-3, atol=0)]
    return fits[0] if len(fits) == 1 else None
