"""One run: settings + model + seeds -> a stream of Steps.

    run = sample(denoiser, RunSettings(sampler=DDIMSettings(steps=50), seed=7, batch_size=4))
    for step in run:          # one model call per iteration; break (or run.close()) cancels
        ...

The run resolves everything up front (device, dtype, timesteps, per-sample seeds, class labels) so a
bad setting fails before the first model call, and ``run.record()`` describes exactly what ran.
A NaN or Inf in x_t or the model's prediction raises NumericalError naming the step and t; the steps
yielded before it stay with the caller.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch

from .. import __version__
from .errors import NumericalError, SettingsError
from .guidance import Classifier, make_predict
from .models.denoiser import Denoiser
from .noise import SampleNoise, sample_seeds
from .samplers import SamplerSettings, Step
from .samplers.ddim import DDIMSettings, ddim_invert
from .settings import CLASS_CYCLE, RunSettings

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_device(name: str = "auto") -> torch.device:
    """auto: cuda, then mps, then cpu. An explicit device that is not there is an error, not a fallback."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SettingsError(f"device {name!r} is not available on this machine (no CUDA GPU); use auto or cpu")
        return torch.device(name)
    if name == "mps":
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise SettingsError("device 'mps' is not available on this machine; use auto or cpu")
        return torch.device("mps")
    if name == "cpu":
        return torch.device("cpu")
    raise SettingsError(f"device must be auto, cpu, cuda or mps, got {name!r}")


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name not in _DTYPES:
        raise SettingsError(f"dtype must be one of {', '.join(_DTYPES)}, got {name!r}")
    if name != "float32" and device.type == "cpu":
        raise SettingsError(f"dtype {name} runs only on a GPU (cuda or mps); on the cpu use float32")
    return _DTYPES[name]


def class_labels_for(card, settings: RunSettings, count: int) -> list[int] | None:
    """The class label of each sample (None: an unconditional model)."""
    label = settings.class_label
    guidance = settings.guidance.kind
    num_classes = len(card.class_names)
    if not card.conditional and guidance != "classifier":
        if label is not None:
            raise SettingsError(f"model {card.name!r} is unconditional: class_label must be null, got {label!r}")
        if guidance == "classifier_free":
            raise SettingsError(f"classifier-free guidance needs a class-conditional model; {card.name!r} is not")
        return None
    if label is None:
        if guidance != "none":
            raise SettingsError(f"{guidance.replace('_', '-')} guidance needs a class_label (a class index or 'cycle')")
        if card.null_class is None:
            raise SettingsError(
                f"model {card.name!r} needs a class_label from 0 to {num_classes - 1} or 'cycle' "
                "(it has no null class for unconditional sampling)"
            )
        return [card.null_class] * count
    if num_classes == 0:  # classifier guidance on an unconditional model: labels are the classifier's
        if label == CLASS_CYCLE:
            raise SettingsError("class_label 'cycle' needs a model with class_names")
        return [int(label)] * count
    if label == CLASS_CYCLE:
        return [i % num_classes for i in range(count)]
    if not 0 <= label < num_classes:
        raise SettingsError(f"class_label must be from 0 to {num_classes - 1} for model {card.name!r}, got {label}")
    return [int(label)] * count


