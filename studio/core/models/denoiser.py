"""The one Denoiser protocol every checkpoint format ends as.

A denoiser answers (x_t, t, class labels or None) -> Prediction(eps, x0, var_values), whatever the
network predicts (epsilon, sample or v) and whether it learns its variance. Samplers only see this.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol, runtime_checkable

import torch

from ..errors import SettingsError
from ..prediction import (LEARNED_VARIANCE_TYPES, RECIPROCAL_CONVERTERS, Prediction, prediction_converter,
                          split_learned_variance)
from ..schedules import NoiseSchedule
from .card import ModelCard

_TIMESTEP_BATCHES_KEPT = 4096   # every t of a 1000-step model for a few batch sizes

# A network maps (x, t, class_labels or None) to its raw output (C or 2C channels for learned variance).
Network = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


@runtime_checkable
class Denoiser(Protocol):
    card: ModelCard
    schedule: NoiseSchedule
    device: torch.device
    dtype: torch.dtype

    def predict(self, x_t: torch.Tensor, t: float, class_labels: torch.Tensor | None = None,
                sqrt_terms: tuple[float, float] | None = None) -> Prediction:
        """eps and x0 (unclipped, float32) for a batch that sits at timestep t. ``sqrt_terms``: (sqrt(alpha_bar),
        sqrt(1 - alpha_bar)) of the batch's noise level when it is not the schedule's at an integer t (a
        fractional t of the sigma-space solvers)."""

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> "Denoiser":
        """Move the network; returns self."""


def timestep_dtype(t: float) -> torch.dtype:
    """An integer timestep goes to a network as a long tensor (as every pipeline passes it), any other as float32
    (as diffusers passes the fractional timesteps of its sigma-space schedulers)."""
    return torch.long if float(t).is_integer() else torch.float32


def tensor_version(tensor: torch.Tensor) -> int | None:
    """The tensor's count of in-place writes; None for an inference tensor, which does not count them."""
    return None if tensor.is_inference() else tensor._version


@dataclass
class FasterNetworks:
    """The faster networks ``studio.core.acceleration`` built for a denoiser: every one by its key (mode, batch,
    device, dtype, tolerance) with what building it gave, and the key of the one in use (None: plain); and the
    seconds per call the ``auto`` mode measured, by (mode, batch, device, dtype), plain's included."""

    built: dict = field(default_factory=dict)   # key -> (network, Acceleration)
    in_use: tuple | None = None
    timings: dict = field(default_factory=dict)   # (mode, batch, device, dtype) -> seconds per call


