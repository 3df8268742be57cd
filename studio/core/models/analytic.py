"""Exact denoisers for Gaussian-mixture data: closed-form oracles, and models that need no weights.

For data x0 ~ sum_k w_k N(mu_k, S_k) and x_t = sqrt(a) x0 + sqrt(1 - a) eps (a = alpha_bar_t), x_t given
component k is N(sqrt(a) mu_k, a S_k + (1 - a) I), and the optimal (MMSE) predictions are
  E[x0 | x_t, k] = mu_k + sqrt(a) S_k (a S_k + (1 - a) I)^-1 (x_t - sqrt(a) mu_k),
  E[x0 | x_t]    = sum_k r_k(x_t) E[x0 | x_t, k],  r_k = posterior responsibility of component k,
  eps*(x_t)      = (x_t - sqrt(a) E[x0 | x_t]) / sqrt(1 - a).
Sampling with eps* follows the exact reverse process, so a sampler must give back the mixture.

The timestep may be fractional (a float tensor, as the sigma-space solvers pass it): a non-integer t means the
noise level those solvers mean by it, sigma_t = sqrt((1 - a) / a) interpolated linearly in log sigma between the
two neighbouring training timesteps, the exact inverse of ``studio.core.samplers.sigmas.sigma_to_t`` (so a Karras
sigma is met exactly, up to the float32 rounding of t), and a = 1 / (1 + sigma_t^2). An integer t, long or float,
is the training timestep itself. diffusers' Euler-family 'linspace' spacing interpolates sigma linearly in t
instead: there the exact model sees a slightly different noise level than the solver assumes, which is a model
error (of this oracle's reading of t), not a solver error.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..samplers.sigmas import train_sigmas
from ..schedules import NoiseSchedule
from .card import ModelCard
from .denoiser import NetworkDenoiser


class GaussianMixtureEps(torch.nn.Module):
    """eps*(x_t, t) for a Gaussian mixture over vectors (or images flattened to vectors); t may be fractional
    (module docstring)."""

    def __init__(self, schedule: NoiseSchedule, weights: Sequence[float], means, covariances, data_shape=None):
        super().__init__()
        means = torch.as_tensor(np.asarray(means, dtype=np.float64))
        covs = torch.as_tensor(np.asarray(covariances, dtype=np.float64))
        if means.ndim == 1:
            means, covs = means[None], covs[None]
        weights = torch.as_tensor(np.asarray(weights, dtype=np.float64))
        self.register_buffer("means", means)                   # (K, D)
        self.register_buffer("covariances", covs)             # (K, D, D)
        self.register_buffer("log_weights", torch.log(weights / weights.sum()))
        # the alpha_bar the samplers compute with, so the oracle is optimal for exactly the process they run
        self.register_buffer("alpha_bar", torch.as_tensor(schedule.alpha_bar32, dtype=torch.float64))
        # log sigma_t as sigma_to_t reads it (the log of the float32 training sigmas), for fractional timesteps
        self.register_buffer("log_sigmas", torch.as_tensor(np.log(train_sigmas(schedule)), dtype=torch.float64))
        self.data_shape = tuple(data_shape) if data_shape is not None else (means.shape[1],)

    def alpha_bar_at(self, t: torch.Tensor) -> torch.Tensor:
        """alpha_bar of each timestep (float64, t's shape): the schedule's at an integer t; at a fractional one
        1 / (1 + sigma^2) with log sigma interpolated linearly between the neighbouring timesteps (clamped to
        the schedule's ends), the inverse of ``sigma_to_t``."""
        if not t.is_floating_point():
            return self.alpha_bar[t.long()]
        t = t.to(torch.float64)
        last = self.alpha_bar.shape[0] - 1
        low = t.floor().clamp(0, last - 1)
        weight = (t - low).clamp(0, 1)
        low = low.long()
        log_sigma = self.log_sigmas[low] - weight * (self.log_sigmas[low] - self.log_sigmas[low + 1])
        interpolated = 1.0 / (1.0 + torch.exp(2.0 * log_sigma))
        whole = t == t.round()
        return torch.where(whole, self.alpha_bar[t.round().long().clamp(0, last)], interpolated)

    def _components(self, x_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(E[x0 | x_t, k] of shape (B, K, D), log p(k | x_t) of shape (B, K)), float64."""
        return self._components_at(x_t, self.alpha_bar_at(t))

    def _components_at(self, x_t: torch.Tensor, alpha_bar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``_components`` at the noise level ``alpha_bar`` (float64, one per row or one for all)."""
        x = x_t.reshape(x_t.shape[0], -1).to(torch.float64)
        a = alpha_bar.reshape(-1, 1, 1)                                       # (B or 1, 1, 1)
        eye = torch.eye(x.shape[1], dtype=torch.float64, device=x.device)
        cov_t = a[:, None] * self.covariances[None] + (1 - a[:, None]) * eye  # (B, K, D, D)
        centred = x[:, None, :] - a.sqrt() * self.means[None]                 # (B, K, D)
        if a.shape[0] == 1:   # one noise level for every row: K solves, not B x K (an ODE solver's calls)
            solved = torch.einsum("kde,bke->bkd", torch.linalg.inv(cov_t[0]), centred)
        else:
            solved = torch.linalg.solve(cov_t, centred.unsqueeze(-1)).squeeze(-1)  # (B, K, D)
        x0_k = self.means[None] + a.sqrt() * torch.einsum("kde,bke->bkd", self.covariances, solved)
        log_lik = -0.5 * ((centred * solved).sum(-1) + torch.linalg.slogdet(cov_t).logabsdet)
        return x0_k, torch.log_softmax(self.log_weights[None] + log_lik, dim=1)

    def posterior_mean(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """E[x0 | x_t] as float64, shape (B, D)."""
        x0_k, log_posterior = self._components(x_t, t)
        return (log_posterior.exp().unsqueeze(-1) * x0_k).sum(1)

    def denoise(self, x_sigma: torch.Tensor, sigma: float) -> torch.Tensor:
        """The exact denoiser in Karras et al.'s sigma form, D(x; sigma) = E[x0 | x_t] for the sample
        x_sigma = x0 + sigma eps, i.e. x_t = x_sigma / sqrt(1 + sigma^2) at alpha_bar = 1 / (1 + sigma^2); any
        sigma > 0, no timestep involved (float64, shape (B, D))."""
        alpha_bar = torch.tensor(1.0 / (1.0 + sigma * sigma), dtype=torch.float64, device=x_sigma.device)
        x0_k, log_posterior = self._components_at(x_sigma.to(torch.float64) * alpha_bar.sqrt(), alpha_bar)
        return (log_posterior.exp().unsqueeze(-1) * x0_k).sum(1)

    def component_log_posterior(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """log p(k | x_t) for each mixture component k, shape (B, K); differentiable in x_t."""
        return self._components(x_t, t)[1]

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, class_labels=None) -> torch.Tensor:
        x = x_t.reshape(x_t.shape[0], -1).to(torch.float64)
        a = self.alpha_bar_at(t).reshape(-1, 1)
        eps = (x - a.sqrt() * self.posterior_mean(x_t, t)) / (1 - a).sqrt()
        return eps.reshape(x_t.shape).to(x_t.dtype)


def gaussian_mixture_denoiser(
    weights: Sequence[float],
    means,
    covariances,
    card: ModelCard | None = None,
    name: str = "gaussian-mixture (exact)",
) -> NetworkDenoiser:
    """A Denoiser whose eps is the exact optimum for the given mixture (vector data)."""
    means_arr = np.atleast_2d(np.asarray(means, dtype=np.float64))
    dim = means_arr.shape[1]
    if card is None:
        card = ModelCard(name=name, data_kind="vector", data_shape=(dim,), value_range=(-10.0, 10.0),
                         clip_sample=False, format="memory", description="closed-form optimal denoiser")
    network = GaussianMixtureEps(card.schedule(), weights, means, covariances)
    return NetworkDenoiser(network, card)


class GaussianMixtureClassifier:
    """The exact noise-aware classifier of a mixture: log p(component y | x_t). With classifier guidance at
    scale 1 it turns the mixture's denoiser into the exact denoiser of component y (Bayes' rule on scores)."""

    def __init__(self, mixture: GaussianMixtureEps):
        self.mixture = mixture

    def log_prob(self, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        log_posterior = self.mixture.component_log_posterior(x_t, t)
        return log_posterior.gather(1, labels.long().reshape(-1, 1)).squeeze(1)

    def to(self, device):
        self.mixture.to(device)
        return self