class Run:
    """An iterator of Steps for one batch; see the module docstring."""

    def __init__(
        self,
        denoiser: Denoiser,
        settings: RunSettings,
        *,
        classifier: Classifier | None = None,
        seeds: Sequence[int] | None = None,
        x_T: torch.Tensor | None = None,
    ):
        card = denoiser.card
        self.card = card
        self.settings = settings
        self.sampler: SamplerSettings = settings.sampler.resolve(card)
        self.schedule = denoiser.schedule
        self.timesteps: np.ndarray = self.sampler.timestep_list(card.num_train_timesteps)
        self.seeds = list(seeds) if seeds is not None else sample_seeds(settings.seed, settings.batch_size)
        for s in self.seeds:
            sample_seeds(int(s), 1)
        self.device = resolve_device(settings.device)
        self.dtype = resolve_dtype(settings.dtype, self.device)
        if settings.guidance.kind == "classifier":
            if classifier is None:
                raise SettingsError("classifier guidance needs a classifier model; open one first")
        if settings.guidance.kind == "classifier_free" and card.null_class is None:
            raise SettingsError(f"classifier-free guidance needs a model trained with a null class; {card.name!r} has none")
        self.class_labels = class_labels_for(card, settings, len(self.seeds))
        denoiser.to(self.device, self.dtype)
        if classifier is not None and hasattr(classifier, "to"):
            classifier.to(self.device)
        self._predict = self._build_predict(denoiser, classifier)
        self.noise = SampleNoise(self.seeds, card.data_shape, self.device, on_device=settings.noise_device == "device")
        expected = (len(self.seeds), *card.data_shape)
        if x_T is None:
            x_T = self.noise.draw()
        elif tuple(x_T.shape) != expected:
            raise SettingsError(f"x_T must have shape {expected}, got {tuple(x_T.shape)}")
        self.x_T = x_T.to(self.device, torch.float32)
        self._grad_mode = torch.no_grad if settings.guidance.kind == "classifier" else torch.inference_mode
        self._steps: Iterator[Step] = self.sampler.run(self._predict, self.schedule, self.timesteps, self.x_T, self.noise)
        self.steps_done = 0
        self.finished = False

    def _build_predict(self, denoiser: Denoiser, classifier):
        labels = None
        if self.class_labels is not None:
            labels = torch.tensor(self.class_labels, dtype=torch.long, device=self.device)
        card = self.card
        null = None
        if card.null_class is not None:
            null = torch.full((len(self.seeds),), card.null_class, dtype=torch.long, device=self.device)
        guidance = self.settings.guidance
        model_labels = labels if card.conditional else None
        if guidance.kind == "classifier" and null is not None:
            model_labels = null  # classifier guidance steers the unconditional model
        return make_predict(denoiser, model_labels, guidance, target_labels=labels, null_labels=null,
                            classifier=classifier)

    @property
    def num_steps(self) -> int:
        return len(self.timesteps)

    def __iter__(self) -> "Run":
        return self

    def __next__(self) -> Step:
        with self._grad_mode():
            try:
                step = next(self._steps)
            except StopIteration:
                self.finished = True
                raise
        finite = torch.isfinite(step.x_t).all() & torch.isfinite(step.eps_pred).all()
        if not bool(finite):
            self.close()
            where = "the model's prediction" if not bool(torch.isfinite(step.eps_pred).all()) else "x_t"
            raise NumericalError(
                f"the run produced NaN or Inf in {where} at step {step.index + 1}/{step.num_steps} (t={step.t}); "
                "the steps before it are kept",
                index=step.index, t=step.t,
            )
        self.steps_done += 1
        return step

    def close(self) -> None:
        """Cancel: no further model call is made."""
        self._steps.close()

    def record(self) -> dict:
        """What ran, for run.json and PNG metadata."""
        return {
            "studio_version": __version__,
            "model": {"name": self.card.name, "sha256": self.card.sha256, "format": self.card.format},
            "settings": self.settings.replace(sampler=self.sampler).to_dict(),
            "timesteps": [int(t) for t in self.timesteps],
            "seeds": list(self.seeds),
            "class_labels": self.class_labels,
            "device": str(self.device),
            "dtype": str(self.dtype).replace("torch.", ""),
        }


def sample(denoiser: Denoiser, settings: RunSettings, **kwargs) -> Run:
    """Start a run; iterate it for Steps. See ``Run``."""
    return Run(denoiser, settings, **kwargs)


def sample_final(denoiser: Denoiser, settings: RunSettings, **kwargs) -> torch.Tensor:
    """Run to the end and return the final samples (batch, *data_shape), float32."""
    run = Run(denoiser, settings, **kwargs)
    x = run.x_T
    for step in run:
        x = step.x_t
    return x


class Inversion:
    """Deterministic DDIM inversion (data -> x_T) as an iterator of Steps; ``reconstruct`` runs DDIM back."""

    def __init__(self, denoiser: Denoiser, x0_data: torch.Tensor, sampler: DDIMSettings, device: str = "auto",
                 dtype: str = "float32", class_label: int | None = None):
        if not isinstance(sampler, DDIMSettings) or not sampler.deterministic:
            raise SettingsError("inversion needs the DDIM sampler with eta = 0")
        card = denoiser.card
        self.sampler = sampler.resolve(card)
        self.timesteps = self.sampler.timestep_list(card.num_train_timesteps)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.settings = RunSettings(sampler=self.sampler, batch_size=max(1, x0_data.shape[0]), class_label=class_label,
                                    device=device, dtype=dtype)
        expected = tuple(card.data_shape)
        if x0_data.ndim != len(expected) + 1 or tuple(x0_data.shape[1:]) != expected:
            raise SettingsError(f"data to invert must have shape (batch, {', '.join(map(str, expected))}), "
                                f"got {tuple(x0_data.shape)}")
        self.denoiser = denoiser.to(self.device, self.dtype)
        labels = class_labels_for(card, self.settings, x0_data.shape[0])
        self._labels = None if labels is None else torch.tensor(labels, dtype=torch.long, device=self.device)
        self._predict = make_predict(denoiser, self._labels, self.settings.guidance)
        self.x0_data = x0_data.to(self.device, torch.float32)
        self._steps = ddim_invert(self._predict, denoiser.schedule, self.timesteps, self.x0_data)

    def __iter__(self):
        return self

    def __next__(self) -> Step:
        with torch.inference_mode():
            return next(self._steps)

    def run(self) -> torch.Tensor:
        x = self.x0_data
        for step in self:
            x = step.x_t
        return x

    def reconstruct(self, x_T: torch.Tensor) -> torch.Tensor:
        """DDIM (eta = 0, same timesteps and clipping) from x_T back to data."""
        run = Run(self.denoiser, self.settings, x_T=x_T)
        x = run.x_T
        for step in run:
            x = step.x_t
        return x
