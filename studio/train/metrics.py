"""Distances between two samples of points, for judging a 2-D model against its true distribution."""

from __future__ import annotations

import torch


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, projections: int = 256, seed: int = 0) -> float:
    """Sliced Wasserstein-1 distance between equal-size point sets (N, D): the mean, over random unit directions,
    of the 1-D Wasserstein-1 distance between the projections (which is the mean gap between sorted values)."""
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"sliced_wasserstein needs two (N, D) sets of the same shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    generator = torch.Generator().manual_seed(seed)
    directions = torch.randn((a.shape[1], projections), generator=generator, dtype=torch.float64)
    directions /= directions.norm(dim=0, keepdim=True)
    proj_a = torch.sort(a.double() @ directions, dim=0).values
    proj_b = torch.sort(b.double() @ directions, dim=0).values
    return float((proj_a - proj_b).abs().mean())


def mmd_rbf(a: torch.Tensor, b: torch.Tensor, bandwidth: float) -> float:
    """Unbiased squared maximum mean discrepancy with the Gaussian kernel exp(-|x - y|^2 / (2 bandwidth^2))."""
    a, b = a.double(), b.double()
    kernel = lambda x, y: torch.exp(-torch.cdist(x, y) ** 2 / (2 * bandwidth**2))  # noqa: E731
    n, m = a.shape[0], b.shape[0]
    k_aa, k_bb, k_ab = kernel(a, a), kernel(b, b), kernel(a, b)
    return float((k_aa.sum() - k_aa.diagonal().sum()) / (n * (n - 1))
                 + (k_bb.sum() - k_bb.diagonal().sum()) / (m * (m - 1)) - 2 * k_ab.mean())
