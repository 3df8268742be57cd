"""Closed-form oracles: for Gaussian data the optimal denoiser is exact, and so is every sampler built on it.

For x0 ~ N(mu, S), E[x0 | x_t] = mu + K_t (x_t - sqrt(a) mu) with K_t = sqrt(a) S (a S + (1 - a) I)^-1, so one
DDIM or DDPM step is affine in x_t: x_prev = M x_t + c (+ sigma z). Composing the steps in float64 gives the
exact distribution the discretised sampler produces (mean and covariance), independently of the studio's code.
Two claims are tested separately:
  1. the studio's samplers produce that exact distribution (tight: DDIM eta=0 is checked map-for-map, DDPM
     statistically with tolerances from the sample size);
  2. the discretised distribution converges to the data distribution (tolerances stated per step count: DDIM
     with 50 steps under-disperses a narrow Gaussian by ~8%, an error of DDIM itself, not of the code).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from studio.core.engine import Inversion, Run, sample_final
from studio.core.models.analytic import gaussian_mixture_denoiser
from studio.core.samplers import DDIMSettings, DDPMSettings
from studio.core.schedules import select_timesteps
from studio.core.settings import RunSettings

MU = np.array([1.0, -0.5])
COV = np.array([[0.5, 0.2], [0.2, 0.3]])


@pytest.fixture(scope="module")
def gaussian():
    return gaussian_mixture_denoiser([1.0], [MU], [COV])


def _affine_chain(schedule, timesteps, eta_ddpm: bool):
    """Exact mean and covariance of the sampler's output for x_T ~ N(0, I), plus the DDIM map (A, b)."""
    alpha_bar = schedule.alpha_bar32.astype(np.float64)
    dim = len(MU)
    eye = np.eye(dim)
    mean, cov = np.zeros(dim), eye.copy()
    A, b = eye.copy(), np.zeros(dim)
    steps = list(timesteps)
    for i, t in enumerate(steps):
        a = alpha_bar[t]
        a_prev = alpha_bar[steps[i + 1]] if i + 1 < len(steps) else 1.0
        K = np.sqrt(a) * COV @ np.linalg.inv(a * COV + (1 - a) * eye)
        k0 = MU - K @ (np.sqrt(a) * MU)              # x0_hat = K x_t + k0
        E = (eye - np.sqrt(a) * K) / np.sqrt(1 - a)  # eps_hat = E x_t - sqrt(a) k0 / sqrt(1 - a)
        e0 = -np.sqrt(a) * k0 / np.sqrt(1 - a)
        if eta_ddpm:
            beta = 1 - a / a_prev
            M = np.sqrt(a_prev) * beta / (1 - a) * K + np.sqrt(1 - beta) * (1 - a_prev) / (1 - a) * eye
            c = np.sqrt(a_prev) * beta / (1 - a) * k0
            var = (1 - a_prev) / (1 - a) * beta if i + 1 < len(steps) else 0.0
        else:
            M = np.sqrt(a_prev) * K + np.sqrt(1 - a_prev) * E
            c = np.sqrt(a_prev) * k0 + np.sqrt(1 - a_prev) * e0
            var = 0.0
        mean = M @ mean + c
        cov = M @ cov @ M.T + var * eye
        A, b = M @ A, M @ b + c
    return mean, cov, A, b


