"""A DDPM-style UNet (Ho et al. 2020, with improved-diffusion's class embedding and learned-variance output).

Down path: per level, ``num_res_blocks`` ResBlocks (attention after each where the feature map's side is in
``attention_resolutions``), then a stride-2 conv (except at the last level). Middle: ResBlock, attention,
ResBlock. Up path mirrors it with ``num_res_blocks + 1`` ResBlocks per level, each taking one skip
connection. The time embedding (plus the class embedding, for class-conditional models) feeds every ResBlock.
Output: ``out_channels`` channels, or twice that with ``learn_sigma`` (prediction, then variance values).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ...errors import SettingsError
from .config import check_bool, check_fraction, check_int, check_int_tuple, config_to_dict, parse_config
from .layers import (AttentionBlock, ClassEmbedding, Downsample, ResBlock, TimeEmbedding, Upsample,
                     check_labels_allowed)

NAME = "unet"


@dataclass(frozen=True)
class UNetConfig:
    image_size: int = 8
    in_channels: int = 1
    out_channels: int | None = None          # None: same as in_channels (learn_sigma doubles it)
    base_channels: int = 32
    channel_mult: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (4,)
    num_heads: int = 1
    dropout: float = 0.0
    num_classes: int = 0                     # 0: unconditional; else K classes plus a null class K
    learn_sigma: bool = False
    norm_groups: int = 8

    def __post_init__(self) -> None:
        check_int(NAME, "image_size", self.image_size)
        check_int(NAME, "in_channels", self.in_channels)
        if self.out_channels is not None:
            check_int(NAME, "out_channels", self.out_channels)
        check_int(NAME, "base_channels", self.base_channels)
        check_int_tuple(NAME, "channel_mult", self.channel_mult)
        check_int(NAME, "num_res_blocks", self.num_res_blocks)
        check_int_tuple(NAME, "attention_resolutions", self.attention_resolutions, allow_empty=True)
        check_int(NAME, "num_heads", self.num_heads)
        check_fraction(NAME, "dropout", self.dropout)
        check_int(NAME, "num_classes", self.num_classes, minimum=0)
        check_bool(NAME, "learn_sigma", self.learn_sigma)
        check_int(NAME, "norm_groups", self.norm_groups)
        levels = len(self.channel_mult)
        if self.image_size % 2 ** (levels - 1):
            raise SettingsError(
                f"network {NAME!r}: image_size {self.image_size} must be divisible by 2^(levels - 1) = "
                f"{2 ** (levels - 1)} for {levels} levels of channel_mult"
            )
        resolutions = self.resolutions
        stray = [r for r in self.attention_resolutions if r not in resolutions]
        if stray:
            raise SettingsError(
                f"network {NAME!r}: attention_resolutions {list(stray)} are not feature-map sizes of this UNet "
                f"(it has {', '.join(map(str, resolutions))})"
            )
        for mult in self.channel_mult:
            channels = self.base_channels * mult
            if channels % self.norm_groups:
                raise SettingsError(
                    f"network {NAME!r}: {channels} channels (base_channels x {mult}) are not divisible by "
                    f"norm_groups {self.norm_groups}"
                )
            if self.attention_resolutions and channels % self.num_heads:
                raise SettingsError(
                    f"network {NAME!r}: {channels} channels are not divisible by num_heads {self.num_heads}"
                )

    @property
    def resolutions(self) -> tuple[int, ...]:
        return tuple(self.image_size // 2**level for level in range(len(self.channel_mult)))

    @property
    def data_channels(self) -> int:
        return self.out_channels if self.out_channels is not None else self.in_channels


class UNet(nn.Module):
    """forward(x, t, class_labels or None) -> (B, out_channels [x2 with learn_sigma], H, W)."""

    config_type = UNetConfig

    def __init__(self, **config):
        super().__init__()
        cfg = parse_config(UNetConfig, NAME, config)
        self.cfg = cfg
        self.config = config_to_dict(cfg)
        ch = cfg.base_channels
        emb_dim = 4 * ch
        groups = cfg.norm_groups
        self.time_embed = TimeEmbedding(ch, emb_dim)
        self.class_embed = ClassEmbedding(cfg.num_classes, emb_dim) if cfg.num_classes else None
        self.input_conv = nn.Conv2d(cfg.in_channels, ch, 3, padding=1)

        def block(c_in: int, c_out: int, resolution: int) -> nn.ModuleList:
            layers = [ResBlock(c_in, c_out, emb_dim, cfg.dropout, groups)]
            if resolution in cfg.attention_resolutions:
                layers.append(AttentionBlock(c_out, cfg.num_heads, groups))
            return nn.ModuleList(layers)

        self.down = nn.ModuleList()
        skip_channels = [ch]
        current = ch
        for level, mult in enumerate(cfg.channel_mult):
            resolution = cfg.resolutions[level]
            for _ in range(cfg.num_res_blocks):
                self.down.append(block(current, ch * mult, resolution))
                current = ch * mult
                skip_channels.append(current)
            if level < len(cfg.channel_mult) - 1:
                self.down.append(nn.ModuleList([Downsample(current)]))
                skip_channels.append(current)

        self.middle = nn.ModuleList([ResBlock(current, current, emb_dim, cfg.dropout, groups),
                                     # num_heads is checked against channels only where attention is asked for
                                     AttentionBlock(current, cfg.num_heads if current % cfg.num_heads == 0 else 1,
                                                    groups),
                                     ResBlock(current, current, emb_dim, cfg.dropout, groups)])

        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            resolution = cfg.resolutions[level]
            for i in range(cfg.num_res_blocks + 1):
                layers = block(current + skip_channels.pop(), ch * mult, resolution)
                current = ch * mult
                if level > 0 and i == cfg.num_res_blocks:
                    layers.append(Upsample(current))
                self.up.append(layers)

        out_channels = cfg.data_channels * (2 if cfg.learn_sigma else 1)
        self.output = nn.Sequential(nn.GroupNorm(groups, current), nn.SiLU(),
                                    nn.Conv2d(current, out_channels, 3, padding=1))
        nn.init.zeros_(self.output[-1].weight)
        nn.init.zeros_(self.output[-1].bias)

    @property
    def null_class(self) -> int | None:
        return self.class_embed.null_class if self.class_embed is not None else None

    def forward(self, x: torch.Tensor, t: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        check_labels_allowed(class_labels, self.class_embed is not None)
        expected = (self.cfg.in_channels, self.cfg.image_size, self.cfg.image_size)
        if tuple(x.shape[1:]) != expected:
            raise SettingsError(f"UNet input must have shape (batch, {', '.join(map(str, expected))}), "
                                f"got {tuple(x.shape)}")
        emb = self.time_embed(t.reshape(-1).expand(x.shape[0]) if t.numel() == 1 else t)
        if self.class_embed is not None:
            emb = emb + self.class_embed(class_labels, x.shape[0], x.device)
        h = self.input_conv(x)
        skips = [h]
        for layers in self.down:
            h = _apply(layers, h, emb)
            skips.append(h)
        h = _apply(self.middle, h, emb)
        for layers in self.up:
            h = _apply(layers, torch.cat([h, skips.pop()], dim=1), emb)
        return self.output(h)


def _apply(layers: nn.ModuleList, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    for layer in layers:
        h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
    return h
