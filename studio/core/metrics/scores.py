"""Scores of samples on their own: log-likelihood under a known density, class share under a classifier."""

from __future__ import annotations

import math

import numpy as np

from ..errors import SettingsError
from .measured import Measured


def mixture_log_likelihood(samples, weights, means, covariances) -> Measured:
    """The mean over samples of log p(x) under the Gaussian mixture sum_k w_k N(mu_k, C_k), in nats, with the
    standard error of that mean."""
    x = np.asarray(samples, dtype=np.float64)
    x = x.reshape(x.shape[0], -1)
    means = np.atleast_2d(np.asarray(means, dtype=np.float64))
    covariances = np.asarray(covariances, dtype=np.float64).reshape(means.shape[0], means.shape[1], means.shape[1])
    weights = np.asarray(weights, dtype=np.float64)
    if x.shape[1] != means.shape[1]:
        raise SettingsError(f"the samples have {x.shape[1]} values each but the mixture is {means.shape[1]}-D")
    log_parts = []
    for weight, mean, cov in zip(weights / weights.sum(), means, covariances):
        centred = x - mean
        solved = np.linalg.solve(cov, centred.T).T
        _, log_det = np.linalg.slogdet(cov)
        log_parts.append(math.log(weight) - 0.5 * ((centred * solved).sum(1) + log_det + x.shape[1] * math.log(2 * math.pi)))
    stacked = np.stack(log_parts, axis=1)
    top = stacked.max(1, keepdims=True)
    per_sample = (top + np.log(np.exp(stacked - top).sum(1, keepdims=True)))[:, 0]
    error = float(per_sample.std(ddof=1) / math.sqrt(len(per_sample))) if len(per_sample) > 1 else None
    return Measured(float(per_sample.mean()), error)


def class_share(predicted, requested) -> Measured:
    """The share of samples whose predicted class is the one requested, with its binomial standard error
    sqrt(p (1 - p) / n)."""
    predicted, requested = np.asarray(predicted).reshape(-1), np.asarray(requested).reshape(-1)
    if predicted.shape != requested.shape or predicted.size == 0:
        raise SettingsError(f"a class share needs one requested class per sample: {predicted.size} predictions, "
                            f"{requested.size} requested")
    share = float((predicted == requested).mean())
    return Measured(share, math.sqrt(share * (1 - share) / predicted.size))