def test_ddim_is_exactly_the_affine_map_of_the_discretised_chain(gaussian):
    for steps in (10, 50):
        run = Run(gaussian, RunSettings(sampler=DDIMSettings(steps=steps), batch_size=64, seed=3))
        x_T = run.x_T.double().numpy()
        x0 = None
        for step in run:
            x0 = step.x_t
        _, _, A, b = _affine_chain(gaussian.schedule, run.timesteps, eta_ddpm=False)
        expected = x_T @ A.T + b
        np.testing.assert_allclose(x0.double().numpy(), expected, atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("steps,mean_tol,cov_tol", [(50, 0.02, 0.10), (200, 0.01, 0.03), (1000, 0.005, 0.01)])
def test_ddim_discretisation_converges_to_the_data(gaussian, steps, mean_tol, cov_tol):
    timesteps = select_timesteps(1000, steps, "leading")
    mean, cov, _, _ = _affine_chain(gaussian.schedule, timesteps, eta_ddpm=False)
    assert np.abs(mean - MU).max() < mean_tol
    assert np.abs(cov - COV).max() / np.abs(COV).max() < cov_tol


def test_ddpm_1000_steps_discretisation_recovers_the_data(gaussian):
    mean, cov, _, _ = _affine_chain(gaussian.schedule, select_timesteps(1000, 1000, "leading"), eta_ddpm=True)
    assert np.abs(mean - MU).max() < 1e-3
    assert np.abs(cov - COV).max() < 0.01


def _sample_tolerance(cov, n):
    """Three standard errors of a sample covariance entry (Gaussian data): sqrt((S_ij^2 + S_ii S_jj) / n)."""
    var = np.diag(cov)
    return 3 * np.sqrt((cov**2 + np.outer(var, var)) / n)


def test_ddpm_samples_have_the_exact_mean_and_covariance(gaussian):
    n = 1500
    x = sample_final(gaussian, RunSettings(sampler=DDPMSettings(steps=1000), batch_size=n, seed=11))
    mean, cov, _, _ = _affine_chain(gaussian.schedule, select_timesteps(1000, 1000, "leading"), eta_ddpm=True)
    samples = x.double().numpy()
    assert np.all(np.abs(samples.mean(0) - mean) < 3 * np.sqrt(np.diag(cov) / n))
    assert np.all(np.abs(np.cov(samples.T) - cov) < _sample_tolerance(cov, n))
    # and therefore the data's own: within the same statistical tolerance of mu and S
    assert np.all(np.abs(samples.mean(0) - MU) < 3 * np.sqrt(np.diag(COV) / n) + 1e-3)
    assert np.all(np.abs(np.cov(samples.T) - COV) < _sample_tolerance(COV, n) + 0.01)


def test_ddim_eta_one_samples_match_the_ddpm_chain(gaussian):
    """eta = 1 is respaced DDPM (fixed_small), so its samples follow the DDPM chain over the same timesteps."""
    n = 3000
    x = sample_final(gaussian, RunSettings(sampler=DDIMSettings(steps=50, eta=1.0), batch_size=n, seed=5))
    mean, cov, _, _ = _affine_chain(gaussian.schedule, select_timesteps(1000, 50, "leading"), eta_ddpm=True)
    samples = x.double().numpy()
    assert np.all(np.abs(samples.mean(0) - mean) < 3 * np.sqrt(np.diag(cov) / n))
    assert np.all(np.abs(np.cov(samples.T) - cov) < _sample_tolerance(cov, n))


# --- a mixture: weights and means ---------------------------------------------------------------------------------
MIX_WEIGHTS = [0.25, 0.75]
MIX_MEANS = [[2.0, 2.0], [-1.5, 0.5]]
MIX_COVS = [np.eye(2) * 0.05, np.eye(2) * 0.1]


@pytest.mark.parametrize("sampler,n", [(DDIMSettings(steps=100), 4000), (DDPMSettings(steps=1000), 1000)])
def test_mixture_weights_and_means_are_recovered(sampler, n):
    denoiser = gaussian_mixture_denoiser(MIX_WEIGHTS, MIX_MEANS, MIX_COVS)
    x = sample_final(denoiser, RunSettings(sampler=sampler, batch_size=n, seed=2)).double().numpy()
    means = np.asarray(MIX_MEANS)
    nearest = np.argmin(((x[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    weights = np.bincount(nearest, minlength=2) / n
    # weight: 3 binomial standard errors; means: well inside the component spread
    assert np.all(np.abs(weights - MIX_WEIGHTS) < 3 * np.sqrt(0.25 * 0.75 / n) + 0.005)
    for k in range(2):
        assert np.abs(x[nearest == k].mean(0) - means[k]).max() < 0.05


# --- inversion ----------------------------------------------------------------------------------------------------
def test_ddim_inversion_round_trip(gaussian):
    """Data -> x_T -> data. The error shrinks with more steps (as in the DDIM paper's Table 2) and is small at 200."""
    data = torch.from_numpy(np.random.default_rng(0).multivariate_normal(MU, COV, 256)).float()
    errors = []
    for steps in (10, 50, 200):
        inversion = Inversion(gaussian, data, DDIMSettings(steps=steps))
        x_T = inversion.run()
        reconstruction = inversion.reconstruct(x_T)
        errors.append(float(((reconstruction - data) ** 2).mean()))
    assert errors[0] > errors[1] > errors[2]
    assert errors[1] < 0.01 and errors[2] < 1e-3
    # the inverted latents look like noise: mean ~0, covariance ~I
    x_T = Inversion(gaussian, data, DDIMSettings(steps=200)).run().double().numpy()
    assert np.abs(x_T.mean(0)).max() < 0.25
    assert np.abs(np.cov(x_T.T) - np.eye(2)).max() < 0.3


def test_inversion_needs_deterministic_ddim(gaussian):
    from studio.core.errors import SettingsError

    with pytest.raises(SettingsError, match="eta = 0"):
        Inversion(gaussian, torch.zeros(1, 2), DDIMSettings(steps=10, eta=0.5))
    with pytest.raises(SettingsError, match=r"shape \(batch, 2\)"):
        Inversion(gaussian, torch.zeros(3), DDIMSettings(steps=10))
