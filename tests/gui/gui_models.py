"""Tiny models for driving the window: cheap enough for many runs per test, with hooks to hold or break a
chosen call."""

from __future__ import annotations

import threading

import numpy as np
import torch

from studio.core.models.analytic import gaussian_mixture_denoiser
from studio.core.models.card import ModelCard
from studio.core.models.denoiser import NetworkDenoiser

GATE_TIMEOUT_S = 10.0   # a safety net only: a test that forgets to open the gate fails instead of hanging


class TinyDigitsEps(torch.nn.Module):
    """eps = a x_t minus a pull towards a per-class 8x8 pattern: cheap, deterministic, class-dependent.

    ``hold_at``: call index at which the network waits for ``gate`` (set by the test) -- a model call that is
    "in flight" for as long as the test wants. ``nan_at``: call index from which it answers NaN.
    ``out_of_memory_at``: call index at which it raises torch's OutOfMemoryError, as a full GPU would.
    ``error``, ``error_at``: the exception it raises at that call index, as a broken network would.
    """

    def __init__(self, num_classes: int = 10, hold_at: int | None = None, nan_at: int | None = None,
                 out_of_memory_at: int | None = None, error: BaseException | None = None,
                 error_at: int | None = None):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.patterns = torch.nn.Parameter(torch.rand(num_classes + 1, 1, 8, 8, generator=generator) * 2 - 1)
        self.calls = 0
        self.hold_at = hold_at
        self.nan_at = nan_at
        self.out_of_memory_at = out_of_memory_at
        self.error, self.error_at = error, error_at
        self.gate = threading.Event()
        self.held = threading.Event()

    def forward(self, x, t, class_labels=None):
        call = self.calls
        self.calls += 1
        if self.hold_at is not None and call >= self.hold_at:
            self.held.set()
            if not self.gate.wait(GATE_TIMEOUT_S):
                raise RuntimeError("test gate was never opened")
        if call == self.out_of_memory_at:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        if call == self.error_at:
            raise self.error
        target = self.patterns[class_labels] if class_labels is not None else self.patterns[-1:].expand_as(x)
        eps = 0.6 * x - 0.4 * target
        if self.nan_at is not None and call >= self.nan_at:
            eps = eps * float("nan")
        return eps


def digits_card(name: str = "tiny-digits", **changes) -> ModelCard:
    values = dict(name=name, data_kind="image", data_shape=(1, 8, 8), class_names=tuple(str(i) for i in range(10)),
                  null_class=10, num_train_timesteps=100, format="memory", clip_sample=True)
    values.update(changes)
    return ModelCard(**values)


def tiny_digits(name: str = "tiny-digits", **network_options) -> NetworkDenoiser:
    return NetworkDenoiser(TinyDigitsEps(**network_options), digits_card(name))


def tiny_vector() -> NetworkDenoiser:
    """The exact denoiser of a 3-component mixture in 2-D (T = 1000)."""
    means = np.array([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]])
    covariances = np.stack([np.eye(2) * 0.05] * 3)
    return gaussian_mixture_denoiser([1, 1, 1], means, covariances, name="three-blobs")


# --- checkpoint files (studio format), for opening through the real loaders --------------------------------------
def randomised(network: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Small random weights everywhere (a fresh studio UNet answers 0: its output layer starts at zero)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.copy_(0.2 * torch.randn(parameter.shape, generator=generator))
    return network.eval()


def write_unet_checkpoint(path, name: str = "file-digits", base_channels: int = 8, num_classes: int = 10,
                          random_seed: int | None = None):
    """A small class-conditional 8x8 UNet saved as a studio checkpoint; returns the path. ``random_seed``: give
    it random weights, so its answers depend on every input (as a trained network's do)."""
    from studio.core.checkpoints import save_studio_checkpoint
    from studio.core.models.networks import build_network

    architecture = {"name": "unet", "config": {"image_size": 8, "in_channels": 1, "base_channels": base_channels,
                                                "channel_mult": [1, 2], "num_res_blocks": 1,
                                                "attention_resolutions": [], "norm_groups": 4,
                                                "num_classes": num_classes}}
    card = ModelCard(name=name, data_kind="image", data_shape=(1, 8, 8), num_train_timesteps=100,
                     class_names=tuple(str(k) for k in range(num_classes)), null_class=num_classes,
                     architecture=architecture)
    network = build_network(architecture)
    return save_studio_checkpoint(path, network if random_seed is None else randomised(network, random_seed), card)


def write_classifier_checkpoint(path, name: str = "file-classifier", num_classes: int = 10,
                                num_train_timesteps: int = 100, seed: int = 3):
    """A small noise-aware 8x8 classifier with random weights, saved as a studio checkpoint; returns the path.
    With the defaults it fits ``write_unet_checkpoint``'s model (same images, classes and T)."""
    from studio.core.checkpoints import save_studio_checkpoint
    from studio.core.models.networks import build_network

    architecture = {"name": "classifier", "config": {"image_size": 8, "in_channels": 1, "num_classes": num_classes,
                                                      "base_channels": 8, "channel_mult": [1, 2], "norm_groups": 4}}
    card = ModelCard(name=name, role="classifier", data_shape=(1, 8, 8), num_train_timesteps=num_train_timesteps,
                     class_names=tuple(str(k) for k in range(num_classes)), architecture=architecture)
    return save_studio_checkpoint(path, randomised(build_network(architecture), seed), card)


def write_mlp_checkpoint(path, name: str = "file-blobs", hidden: int = 32, depth: int = 2):
    """An MLP vector denoiser saved as a studio checkpoint; returns the path."""
    from studio.core.checkpoints import save_studio_checkpoint
    from studio.core.models.networks import build_network

    architecture = {"name": "mlp", "config": {"data_dim": 2, "hidden": hidden, "depth": depth, "time_embed_dim": 16}}
    card = ModelCard(name=name, data_kind="vector", data_shape=(2,), num_train_timesteps=100, clip_sample=False,
                     value_range=(-4.0, 4.0), architecture=architecture)
    return save_studio_checkpoint(path, build_network(architecture), card)
