"""Fold class labels and guidance into the (x_t, t) -> Prediction callable a sampler sees.

Classifier guidance follows one of two rules, both with the gradient g = scale grad_x log p(y | x_t, t):

- the studio's (every model, every sampler): eps -= sqrt(1 - alpha_bar) g before the sampler sees eps, so x0 is
  clipped after guidance (Song et al.'s score rule, applied to the raw prediction);
- guided-diffusion's, for its own models (card format ``guided_diffusion``) under DDPM and DDIM: g is handed to the
  sampler, and DDPM moves its mean by variance * g (their ``condition_mean``) while DDIM shifts eps after the clip,
  eps = eps(clipped x0) - sqrt(1 - alpha_bar) g (their ``condition_score``). The scale is their
  ``classifier_scale``, number for number. Other samplers keep the studio's rule on any model.
"""

from __future__ import annotations

import functools
from typing import Protocol, runtime_checkable

import torch

from .models.denoiser import Denoiser, timestep_dtype
from .prediction import Prediction, x0_from_eps
from .samplers.base import Predict
from .settings import GuidanceSettings


@runtime_checkable
class Classifier(Protocol):
    """A noise-aware classifier: log p(y | x_t, t) per sample, differentiable in x_t."""

    def log_prob(self, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        ...


def _with_eps(x_t: torch.Tensor, eps: torch.Tensor, sqrt_terms: tuple[float, float], var_values) -> Prediction:
    return Prediction(eps=eps, x0=x0_from_eps(x_t, eps, *sqrt_terms), var_values=var_values)


def classifier_gradient(classifier: Classifier, x_t: torch.Tensor, t: float, labels: torch.Tensor) -> torch.Tensor:
    """grad_x log p(y | x_t, t), summed over the batch (each sample's gradient is its own). A fractional t (the
    sigma-space solvers') reaches the classifier as a float timestep, as it reaches the denoiser."""
    with torch.inference_mode(False), torch.enable_grad():
        x = x_t.detach().clone().requires_grad_(True)
        t_batch = torch.full((x.shape[0],), t, dtype=timestep_dtype(t), device=x.device)
        log_prob = classifier.log_prob(x, t_batch, labels)
        (grad,) = torch.autograd.grad(log_prob.sum(), x)
    return grad.detach().float()


def gradient_to_sampler(card, sampler) -> bool:
    """Whether classifier guidance follows guided-diffusion's rule (the module docstring): its own models, under a
    sampler that applies the gradient itself."""
    return card.format == "guided_diffusion" and getattr(sampler, "applies_classifier_gradient", False)


def uses_classifier_free(guidance: GuidanceSettings) -> bool:
    """Classifier-free guidance that changes anything (scale 1 is the plain conditional model)."""
    return guidance.kind == "classifier_free" and guidance.scale != 1.0


def rows_per_model_call(guidance: GuidanceSettings, batch: int) -> int:
    """Rows the network sees in one call for a batch: classifier-free guidance calls it once on the doubled batch
    (a faster network is set up on these, so a compiled or recorded one is called on the shapes it was made for)."""
    return 2 * batch if uses_classifier_free(guidance) else batch


def make_predict(
    denoiser: Denoiser,
    model_labels: torch.Tensor | None,
    guidance: GuidanceSettings,
    target_labels: torch.Tensor | None = None,
    null_labels: torch.Tensor | None = None,
    classifier: Classifier | None = None,
    classifier_to_sampler: bool = False,
) -> Predict:
    """``model_labels`` go to the model on a plain pass; classifier-free guidance pairs ``target_labels`` with
    ``null_labels``; classifier guidance pushes towards ``target_labels``, by the studio's rule or, with
    ``classifier_to_sampler``, by handing the scaled gradient to the sampler (``gradient_to_sampler``)."""
    schedule = denoiser.schedule
    use_cfg = uses_classifier_free(guidance)
    use_classifier = guidance.kind == "classifier" and guidance.scale != 0.0
    if not use_cfg and not use_classifier:
        # a plain pass: the denoiser's own predict with the labels bound, no frame of ours in between
        return functools.partial(denoiser.predict, class_labels=model_labels)
    both_labels = torch.cat([target_labels, null_labels]) if use_cfg else None   # one tensor for every step

    def predict(x_t: torch.Tensor, t: float, sqrt_terms: tuple[float, float] | None = None) -> Prediction:
        level = sqrt_terms or schedule.sqrt_terms(t)
        if use_cfg:
            # One forward on the doubled batch: conditional half, then unconditional half.
            both = denoiser.predict(torch.cat([x_t, x_t]), t, both_labels, sqrt_terms=sqrt_terms)
            eps_cond, eps_uncond = both.eps.chunk(2)
            eps = eps_uncond + guidance.scale * (eps_cond - eps_uncond)
            var_values = None if both.var_values is None else both.var_values.chunk(2)[0]
            pred = _with_eps(x_t, eps, level, var_values)
        else:
            pred = denoiser.predict(x_t, t, model_labels, sqrt_terms=sqrt_terms)
        if use_classifier:
            grad = classifier_gradient(classifier, x_t, t, target_labels)
            if classifier_to_sampler:
                pred = Prediction(pred.eps, pred.x0, pred.var_values, guidance_grad=guidance.scale * grad)
            else:
                eps = pred.eps - guidance.scale * level[1] * grad
                pred = _with_eps(x_t, eps, level, pred.var_values)
        return pred

    return predict