class NetworkDenoiser:
    """A Denoiser over any network callable plus its model card.

    The network runs in ``dtype`` (float32, or half precision on a GPU); the sampler's arithmetic stays in
    float32, so x_t is cast on the way in and the output on the way out. ``network`` is what ``predict`` calls:
    ``plain_network`` (the network as loaded) or a faster version of it that ``studio.core.acceleration``
    installed; ``faster`` keeps those.
    """

    def __init__(self, network: Network, card: ModelCard, module: torch.nn.Module | None = None):
        self.plain_network = network
        self.network = network
        self.faster = FasterNetworks()
        self.card = card
        self.schedule = card.schedule()
        self.module = module if module is not None else (network if isinstance(network, torch.nn.Module) else None)
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        self._convert = prediction_converter(card.prediction_type)
        # a float64 schedule (OpenAI's checkpoints) converts at integer t in its library's own arithmetic
        self._convert_reciprocal = RECIPROCAL_CONVERTERS.get(card.prediction_type) \
            if self.schedule.precision == "float64" else None
        self._learned_variance = card.variance_type in LEARNED_VARIANCE_TYPES
        self._timestep_batches: dict = {}   # (t, batch, device) -> (tensor, its version when made)
        if self.module is not None:
            self.module.eval()
            try:
                first = next(self.module.parameters())
                self.device, self.dtype = first.device, first.dtype
            except StopIteration:
                pass

    @property
    def is_image_module(self) -> bool:
        """An image model given as a torch module: the kind whose memory layout can change."""
        return self.module is not None and len(self.card.data_shape) == 3

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> "NetworkDenoiser":
        device = torch.device(device)
        if device != self.device or dtype != self.dtype:
            self.use_plain_network(forget=True)   # faster networks hold weights where they were
            if self.module is not None:
                self.module.to(device=device, dtype=dtype)
        self.device, self.dtype = device, dtype
        return self

    def use_network(self, network: Network, channels_last: bool = False) -> None:
        """Call ``network`` (a faster version of the plain one) from now on, with the module's weights in the
        layout it was built for."""
        self.network = network
        self._set_channels_last(channels_last)

    def use_plain_network(self, forget: bool = False) -> None:
        """Back to the plain network and the contiguous layout; ``forget`` drops every faster network built."""
        self.network = self.plain_network
        self.faster.in_use = None
        if forget:
            self.faster.built.clear()
            self.faster.timings.clear()
        self._set_channels_last(False)

    def _set_channels_last(self, on: bool) -> None:
        if self.is_image_module:
            self.module.to(memory_format=torch.channels_last if on else torch.contiguous_format)

    def raw(self, x_t: torch.Tensor, t: torch.Tensor, class_labels: torch.Tensor | None) -> torch.Tensor:
        if class_labels is not None and not self.card.conditional:
            raise SettingsError(f"model {self.card.name!r} is unconditional: it takes no class label")
        return self.network(x_t.to(self.dtype), t, class_labels)

    def predict(self, x_t: torch.Tensor, t: float, class_labels: torch.Tensor | None = None,
                sqrt_terms: tuple[float, float] | None = None) -> Prediction:
        card = self.card
        if x_t.shape[1:] != card.data_shape:
            raise SettingsError(f"x_t must have shape (batch, {', '.join(map(str, card.data_shape))}) for model "
                                f"{card.name!r}, got {tuple(x_t.shape)}")
        t = int(t) if float(t).is_integer() else float(t)
        raw = self.raw(x_t, self._timestep_batch(t, x_t.shape[0], x_t.device), class_labels)
        return self.prediction_from_raw(raw, x_t, t, sqrt_terms)

    def prediction_from_raw(self, raw: torch.Tensor, x_t: torch.Tensor, t: float,
                            sqrt_terms: tuple[float, float] | None = None) -> Prediction:
        """What ``predict`` makes of the network's output ``raw`` for x_t at t (also for rows of a call that
        several runs shared, ``studio.core.shared_calls``)."""
        raw = raw.float()
        var_values = None
        if self._learned_variance:
            raw, var_values = split_learned_variance(raw, self.card.channels, self.card.variance_type)
        if sqrt_terms is None and self._convert_reciprocal is not None and isinstance(t, int):
            return self._convert_reciprocal(raw, x_t, *self.schedule.reciprocal_terms(t), var_values)
        return self._convert(raw, x_t, *(sqrt_terms or self.schedule.sqrt_terms(t)), var_values)

    def _timestep_batch(self, t: float, batch: int, device: torch.device) -> torch.Tensor:
        """The (batch,) tensor of t the network takes (see ``timestep_dtype``), made once per (t, batch,
        device): a run calls the model at the same t several times (guidance, split batches, the next run).
        Made again if anything wrote into it."""
        key = (t, batch, device)
        kept = self._timestep_batches.get(key)
        if kept is not None and kept[0]._version == kept[1]:
            return kept[0]
        if len(self._timestep_batches) >= _TIMESTEP_BATCHES_KEPT:
            self._timestep_batches.clear()
        with torch.inference_mode(False):   # a normal tensor: usable in any mode, and it counts its writes
            t_batch = torch.full((batch,), t, dtype=timestep_dtype(t), device=device)
        self._timestep_batches[key] = (t_batch, t_batch._version)
        return t_batch
