"""Tiny networks and checkpoint files of every format, for the checkpoint tests.

Every network's weights are randomised (the studio's UNet zero-initialises its output layer, so a fresh one
answers 0 whatever its weights): equal outputs after a round trip then prove the weights were loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import torch

from studio.core.checkpoints import save_studio_checkpoint
from studio.core.models.card import ModelCard
from studio.core.models.networks import build_network

UNET_ARCH = {"name": "unet", "config": {"image_size": 8, "in_channels": 1, "base_channels": 8,
                                         "channel_mult": [1, 2], "num_res_blocks": 1,
                                         "attention_resolutions": [4], "norm_groups": 4}}


def randomise(network: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in network.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=gen))
    return network.eval()


def unet(num_classes: int = 0, learn_sigma: bool = False, seed: int = 0) -> tuple[torch.nn.Module, ModelCard]:
    config = dict(UNET_ARCH["config"], num_classes=num_classes, learn_sigma=learn_sigma)
    arch = {"name": "unet", "config": config}
    card = ModelCard(name="tiny-unet", data_kind="image", data_shape=(1, 8, 8), num_train_timesteps=50,
                     class_names=tuple(f"c{k}" for k in range(num_classes)),
                     null_class=num_classes if num_classes else None,
                     variance_type="learned_range" if learn_sigma else "fixed_small", architecture=arch)
    return randomise(build_network(arch), seed), card


def mlp(seed: int = 1) -> tuple[torch.nn.Module, ModelCard]:
    arch = {"name": "mlp", "config": {"data_dim": 2, "hidden": 16, "depth": 2, "time_embed_dim": 8}}
    card = ModelCard(name="tiny-mlp", data_kind="vector", data_shape=(2,), num_train_timesteps=40,
                     prediction_type="v_prediction", beta_schedule="squaredcos_cap_v2", clip_sample=False,
                     value_range=(-4.0, 4.0), architecture=arch)
    return randomise(build_network(arch), seed), card


def classifier(seed: int = 2) -> tuple[torch.nn.Module, ModelCard]:
    arch = {"name": "classifier", "config": {"image_size": 8, "in_channels": 1, "num_classes": 3,
                                              "base_channels": 8, "channel_mult": [1, 2], "norm_groups": 4}}
    card = ModelCard(name="tiny-classifier", role="classifier", data_shape=(1, 8, 8), num_train_timesteps=50,
                     class_names=("a", "b", "c"), architecture=arch)
    return randomise(build_network(arch), seed), card


def studio_file(folder: Path, network, card, name: str = "model.safetensors") -> Path:
    return save_studio_checkpoint(folder / name, network, card)


def card_dict(card: ModelCard) -> dict:
    """The card as a user writes it: without the fields measured from the file."""
    data = card.to_dict()
    for key in ("format", "file_size", "sha256", "path", "parameter_count", "dtype"):
        data.pop(key)
    return data


def studio_file_with_card(folder: Path, data: dict, network, name: str = "model.safetensors") -> Path:
    """A studio file whose metadata card is exactly ``data`` (bypassing ModelCard's own checks)."""
    from safetensors.torch import save_file

    path = folder / name
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, path,
              metadata={"format": "sampling-studio", "studio.card": json.dumps(data)})
    return path


def state_dict_file(folder: Path, network, card, name: str = "model.pt") -> Path:
    path = folder / name
    torch.save(network.state_dict(), path)
    path.with_suffix(".json").write_text(json.dumps(card_dict(card)))
    return path


class ScriptedImageModel(torch.nn.Module):
    """An (x, t, y) model the studio has no architecture for: predicts x0 (prediction_type "sample")."""

    def __init__(self, channels: int = 2, num_classes: int = 4):
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, channels, 3, padding=1)
        self.time = torch.nn.Linear(1, channels)
        self.label = torch.nn.Embedding(num_classes, channels)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        h = self.conv(x) + self.time(t.float().reshape(-1, 1) / 1000.0)[:, :, None, None]
        if y is not None:
            h = h + self.label(y)[:, :, None, None]
        return torch.tanh(h)


class ScriptedVectorModel(torch.nn.Module):
    """An (x, t) eps model of 3-vectors."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.cat([x, t.float().reshape(-1, 1) / 100.0], dim=1))


def torchscript_file(folder: Path, module: torch.nn.Module, card_dict: dict | None, name: str = "model.pt") -> Path:
    path = folder / name
    extra = {} if card_dict is None else {"studio_card.json": json.dumps(card_dict)}
    torch.jit.save(torch.jit.script(module), str(path), _extra_files=extra)
    return path
