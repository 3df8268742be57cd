"""The one Denoiser protocol every checkpoint format ends as.

A denoiser answers (x_t, t, class labels or None) -> Prediction(eps, x0, var_values), whatever the
network predicts (epsilon, sample or v) and whether it learns its variance. Samplers only see this.
"""

from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

import torch

from ..errors import SettingsError
from ..prediction import LEARNED_VARIANCE_TYPES, PREDICTION_CONVERTERS, Prediction, prediction_converter, split_learned_variance
from ..schedules import NoiseSchedule
from .card import ModelCard

_TIMESTEP_CACHE_SIZE = 4096   # (t, batch) tensors kept per denoiser: every t of a 1000-step model, a few batches

# A network maps (x, t, class_labels or None) to its raw output (C or 2C channels for learned variance).
Network = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


@runtime_checkable
class Denoiser(Protocol):
    card: ModelCard
    schedule: NoiseSchedule
    device: torch.device
    dtype: torch.dtype

    def predict(self, x_t: torch.Tensor, t: int, class_labels: torch.Tensor | None = None) -> Prediction:
        """eps and x0 (unclipped, float32) for a batch that sits at timestep t."""

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> "Denoiser":
        """Move the network; returns self."""


def tensor_version(tensor: torch.Tensor) -> int | None:
    """The tensor's count of in-place writes; None for an inference tensor, which does not count them."""
    return None if tensor.is_inference() else tensor._version


class NetworkDenoiser:
    """A Denoiser over any network callable plus its model card.

    The network runs in ``dtype`` (float32, or half precision on a GPU); the sampler's arithmetic stays in
    float32, so x_t is cast on the way in and the output on the way out.
    """

    def __init__(self, network: Network, card: ModelCard, module: torch.nn.Module | None = None):
        self.network = network
        self.card = card
        self.schedule = card.schedule()
        self.module = module if module is not None else (network if isinstance(network, torch.nn.Module) else None)
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        if self.module is not None:
            self.module.eval()
            try:
                first = next(self.module.parameters())
                self.device, self.dtype = first.device, first.dtype
            except StopIteration:
                pass

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> "NetworkDenoiser":
        device = torch.device(device)
        if device != self.device or dtype != self.dtype:
            if "_acceleration_built" in self.__dict__ or "_acceleration_state" in self.__dict__:
                from ..acceleration import forget   # a faster network's frozen weights stay where they were

                forget(self)
            if self.module is not None:
                self.module.to(device=device, dtype=dtype)
        self.device, self.dtype = device, dtype
        return self

    def _timestep_batch(self, t: int, batch: int, device: torch.device) -> torch.Tensor:
        """The (batch,) long tensor of t the network takes, made once per (t, batch, device) rather than at every
        call (a run calls the model several times at one t with guidance or a split batch,
        and every run of the same sampler at the same t again); remade if anything wrote into it."""
        key = (t, batch, device)
        cache = self.__dict__.setdefault("_timestep_batches", {})
        kept = cache.get(key)
        if kept is not None and kept[0]._version == kept[1]:   # unless something wrote into it after all
            return kept[0]
        if len(cache) >= _TIMESTEP_CACHE_SIZE:
            cache.clear()
        with torch.inference_mode(False):   # a normal tensor: usable in any mode, and it counts its writes
            t_batch = torch.full((batch,), t, dtype=torch.long, device=device)
        cache[key] = (t_batch, t_batch._version)
        return t_batch

    def raw(self, x_t: torch.Tensor, t: torch.Tensor, class_labels: torch.Tensor | None) -> torch.Tensor:
        if class_labels is not None and not self.card.conditional:
            raise SettingsError(f"model {self.card.name!r} is unconditional: it takes no class label")
        # a torch call even when it changes nothing costs microseconds right after a model call: skip those
        return self.network(x_t if x_t.dtype == self.dtype else x_t.to(self.dtype), t, class_labels)

    def predict(self, x_t: torch.Tensor, t: int, class_labels: torch.Tensor | None = None) -> Prediction:
        # One frame and no string compares per call: right after a model call the interpreter's code is cold,
        # and every call, branch and dictionary lookup here costs several times what it costs warm.
        card = self.card
        if x_t.shape[1:] != card.data_shape:   # torch.Size against the card's tuple
            expected = tuple(card.data_shape)
            raise SettingsError(
                f"x_t must have shape (batch, {', '.join(map(str, expected))}) for model {card.name!r}, "
                f"got {tuple(x_t.shape)}"
            )
        if class_labels is not None and not card.conditional:
            raise SettingsError(f"model {card.name!r} is unconditional: it takes no class label")
        t = int(t)
        kept = self.__dict__.get("_timestep_batches", {}).get((t, x_t.shape[0], x_t.device))
        if kept is not None and kept[0]._version == kept[1]:   # _timestep_batch's cache, looked up in line
            t_batch = kept[0]
        else:
            t_batch = self._timestep_batch(t, x_t.shape[0], x_t.device)
        raw = self.network(x_t if x_t.dtype == self.dtype else x_t.to(self.dtype), t_batch, class_labels)
        if raw.dtype != torch.float32:
            raw = raw.float()
        var_values = None
        if card.variance_type in LEARNED_VARIANCE_TYPES:
            raw, var_values = split_learned_variance(raw, card.channels, card.variance_type)
        sqrt_ab, sqrt_1m_ab = self.schedule.sqrt_pairs[t] if t >= 0 else self.schedule.sqrt_terms(t)
        convert = PREDICTION_CONVERTERS.get(card.prediction_type) or prediction_converter(card.prediction_type)
        return convert(raw, x_t, sqrt_ab, sqrt_1m_ab, var_values)
