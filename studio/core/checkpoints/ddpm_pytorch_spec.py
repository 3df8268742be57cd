"""How a denoising-diffusion-pytorch checkpoint was made, taken in order from its weights (``ddpm_pytorch_weights``),
the sidecar JSON beside it (``ddpm_pytorch_sidecar``) and the library's defaults.

Every argument the weights decide is checked against what the sidecar says: a contradiction is refused, naming the
argument, the sidecar and what the weights hold. What neither says and changes the answer is refused with the sidecar
to write (the image size always; the objective for files older than the library's loss_weight buffer). What the
studio cannot sample as the library does is refused in one line: a self-conditioned Unet (the library feeds it the
previous step's x0 prediction), a learned variance (LearnedGaussianDiffusion), a learned or random sinusoidal time
embedding (the continuous-time diffusions). The card lists the defaults taken as assumed and what the weights
decided as inferred.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .common import fail
from .ddpm_pytorch_sidecar import (DEFAULTS, DIFFUSION_IGNORED, MAX_IMAGE_SIDE, UNET_DECIDED, image_size_of,
                                   read_sidecar, sidecar_path)
from .ddpm_pytorch_weights import Contents, contents, objective, per_stage, schedule, unet_arguments

SIDECAR, WEIGHTS, DEFAULT = "sidecar", "weights", "default"


@dataclass(frozen=True)
class Spec:
    unet: dict                 # Unet(...) keyword arguments, the library's names
    image_size: tuple[int, int]
    objective: str             # pred_noise | pred_x0 | pred_v
    auto_normalize: bool
    betas: tuple[float, ...]   # float64
    beta_schedule: str | None  # the library's named schedule the stored betas are, or None
    sources: dict              # argument -> sidecar | weights | default
    contents: Contents
    studio: dict               # name, description from the sidecar
    origin: str

    @property
    def inferred(self) -> tuple[str, ...]:
        return tuple(k for k, s in self.sources.items() if s == WEIGHTS)

    @property
    def assumed(self) -> tuple[str, ...]:
        return tuple(k for k, s in self.sources.items() if s == DEFAULT)


def resolve(path: str | os.PathLike, obj) -> Spec:
    """The spec of the loaded checkpoint object ``obj`` (what torch's weights-only loader read from ``path``)."""
    path = Path(path)
    sidecar = read_sidecar(path)
    beside = sidecar_path(path).name
    found = contents(obj, path, sidecar.get("weights"))
    sources: dict = {}

    def take(key, inferred, unet=None):
        if key in sidecar and not _same(key, sidecar[key], inferred, unet or {}):
            raise fail(path, f"{key} is {sidecar[key]!r} in {beside} but the weights say {inferred!r}; the sidecar "
                             "contradicts the weights (fix or remove it)")
        sources[key] = WEIGHTS if key not in sidecar else SIDECAR
        return inferred

    def given(key):
        if key in sidecar:
            sources[key] = SIDECAR
            return sidecar[key]
        sources[key] = DEFAULT
        return DEFAULTS[key]

    inferred = unet_arguments(found.unet, path)
    _refuse_unsupported(path, inferred, found)
    stages = len(inferred["dim_mults"])
    unet = {}
    for key in UNET_DECIDED:
        if key in inferred:
            unet[key] = take(key, inferred[key], inferred)
    unet["sinusoidal_pos_emb_theta"] = given("sinusoidal_pos_emb_theta")
    unet["flash_attn"] = given("flash_attn")
    unet.pop("learned_sinusoidal_dim", None)
    betas, named = schedule(found.buffers, path)
    take("timesteps", len(betas))
    if "beta_schedule" in sidecar and "schedule_fn_kwargs" not in sidecar and sidecar["beta_schedule"] != named:
        said = named or "none of the library's linear, cosine or sigmoid betas (with their default arguments)"
        raise fail(path, f"beta_schedule is {sidecar['beta_schedule']!r} in {beside} but the stored betas are {said}; "
                         "the sidecar contradicts the weights (fix or remove it)")
    if named is not None or "beta_schedule" in sidecar:
        sources["beta_schedule"] = WEIGHTS if "beta_schedule" not in sidecar else SIDECAR
    decided = objective(found.buffers, betas)
    if decided is not None:
        chosen_objective = take("objective", decided)
    elif "objective" in sidecar:
        chosen_objective, sources["objective"] = sidecar["objective"], SIDECAR
    else:
        chosen_objective = None
    auto_normalize = given("auto_normalize")
    image_size = image_size_of(sidecar["image_size"]) if "image_size" in sidecar else None
    if image_size is not None:
        sources["image_size"] = SIDECAR
    missing = [k for k, v in (("image_size", image_size), ("objective", chosen_objective)) if v is None]
    if missing:
        example = {"image_size": 32, "objective": "pred_v"}
        shown = ", ".join(f'"{k}": {example[k]!r}'.replace("'", '"') for k in missing)
        why = {"image_size": "no weight of a Unet depends on it",
               "objective": "the file has no loss_weight buffer (saved by a library version older than it)"}
        raise fail(path, f"denoising-diffusion-pytorch checkpoint whose {' and '.join(missing)} the file does not "
                         f"say ({'; '.join(why[k] for k in missing)}): write {'them' if len(missing) > 1 else 'it'} "
                         f"into {beside} beside it, for example {{{shown}}} (the value it was trained with)")
    factor = 2 ** (stages - 1)
    if any(side % factor for side in image_size):
        raise fail(path, f"image_size {list(image_size)} does not fit the Unet: its {stages} stages halve the image "
                         f"{stages - 1} times, so each side must be a multiple of {factor}")
    if max(image_size) > MAX_IMAGE_SIDE:
        raise fail(path, f"image_size {list(image_size)}: the studio samples at most {MAX_IMAGE_SIDE} pixels a side")
    if "weights" in sidecar:
        sources["weights"] = SIDECAR
    studio = {k: sidecar[k] for k in ("name", "description") if k in sidecar}
    origin = f"sidecar {beside} and the weights" if sidecar else "the weights"
    ignored = [k for k in DIFFUSION_IGNORED if k in sidecar]
    if ignored:
        origin += f" (ignored: {', '.join(ignored)}, which concern training or the library's own sampling loop)"
    return Spec(unet, image_size, chosen_objective, auto_normalize, betas, named, sources, found, studio, origin)


def _same(key: str, said, inferred, unet: dict) -> bool:
    """Whether a sidecar's value means the Unet the weights hold, as the library reads its arguments (init_dim null
    is dim, out_dim null is channels, full_attn null is full attention at the innermost stage only, a scalar of
    attn_heads or attn_dim_head is every stage's)."""
    stages = len(unet.get("dim_mults", ()))
    if key == "init_dim" and said is None:
        said = unet["dim"]
    elif key == "out_dim" and said is None:
        said = unet["channels"]
    elif key == "full_attn":
        said = [False] * (stages - 1) + [True] if not said else per_stage(said, stages)
        return said == per_stage(inferred, stages)
    elif key in ("attn_heads", "attn_dim_head"):
        return per_stage(said, stages) == per_stage(inferred, stages)
    return said == inferred


def _refuse_unsupported(path, inferred: dict, found: Contents) -> None:
    if inferred.get("learned_sinusoidal_cond"):
        raise fail(path, "its Unet has a learned or random sinusoidal time embedding (learned_sinusoidal_cond or "
                         "random_fourier_features): a continuous-time diffusion's network, which GaussianDiffusion "
                         "(and the studio) does not sample")
    if inferred["self_condition"]:
        raise fail(path, "its Unet is self-conditioned (self_condition=True: twice the channels in): the library "
                         "feeds it the previous step's x0 prediction, which the studio's samplers do not pass, so it "
                         "is refused rather than sampled differently")
    if inferred["learned_variance"]:
        raise fail(path, "its Unet learns the variance (learned_variance=True: twice the channels out), a "
                         "LearnedGaussianDiffusion model, which the studio does not open")
