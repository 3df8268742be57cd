"""The DDPM training objective over a NoiseSchedule (Ho et al. 2020; Nichol & Dhariwal 2021 for learned variance).

x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps, t uniform in 0 .. T-1. The network's output is regressed
(mean squared error) onto its target: eps ("epsilon"), x0 ("sample") or v = sqrt(alpha_bar) eps -
sqrt(1 - alpha_bar) x0 ("v_prediction"). A learned-variance network ("learned_range") adds the variational
bound term L_t on its variance channels, with the mean held fixed (stop-gradient), as improved-diffusion does.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..core.schedules import NoiseSchedule


class TrainingSchedule:
    """The schedule's per-timestep coefficients as float32 tensors, indexed by a (B,) batch of timesteps."""

    def __init__(self, schedule: NoiseSchedule, device: torch.device | str = "cpu"):
        as_tensor = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32, device=device)  # noqa: E731
        self.num_train_timesteps = schedule.num_train_timesteps
        self.sqrt_alpha_bar = as_tensor(schedule.sqrt_alpha_bar)
        self.sqrt_one_minus_alpha_bar = as_tensor(schedule.sqrt_one_minus_alpha_bar)
        # q(x_{t-1} | x_t, x0) = N(coef_x0 x0 + coef_xt x_t, posterior_variance)
        self.posterior_coef_x0 = as_tensor(schedule.betas * np.sqrt(schedule.alpha_bar_prev) / (1 - schedule.alpha_bar))
        self.posterior_coef_xt = as_tensor(
            (1 - schedule.alpha_bar_prev) * np.sqrt(schedule.alphas) / (1 - schedule.alpha_bar))
        self.posterior_log_variance = as_tensor(schedule.posterior_log_variance_clipped)
        self.log_betas = as_tensor(np.log(schedule.betas))

    @staticmethod
    def at(values: torch.Tensor, t: torch.Tensor, ndim: int) -> torch.Tensor:
        """values[t] shaped (B, 1, ..., 1) to broadcast against a batch of ``ndim`` dimensions."""
        return values[t].reshape(-1, *([1] * (ndim - 1)))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return (self.at(self.sqrt_alpha_bar, t, x0.ndim) * x0
                + self.at(self.sqrt_one_minus_alpha_bar, t, x0.ndim) * noise)

    def target(self, prediction_type: str, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        if prediction_type == "epsilon":
            return noise
        if prediction_type == "sample":
            return x0
        return (self.at(self.sqrt_alpha_bar, t, x0.ndim) * noise
                - self.at(self.sqrt_one_minus_alpha_bar, t, x0.ndim) * x0)

    def x0_from_output(self, prediction_type: str, output: torch.Tensor, x_t: torch.Tensor,
                       t: torch.Tensor) -> torch.Tensor:
        sqrt_ab = self.at(self.sqrt_alpha_bar, t, x_t.ndim)
        sqrt_1m_ab = self.at(self.sqrt_one_minus_alpha_bar, t, x_t.ndim)
        if prediction_type == "epsilon":
            return (x_t - sqrt_1m_ab * output) / sqrt_ab
        if prediction_type == "sample":
            return output
        return sqrt_ab * x_t - sqrt_1m_ab * output

    def posterior_mean(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.at(self.posterior_coef_x0, t, x_t.ndim) * x0 + self.at(self.posterior_coef_xt, t, x_t.ndim) * x_t

    def learned_range_log_variance(self, var_values: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """improved-diffusion's 'learned_range': v in [-1, 1] interpolates log beta_tilde_t (v=-1) .. log beta_t (v=1)."""
        frac = (var_values + 1) / 2
        return (frac * self.at(self.log_betas, t, var_values.ndim)
                + (1 - frac) * self.at(self.posterior_log_variance, t, var_values.ndim))


def _normal_kl(mean1, log_var1, mean2, log_var2) -> torch.Tensor:
    """KL(N(mean1, e^log_var1) || N(mean2, e^log_var2)), elementwise."""
    return 0.5 * (-1.0 + log_var2 - log_var1 + torch.exp(log_var1 - log_var2)
                  + (mean1 - mean2) ** 2 * torch.exp(-log_var2))


def _discretized_gaussian_log_likelihood(x0: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """log P(x0) for 8-bit data in [-1, 1] under N(mean, e^log_var) integrated over x0's bin (width 2/255)."""
    inv_std = torch.exp(-0.5 * log_var)
    normal = torch.distributions.Normal(0.0, 1.0)
    cdf_plus = normal.cdf(inv_std * (x0 - mean + 1.0 / 255))
    cdf_minus = normal.cdf(inv_std * (x0 - mean - 1.0 / 255))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_minus = torch.log((1.0 - cdf_minus).clamp(min=1e-12))
    log_bin = torch.log((cdf_plus - cdf_minus).clamp(min=1e-12))
    return torch.where(x0 < -0.999, log_cdf_plus, torch.where(x0 > 0.999, log_one_minus_cdf_minus, log_bin))


def vlb_term(schedule: TrainingSchedule, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor,
             x0_pred: torch.Tensor, var_values: torch.Tensor, discrete: bool) -> torch.Tensor:
    """L_t per sample in bits per dimension: KL(q(x_{t-1}|x_t,x0) || p(x_{t-1}|x_t)) for t > 0, the decoder's
    -log p(x0|x_1) at t = 0 (discretised for 8-bit images, a density for vector data)."""
    ndim = x_t.ndim
    true_mean = schedule.posterior_mean(x0, x_t, t)
    true_log_var = schedule.at(schedule.posterior_log_variance, t, ndim)
    model_mean = schedule.posterior_mean(x0_pred, x_t, t)
    model_log_var = schedule.learned_range_log_variance(var_values, t)
    dims = tuple(range(1, ndim))
    kl = _normal_kl(true_mean, true_log_var, model_mean, model_log_var).mean(dim=dims) / math.log(2.0)
    if discrete:
        nll = -_discretized_gaussian_log_likelihood(x0, model_mean, model_log_var)
    else:
        nll = 0.5 * (math.log(2 * math.pi) + model_log_var + (x0 - model_mean) ** 2 * torch.exp(-model_log_var))
    nll = nll.mean(dim=dims) / math.log(2.0)
    return torch.where(t == 0, nll, kl)


def denoiser_loss(network, schedule: TrainingSchedule, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                  class_labels: torch.Tensor | None, prediction_type: str, learn_sigma: bool,
                  discrete: bool) -> torch.Tensor:
    """The batch's mean loss: MSE to the target, plus (for learned variance) T/1000 x L_t, improved-diffusion's
    L_hybrid = L_simple + 0.001 L_vlb with L_vlb = T E_t[L_t]."""
    x_t = schedule.q_sample(x0, t, noise)
    output = network(x_t, t, class_labels)
    if not learn_sigma:
        return ((output - schedule.target(prediction_type, x0, t, noise)) ** 2).mean()
    channels = x0.shape[1]
    prediction, var_values = output[:, :channels], output[:, channels:]
    mse = ((prediction - schedule.target(prediction_type, x0, t, noise)) ** 2).mean()
    # the variance learns through L_t alone: the mean's gradient comes from the MSE
    x0_pred = schedule.x0_from_output(prediction_type, prediction.detach(), x_t, t)
    vlb = vlb_term(schedule, x0, x_t, t, x0_pred, var_values, discrete)
    return mse + vlb.mean() * (schedule.num_train_timesteps / 1000.0)


def classifier_loss(network, schedule: TrainingSchedule, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                    labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the noise-aware classifier on x_t ~ q(x_t | x0)."""
    logits = network(schedule.q_sample(x0, t, noise), t)
    return torch.nn.functional.cross_entropy(logits, labels)
