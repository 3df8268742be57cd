"""A noise-aware classifier opened from a checkpoint: log p(y | x_t, t) per sample, for classifier guidance."""

from __future__ import annotations

import torch

from ..models.card import ModelCard


class LoadedClassifier:
    """The network plus its card; ``log_prob`` runs the network in its dtype and answers in float32."""

    def __init__(self, network: torch.nn.Module, card: ModelCard):
        self.network = network.eval()
        self.card = card
        self.device = torch.device("cpu")
        self.dtype = torch.float32

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> "LoadedClassifier":
        self.device, self.dtype = torch.device(device), dtype
        self.network.to(device=self.device, dtype=dtype)
        return self

    def log_prob(self, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.network.log_prob(x_t.to(self.dtype), t, labels).float()
