"""The one Denoiser protocol every checkpoint format ends as.

A denoiser answers (x_t, t, class labels or None) -> Prediction(eps, x0, var_values), whatever the
network predicts (epsilon, sample or v) and whether it learns its variance. Samplers only see this.
"""

from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

import torch

from ..errors import SettingsError
from ..prediction import Prediction, split_learned_variance, to_prediction
from ..schedules import NoiseSchedule
from .card import ModelCard

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
        if self.module is not None and (device != self.device or dtype != self.dtype):
            self.module.to(device=device, dtype=dtype)
        self.device, self.dtype = device, dtype
        return self

    def raw(self, x_t: torch.Tensor, t: torch.Tensor, class_labels: torch.Tensor | None) -> torch.Tensor:
        if class_labels is not None and not self.card.conditional:
            raise SettingsError(f"model {self.card.name!r} is unconditional: it takes no class label")
        return self.network(x_t.to(self.dtype), t, class_labels)

    def predict(self, x_t: torch.Tensor, t: int, class_labels: torch.Tensor | None = None) -> Prediction:
        expected = tuple(self.card.data_shape)
        if tuple(x_t.shape[1:]) != expected:
            raise SettingsError(
                f"x_t must have shape (batch, {', '.join(map(str, expected))}) for model {self.card.name!r}, "
                f"got {tuple(x_t.shape)}"
            )
        t_batch = torch.full((x_t.shape[0],), int(t), dtype=torch.long, device=x_t.device)
        raw = self.raw(x_t, t_batch, class_labels).float()
        out, var_values = split_learned_variance(raw, self.card.channels, self.card.variance_type)
        sqrt_ab, sqrt_1m_ab = self.schedule.sqrt_terms(int(t))
        return to_prediction(out, x_t, sqrt_ab, sqrt_1m_ab, self.card.prediction_type, var_values)
