"""Building blocks shared by the studio's networks: time embedding, class embedding, residual and attention blocks."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.weak import WeakIdKeyDictionary

from ...errors import SettingsError

# label tensors on a GPU already found in range: tensor -> (its version counter, the highest label allowed)
_CHECKED_LABELS = WeakIdKeyDictionary()


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (B,) timesteps -> (B, dim): [cos(t f_i), sin(t f_i)], f_i = max_period^(-i / half)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half)
    args = timesteps.float()[:, None] * freqs[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        embedding = F.pad(embedding, (0, 1))
    return embedding


class TimeEmbedding(nn.Module):
    """t -> sinusoid(freq_dim) -> Linear -> SiLU -> Linear(out_dim)."""

    def __init__(self, freq_dim: int, out_dim: int):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))

    def forward(self, timesteps: torch.Tensor) -> torch.Tensor:
        # cast to the weights' dtype so the network also runs in half precision
        return self.mlp(timestep_embedding(timesteps, self.freq_dim).to(self.mlp[0].weight.dtype))


class ClassEmbedding(nn.Module):
    """num_classes real classes plus one null class (index num_classes) meaning "no class", for classifier-free
    guidance. Labels of None mean the null class for the whole batch."""

    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        self.num_classes = num_classes
        self.table = nn.Embedding(num_classes + 1, dim)

    @property
    def null_class(self) -> int:
        return self.num_classes

    def forward(self, class_labels: torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor:
        if class_labels is None:
            return self.table(torch.full((batch,), self.null_class, dtype=torch.long, device=device))
        given = class_labels
        class_labels = torch.as_tensor(class_labels, device=device).long().reshape(-1)
        if class_labels.shape[0] != batch:
            raise SettingsError(f"class labels: expected {batch} labels (one per sample), got {class_labels.shape[0]}")
        if not torch.compiler.is_compiling():   # a compiled network leaves the check to its caller (the engine's)
            self._check_range(given, class_labels)
        return self.table(class_labels)

    def _check_range(self, given, class_labels: torch.Tensor) -> None:
        """Labels out of range are an error here, not an index error (or a device-side assert) in the table.
        On the CPU that costs two small reductions and is done at every call. On a GPU reading min and max waits
        for the device: there a tensor checked before, unchanged since, is not read again (a run passes the same
        labels tensor at every step, so it waits once per run)."""
        if class_labels.device.type == "meta":
            return   # a size estimate before the real build: there are no values to check
        if class_labels.device.type == "cuda" and torch.cuda.is_current_stream_capturing():
            return   # a CUDA graph being recorded cannot read values; the graph's caller checks (the engine's)
        version = None
        if class_labels.device.type != "cpu" and isinstance(given, torch.Tensor) and not given.is_inference():
            version = given._version
        if version is not None and _CHECKED_LABELS.get(given) == (version, self.null_class):
            return
        if class_labels.numel() and (int(class_labels.min()) < 0 or int(class_labels.max()) > self.null_class):
            raise SettingsError(
                f"class labels must be from 0 to {self.num_classes - 1}, or {self.null_class} for no class; "
                f"got {class_labels.tolist()}"
            )
        if version is not None:   # (an inference tensor does not count its writes: checked at every call)
            _CHECKED_LABELS[given] = (version, self.null_class)


def check_labels_allowed(class_labels, conditional: bool) -> None:
    if class_labels is not None and not conditional:
        raise SettingsError("this network is unconditional (num_classes = 0): it takes no class labels")


def zero_init(module: nn.Module) -> nn.Module:
    """Zero a layer's weights so a residual branch starts as the identity (improved-diffusion's choice)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv, plus the embedding as a per-channel shift, GroupNorm -> SiLU -> dropout -> conv,
    added to the (1x1-projected) input."""

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int, dropout: float, groups: int):
        super().__init__()
        self.in_layers = nn.Sequential(nn.GroupNorm(groups, in_channels), nn.SiLU(),
                                       nn.Conv2d(in_channels, out_channels, 3, padding=1))
        self.emb_proj = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, out_channels))
        self.out_layers = nn.Sequential(nn.GroupNorm(groups, out_channels), nn.SiLU(), nn.Dropout(dropout),
                                        zero_init(nn.Conv2d(out_channels, out_channels, 3, padding=1)))
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x) + self.emb_proj(emb)[:, :, None, None]
        return self.skip(x) + self.out_layers(h)


class AttentionBlock(nn.Module):
    """Self-attention over the H*W positions of a feature map, residual."""

    def __init__(self, channels: int, num_heads: int, groups: int):
        super().__init__()
        self.num_heads = num_heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj = zero_init(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x).reshape(b, c, h * w))                      # (B, 3C, N)
        q, k, v = qkv.reshape(b, 3, self.num_heads, c // self.num_heads, h * w).transpose(-1, -2).unbind(1)
        out = F.scaled_dot_product_attention(q, k, v)                           # (B, heads, N, C/heads)
        out = out.transpose(-1, -2).reshape(b, c, h * w)
        return x + self.proj(out).reshape(b, c, h, w)


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
