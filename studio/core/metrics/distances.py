"""Distances between two sets of samples (rows are samples; images are flattened)."""

from __future__ import annotations

import numpy as np

from ..errors import SettingsError
from .measured import Measured

SLICES = 256   # random directions of the sliced Wasserstein distance (fixed by SLICE_SEED: same for every cell)
SLICE_SEED = 0


def _rows(samples, what: str) -> np.ndarray:
    array = np.asarray(samples, dtype=np.float64)
    if array.ndim < 2 or array.shape[0] < 2:
        raise SettingsError(f"{what} needs at least 2 samples as rows, got an array of shape {array.shape}")
    return array.reshape(array.shape[0], -1)


def _same_width(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape[1] != b.shape[1]:
        raise SettingsError(f"the samples have {a.shape[1]} values each but the reference has {b.shape[1]}")


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix (negative rounding clipped)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_from_moments(mean_a, cov_a, mean_b, cov_b) -> float:
    """|mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a^1/2 C_b C_a^1/2)^1/2): the squared 2-Wasserstein distance of two
    Gaussians (what FID reports). The inner root is taken of a symmetric matrix, so it is real."""
    mean_a, mean_b = np.asarray(mean_a, np.float64), np.asarray(mean_b, np.float64)
    cov_a, cov_b = np.atleast_2d(cov_a).astype(np.float64), np.atleast_2d(cov_b).astype(np.float64)
    root_a = _psd_sqrt(cov_a)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum()
    value = float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * cross)
    return max(value, 0.0)


def frechet_distance(features, reference) -> Measured:
    """The Fréchet distance between Gaussians fitted to two feature sets (rows). Biased upwards at small sample
    counts (docs/studies.md); no standard error."""
    a, b = _rows(features, "a Fréchet distance"), _rows(reference, "a Fréchet distance")
    _same_width(a, b)
    return Measured(frechet_from_moments(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)))


def _quantiles(projected: np.ndarray, count: int) -> np.ndarray:
    """The sorted projections at ``count`` evenly spaced quantile levels (columns are directions)."""
    ordered = np.sort(projected, axis=0)
    if ordered.shape[0] == count:
        return ordered
    levels = (np.arange(count) + 0.5) / count * ordered.shape[0] - 0.5
    return np.stack([np.interp(levels, np.arange(ordered.shape[0]), column) for column in ordered.T], axis=1)


def sliced_wasserstein(samples, reference, slices: int = SLICES, seed: int = SLICE_SEED) -> Measured:
    """sqrt(mean over random unit directions theta of W2(theta . samples, theta . reference)^2): the 1-D
    distances are exact (sorted values matched by quantile). The directions are fixed by ``seed``, so two cells
    are compared on the same slices; the standard error is over the slices."""
    a, b = _rows(samples, "a sliced Wasserstein distance"), _rows(reference, "a sliced Wasserstein distance")
    _same_width(a, b)
    directions = np.random.default_rng(seed).standard_normal((a.shape[1], int(slices)))
    directions /= np.linalg.norm(directions, axis=0, keepdims=True)
    count = max(a.shape[0], b.shape[0])
    per_slice = ((_quantiles(a @ directions, count) - _quantiles(b @ directions, count)) ** 2).mean(0)
    value = float(np.sqrt(per_slice.mean()))
    # the delta method: se(sqrt(m)) = se(m) / (2 sqrt(m))
    if len(per_slice) < 2:
        return Measured(value, None)
    error = float(per_slice.std(ddof=1) / np.sqrt(len(per_slice)) / (2 * value)) if value > 0 else 0.0
    return Measured(value, error)


def rms_distance(samples, reference) -> Measured:
    """sqrt(mean_i |x_i - ref_i|^2) over paired rows (sample i against reference i), with the standard error of
    the mean square carried through the root."""
    a, b = _rows(samples, "an RMS distance"), _rows(reference, "an RMS distance")
    if a.shape != b.shape:
        raise SettingsError(f"an RMS distance pairs rows: shapes {a.shape} and {b.shape} differ")
    squared = ((a - b) ** 2).sum(1)
    value = float(np.sqrt(squared.mean()))
    error = float(squared.std(ddof=1) / np.sqrt(len(squared)) / (2 * value)) if value > 0 else 0.0
    return Measured(value, error)
