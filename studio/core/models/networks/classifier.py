"""A small noise-aware image classifier for classifier guidance: logits of p(y | x_t, t).

The encoder half of the UNet (ResBlocks fed by the time embedding, stride-2 downsampling), then
GroupNorm -> SiLU -> global average pool -> Linear to ``num_classes`` logits. It answers
studio.core.guidance.Classifier: ``log_prob(x_t, t, labels)`` is log softmax at each sample's label.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ...errors import SettingsError
from .config import check_fraction, check_int, check_int_tuple, config_to_dict, parse_config
from .layers import Downsample, ResBlock, TimeEmbedding

NAME = "classifier"


@dataclass(frozen=True)
class ClassifierConfig:
    image_size: int = 8
    in_channels: int = 1
    num_classes: int = 10
    base_channels: int = 32
    channel_mult: tuple[int, ...] = (1, 2)
    num_res_blocks: int = 1
    dropout: float = 0.0
    norm_groups: int = 8

    def __post_init__(self) -> None:
        check_int(NAME, "image_size", self.image_size)
        check_int(NAME, "in_channels", self.in_channels)
        check_int(NAME, "num_classes", self.num_classes, minimum=2)
        check_int(NAME, "base_channels", self.base_channels)
        check_int_tuple(NAME, "channel_mult", self.channel_mult)
        check_int(NAME, "num_res_blocks", self.num_res_blocks)
        check_fraction(NAME, "dropout", self.dropout)
        check_int(NAME, "norm_groups", self.norm_groups)
        levels = len(self.channel_mult)
        if self.image_size % 2 ** (levels - 1):
            raise SettingsError(
                f"network {NAME!r}: image_size {self.image_size} must be divisible by 2^(levels - 1) = "
                f"{2 ** (levels - 1)} for {levels} levels of channel_mult"
            )
        for mult in self.channel_mult:
            if (self.base_channels * mult) % self.norm_groups:
                raise SettingsError(
                    f"network {NAME!r}: {self.base_channels * mult} channels (base_channels x {mult}) are not "
                    f"divisible by norm_groups {self.norm_groups}"
                )


class NoisyClassifier(nn.Module):
    """forward(x_t, t) -> (B, num_classes) logits; log_prob(x_t, t, labels) -> (B,)."""

    config_type = ClassifierConfig

    def __init__(self, **config):
        super().__init__()
        cfg = parse_config(ClassifierConfig, NAME, config)
        self.cfg = cfg
        self.config = config_to_dict(cfg)
        ch = cfg.base_channels
        emb_dim = 4 * ch
        self.time_embed = TimeEmbedding(ch, emb_dim)
        self.input_conv = nn.Conv2d(cfg.in_channels, ch, 3, padding=1)
        self.blocks = nn.ModuleList()
        current = ch
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                self.blocks.append(ResBlock(current, ch * mult, emb_dim, cfg.dropout, cfg.norm_groups))
                current = ch * mult
            if level < len(cfg.channel_mult) - 1:
                self.blocks.append(Downsample(current))
        self.head = nn.Sequential(nn.GroupNorm(cfg.norm_groups, current), nn.SiLU())
        self.logits = nn.Linear(current, cfg.num_classes)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        expected = (self.cfg.in_channels, self.cfg.image_size, self.cfg.image_size)
        if tuple(x_t.shape[1:]) != expected:
            raise SettingsError(f"classifier input must have shape (batch, {', '.join(map(str, expected))}), "
                                f"got {tuple(x_t.shape)}")
        emb = self.time_embed(t.reshape(-1).expand(x_t.shape[0]) if t.numel() == 1 else t)
        h = self.input_conv(x_t)
        for block in self.blocks:
            h = block(h, emb) if isinstance(block, ResBlock) else block(h)
        return self.logits(self.head(h).mean(dim=(2, 3)))

    def log_prob(self, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """log p(y = labels | x_t, t), one value per sample."""
        labels = torch.as_tensor(labels, device=x_t.device).long().reshape(-1)
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.cfg.num_classes):
            raise SettingsError(f"classifier labels must be from 0 to {self.cfg.num_classes - 1}, "
                                f"got {labels.tolist()}")
        log_probs = F.log_softmax(self.forward(x_t, t).float(), dim=-1)
        return log_probs.gather(1, labels[:, None]).squeeze(1)
