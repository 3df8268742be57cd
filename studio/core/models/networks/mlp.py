"""An MLP denoiser for vector data (2-D toy distributions and the like).

x -> Linear(hidden); then ``depth`` residual blocks h += Linear(SiLU(LayerNorm(h) + emb_proj(emb))), where emb is
the time embedding (plus the class embedding for class-conditional models); then LayerNorm -> SiLU -> Linear
to ``data_dim`` outputs (twice that with ``learn_sigma``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ...errors import SettingsError
from .config import check_bool, check_fraction, check_int, config_to_dict, parse_config
from .layers import ClassEmbedding, TimeEmbedding, check_labels_allowed

NAME = "mlp"


@dataclass(frozen=True)
class MLPConfig:
    data_dim: int = 2
    hidden: int = 128
    depth: int = 3
    time_embed_dim: int = 64
    dropout: float = 0.0
    num_classes: int = 0
    learn_sigma: bool = False

    def __post_init__(self) -> None:
        check_int(NAME, "data_dim", self.data_dim)
        check_int(NAME, "hidden", self.hidden)
        check_int(NAME, "depth", self.depth)
        check_int(NAME, "time_embed_dim", self.time_embed_dim, minimum=2)
        check_fraction(NAME, "dropout", self.dropout)
        check_int(NAME, "num_classes", self.num_classes, minimum=0)
        check_bool(NAME, "learn_sigma", self.learn_sigma)


class _Block(nn.Module):
    def __init__(self, hidden: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.emb_proj = nn.Linear(hidden, hidden)
        self.linear = nn.Sequential(nn.SiLU(), nn.Dropout(dropout), nn.Linear(hidden, hidden))

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return h + self.linear(self.norm(h) + self.emb_proj(emb))


class MLPDenoiser(nn.Module):
    """forward(x, t, class_labels or None) -> (B, data_dim [x2 with learn_sigma])."""

    config_type = MLPConfig

    def __init__(self, **config):
        super().__init__()
        cfg = parse_config(MLPConfig, NAME, config)
        self.cfg = cfg
        self.config = config_to_dict(cfg)
        self.time_embed = TimeEmbedding(cfg.time_embed_dim, cfg.hidden)
        self.class_embed = ClassEmbedding(cfg.num_classes, cfg.hidden) if cfg.num_classes else None
        self.input = nn.Linear(cfg.data_dim, cfg.hidden)
        self.blocks = nn.ModuleList(_Block(cfg.hidden, cfg.dropout) for _ in range(cfg.depth))
        self.output = nn.Sequential(nn.LayerNorm(cfg.hidden), nn.SiLU(),
                                    nn.Linear(cfg.hidden, cfg.data_dim * (2 if cfg.learn_sigma else 1)))

    @property
    def null_class(self) -> int | None:
        return self.class_embed.null_class if self.class_embed is not None else None

    def forward(self, x: torch.Tensor, t: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        check_labels_allowed(class_labels, self.class_embed is not None)
        if x.ndim != 2 or x.shape[1] != self.cfg.data_dim:
            raise SettingsError(f"MLP input must have shape (batch, {self.cfg.data_dim}), got {tuple(x.shape)}")
        emb = self.time_embed(t.reshape(-1).expand(x.shape[0]) if t.numel() == 1 else t)
        if self.class_embed is not None:
            emb = emb + self.class_embed(class_labels, x.shape[0], x.device)
        h = self.input(x)
        for block in self.blocks:
            h = block(h, emb)
        return self.output(h)
