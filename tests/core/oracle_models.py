"""Small deterministic stand-ins for a network, shared by the oracle tests.

``FakeNetwork`` is a smooth non-linear function of (x, t) with per-channel structure, so every sampler term
(x0, eps, variance) is exercised; the same callable drives diffusers' schedulers and the studio's samplers.
"""

from __future__ import annotations

import torch

from studio.core.models.card import ModelCard
from studio.core.models.denoiser import NetworkDenoiser

IMAGE_SHAPE = (2, 4, 4)


class FakeNetwork:
    def __init__(self, shape=IMAGE_SHAPE, learned_variance: bool = False, seed: int = 0, scale: float = 1.0):
        g = torch.Generator().manual_seed(seed)
        self.weight = torch.randn(shape[0], 1, 1, generator=g) if len(shape) == 3 else torch.randn(shape, generator=g)
        self.pattern = torch.randn(shape, generator=g)
        self.var_pattern = torch.randn(shape, generator=g)
        self.learned_variance = learned_variance
        self.scale = scale

    def __call__(self, x: torch.Tensor, t, class_labels=None) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float32).reshape(-1, *([1] * (x.ndim - 1)))
        phase = t / 1000.0
        out = torch.tanh(x * self.weight * (0.5 + phase)) + 0.3 * self.pattern * torch.cos(3 * phase)
        out = out * self.scale
        if class_labels is not None:
            out = out + 0.1 * class_labels.float().reshape(-1, *([1] * (x.ndim - 1)))
        if self.learned_variance:
            var_values = torch.tanh(0.5 * x + self.var_pattern * (1 - phase))
            out = torch.cat([out, var_values], dim=1)
        return out


def fake_denoiser(prediction_type="epsilon", variance_type="fixed_small", clip_sample=True, shape=IMAGE_SHAPE,
                  network=None, **card_fields) -> NetworkDenoiser:
    learned = variance_type in ("learned", "learned_range")
    network = network or FakeNetwork(shape, learned_variance=learned)
    card = ModelCard(name="fake", data_kind="image" if len(shape) == 3 else "vector", data_shape=shape,
                     prediction_type=prediction_type, variance_type=variance_type, clip_sample=clip_sample,
                     **card_fields)
    return NetworkDenoiser(network, card)
