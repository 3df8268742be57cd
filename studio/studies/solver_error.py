"""Solver error per model call, measured on an exact denoiser.

    python -m studio.studies.solver_error [--out DIR] [--quick] [--samplers a,b,...] [--calls 5,10,20,50,100]
        [--spacing trailing,linspace,leading] [--covariance-scale F] [--batch B] [--write-docs [--docs DIR]]

What is measured (docs/solver-error.md says it at more length):

- The model: the exact (MMSE) denoiser of a fixed 2-D Gaussian mixture (``MIXTURE``: three components with means
  about 2 apart and standard deviations 0.45 to 0.77), ``studio.core.models.analytic``, on the model card's default
  schedule (T = 1000, linear betas 1e-4 to 0.02). No network is trained, so every error is the solver's.
- x_T: ``--batch`` standard-normal samples from a fixed seed, the same for every sampler and step count.
- The reference: the probability-flow ODE from the same x_T, solved to convergence. In Karras et al.'s sigma form
  (x = x0 + sigma eps, x_t = x / sqrt(1 + sigma^2)) it reads dx / d(log sigma) = x - D(x; sigma), with D the exact
  denoiser at any sigma (``GaussianMixtureEps.denoise``; no timestep involved). It is integrated with the classical
  fourth-order Runge-Kutta method in float64 on a uniform grid in log sigma from the run's first sigma (sigma_{T-1}
  for trailing and linspace spacing) down to ``SIGMA_END``, then x0 = D(x; SIGMA_END) (O(SIGMA_END^2) off), with
  ``REFERENCE_STEPS`` steps; the same with half the steps is reported as its convergence check. It calls none of
  the studio's samplers. The studio's DDIM converges to it at first order: with all 1000 timesteps it is still
  about 2e-3 off (reported), as large as the higher-order solvers' errors at 100 model calls, which is why DDIM
  with 1000 steps is not the reference. Leading spacing starts below T - 1 (t = 980 for 50 steps); such a run is
  measured against the solution from its own start, and what that start alone changes is reported beside.
- The error of a run: the RMS over the samples of the Euclidean distance between the run's final sample and the
  reference, sqrt(mean_i |x_i - ref_i|^2), in data units.
- Model calls: counted at the network (a forward hook), not taken from the sampler's own account. For a budget of
  N calls each sampler gets the largest step count whose ``model_calls`` fits in N (Heun: 2 S - 1 calls for S
  steps, so 25 steps for 50 calls); a cell shows the calls actually made in brackets where they differ from N.
- The samplers run as a user runs them: through ``studio.core.engine`` in float32 on the CPU, with the settings'
  defaults but ``steps``, ``spacing``, ``clip_sample=False``, ``order`` for UniPC and, where the settings have
  them, PNDM's ``skip_prk_steps`` and ``set_alpha_to_one`` (its default, false, stops at alpha_bar_0, sigma 0.01,
  which is not the solver's error). Stochastic samplers (ddpm, euler_a, dpmpp_2m_sde) are not measured.
- The trailing table also has a row that is not a sampler, ``FLOOR_LABEL``: the exact solution down to the last
  trailing timestep of N steps, then one first-order step to sigma = 0 (``final_step_floor``).

A sampler that is not registered in ``studio.core.samplers.SAMPLERS`` is imported from its module (euler.py,
heun.py, dpm_solver.py, unipc.py, pndm.py) when that exists; one that is neither is skipped with a note, so the
command runs with whatever samplers exist.

Output: the Markdown tables (rows: samplers, columns: model calls) on stdout and in DIR/solver_error.md, every
number in DIR/solver_error.json, and a log-log plot in DIR/solver_error.svg. ``--write-docs`` also rewrites the
generated block of docs/solver-error.md and docs/solver-error.svg. ``--quick`` is a scaled-down run for tests.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import math
import sys
import textwrap
import time
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from ..core.atomic import atomic_path
from ..core.engine import sample_final
from ..core.errors import SettingsError
from ..core.models.analytic import GaussianMixtureEps, gaussian_mixture_denoiser
from ..core.models.denoiser import NetworkDenoiser
from ..core.settings import RunSettings

# --- what is measured -----------------------------------------------------------------------------------------------
MIXTURE = {   # unit-ish scale: means about 2 apart, standard deviations 0.45 to 0.77, two components correlated
    "weights": [0.3, 0.5, 0.2],
    "means": [[-1.0, -0.5], [1.0, 0.0], [0.0, 1.2]],
    "covariances": [[[0.40, 0.12], [0.12, 0.20]], [[0.20, 0.0], [0.0, 0.60]], [[0.32, -0.08], [-0.08, 0.24]]],
}
SEED = 0
BATCH, QUICK_BATCH = 256, 64
CALLS, QUICK_CALLS = (5, 10, 20, 50, 100), (10, 20, 50)
SPACINGS = ("trailing", "linspace", "leading")   # the first is the plot's headline and the tests'
REFERENCE_STEPS, QUICK_REFERENCE_STEPS = 1000, 300
SIGMA_END = 1e-4
ORDER_FROM_CALLS = 20          # the fitted order uses the budgets from here up
DDIM_CROSS_CHECK_STEPS = (500, 1000)

# the sampler modules as issue 17 names them: used while a sampler is not registered yet
SAMPLER_HOMES = {
    "ddim": ("studio.core.samplers.ddim", "DDIMSettings"),
    "euler": ("studio.core.samplers.euler", "EulerSettings"),
    "heun": ("studio.core.samplers.heun", "HeunSettings"),
    "dpmpp_2m": ("studio.core.samplers.dpm_solver", "DPMPP2MSettings"),
    "dpmpp_3m": ("studio.core.samplers.dpm_solver", "DPMPP3MSettings"),
    "unipc": ("studio.core.samplers.unipc", "UniPCSettings"),
    "pndm": ("studio.core.samplers.pndm", "PNDMSettings"),
}


@dataclass(frozen=True)
class Variant:
    """One row: a sampler with fixed options. ``required``: options the sampler must have (else the row is
    skipped); ``optional``: options passed only where the settings have that field."""

    key: str
    sampler: str
    label: str
    required: tuple = ()
    optional: tuple = ()


VARIANTS = (
    Variant("ddim", "ddim", "ddim"),
    Variant("euler", "euler", "euler"),
    Variant("heun", "heun", "heun"),
    Variant("dpmpp_2m", "dpmpp_2m", "dpmpp_2m"),
    Variant("dpmpp_3m", "dpmpp_3m", "dpmpp_3m"),
    Variant("unipc2", "unipc", "unipc, order 2", required=(("order", 2),)),
    Variant("unipc3", "unipc", "unipc, order 3", required=(("order", 3),)),
    Variant("pndm", "pndm", "pndm", optional=(("skip_prk_steps", True), ("set_alpha_to_one", True))),
)
VARIANT_KEYS = {v.key: v for v in VARIANTS}
HIGHER_ORDER = ("dpmpp_2m", "dpmpp_3m", "unipc2", "unipc3", "pndm")   # at most a third of DDIM's error at 50 calls

DOCS_BEGIN = "<!-- solver-error:begin (generated by python -m studio.studies.solver_error --write-docs) -->"
DOCS_END = "<!-- solver-error:end -->"


# --- the model, the samplers and the reference ----------------------------------------------------------------------
class CountingDenoiser:
    """The mixture's exact denoiser, with its network calls counted by a forward hook."""

    def __init__(self, mixture: dict = MIXTURE):
        self.denoiser: NetworkDenoiser = gaussian_mixture_denoiser(
            mixture["weights"], mixture["means"], mixture["covariances"], name="solver-error mixture (exact)")
        self.mixture: GaussianMixtureEps = self.denoiser.plain_network
        self.calls = 0
        self.mixture.register_forward_hook(self._count)

    def _count(self, *_) -> None:
        self.calls += 1


def sampler_class(name: str) -> tuple[type | None, str]:
    """The settings class of sampler ``name`` and how it was found ("registered", "imported"), or (None, why)."""
    from ..core.samplers import SAMPLERS

    if name in SAMPLERS:
        return SAMPLERS[name], "registered"
    module_name, class_name = SAMPLER_HOMES[name]
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except Exception as error:   # a module another engineer is still writing may fail in any way
        return None, f"not available yet ({type(error).__name__}: {str(error)[:100]})"
    if getattr(cls, "name", None) != name:
        return None, f"{module_name}.{class_name} is sampler {getattr(cls, 'name', None)!r}, not {name!r}"
    return cls, "imported (not registered yet)"


def variant_options(variant: Variant, cls: type) -> tuple[dict, str | None]:
    """The options to build the variant's settings with, or ({}, why not) where the sampler lacks a required one."""
    known = {f.name for f in fields(cls)}
    missing = [name for name, _ in variant.required if name not in known]
    if missing:
        return {}, f"{cls.__name__} has no {', '.join(missing)} setting"
    options = dict(variant.required)
    options.update({name: value for name, value in variant.optional if name in known})
    return options, None


def settings_for_calls(cls: type, calls: int, spacing: str, options: dict, num_train_timesteps: int):
    """The settings with the most steps whose model calls fit in ``calls``; None where none do. The calls are the
    settings' own account, ``model_calls`` of the length of their timestep list (PNDM lists S + 1 for S steps);
    the run counts them again."""
    refusal, built = None, False
    for steps in range(calls, 0, -1):
        try:
            settings = cls(steps=steps, spacing=spacing, clip_sample=False, **options)
            solver_steps = len(settings.timestep_list(num_train_timesteps))
        except SettingsError as error:   # too few steps for the solver, or settings it refuses at any count
            refusal = error
            continue
        built = True
        if settings.model_calls(solver_steps) <= calls:
            return settings
    if refusal is not None and not built:
        raise refusal
    return None


def draw_x_T(batch: int, dim: int, seed: int = SEED) -> torch.Tensor:
    return torch.randn(batch, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)


@torch.inference_mode()
def reference_solution(mixture: GaussianMixtureEps, x_T: torch.Tensor, sigma_start: float, steps: int,
                       sigma_end: float = SIGMA_END) -> torch.Tensor:
    """The probability-flow ODE's solution from x_T at sigma_start (module docstring): RK4 in log sigma, float64."""
    grid = np.linspace(math.log(sigma_start), math.log(sigma_end), steps + 1)
    x = x_T.to(torch.float64) * math.sqrt(1.0 + sigma_start**2)

    def slope(x: torch.Tensor, log_sigma: float) -> torch.Tensor:   # dx / d(log sigma) = sigma eps = x - D
        return x - mixture.denoise(x, math.exp(log_sigma))

    for here, there in itertools.pairwise(grid):
        h = there - here
        k1 = slope(x, here)
        k2 = slope(x + 0.5 * h * k1, here + 0.5 * h)
        k3 = slope(x + 0.5 * h * k2, here + 0.5 * h)
        k4 = slope(x + h * k3, there)
        x = x + h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
    return mixture.denoise(x, sigma_end)


def rms_distance(x: torch.Tensor, reference: torch.Tensor) -> float:
    """sqrt(mean over samples of |x_i - ref_i|^2)."""
    difference = x.to(torch.float64).reshape(x.shape[0], -1) - reference.reshape(reference.shape[0], -1)
    return float((difference**2).sum(1).mean().sqrt())


def run_sampler(model: CountingDenoiser, settings, x_T: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The final sample of one run and the network calls it made."""
    model.calls = 0
    run_settings = RunSettings(sampler=settings, batch_size=x_T.shape[0], seed=SEED, device="cpu")
    final = sample_final(model.denoiser, run_settings, x_T=x_T)
    return final, model.calls


def fitted_order(points: list[dict]) -> float | None:
    """Minus the least-squares slope of log(error) against log(model calls) over the budgets from
    ORDER_FROM_CALLS up (None with fewer than two)."""
    used = [(p.get("model_calls", p["calls"]), p["error"]) for p in points
            if p.get("error") and p["calls"] >= ORDER_FROM_CALLS]
    if len(used) < 2:
        return None
    calls, errors = np.log([u[0] for u in used]), np.log([u[1] for u in used])
    return float(-np.polyfit(calls, errors, 1)[0])


# --- the measurement ------------------------------------------------------------------------------------------------
class References:
    """The converged solution from x_T for each start timestep a run uses, computed once each."""

    def __init__(self, model: CountingDenoiser, x_T: torch.Tensor, steps: int):
        self.model, self.x_T, self.steps = model, x_T, steps
        self.last = model.denoiser.card.num_train_timesteps - 1
        self.solutions: dict[float, torch.Tensor] = {}

    def sigma(self, t: float) -> float:
        """The noise level the exact model gives timestep t (fractional: interpolated in log sigma)."""
        whole = float(t).is_integer()
        t_tensor = torch.tensor([int(t) if whole else float(t)], dtype=torch.long if whole else torch.float32)
        alpha_bar = float(self.model.mixture.alpha_bar_at(t_tensor)[0])
        return math.sqrt((1.0 - alpha_bar) / alpha_bar)

    def __call__(self, t: float) -> torch.Tensor:
        t = float(t)
        if t not in self.solutions:
            self.solutions[t] = reference_solution(self.model.mixture, self.x_T, self.sigma(t), self.steps)
        return self.solutions[t]

    @property
    def full(self) -> torch.Tensor:
        """From t = T - 1: the reference of every run that starts there."""
        return self(self.last)


def measure(variants=VARIANTS, calls=CALLS, spacings=SPACINGS, batch: int = BATCH,
            reference_steps: int = REFERENCE_STEPS, ddim_cross_check: bool = True, mixture: dict = MIXTURE,
            log=None) -> dict:
    """Every number of the study, as the JSON holds it."""
    with single_thread():
        return _measure(variants, calls, spacings, batch, reference_steps, ddim_cross_check, mixture,
                        log or (lambda text: None))


@contextmanager
def single_thread():
    """One torch thread for the block: the tensors are tiny, and on a busy machine several threads wait on each
    other (a 100-step DDIM run of this study took 4.7 s with two threads on a loaded two-core machine, 0.07 s with
    one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _measure(variants, calls, spacings, batch, reference_steps, ddim_cross_check, mixture, log) -> dict:
    started = time.perf_counter()
    model = CountingDenoiser(mixture)
    card = model.denoiser.card
    T = card.num_train_timesteps
    x_T = draw_x_T(batch, len(mixture["means"][0]))
    log(f"reference: RK4, {reference_steps} and {reference_steps // 2} steps in log sigma")
    references = References(model, x_T, reference_steps)
    check = reference_solution(model.mixture, x_T, references.sigma(T - 1), reference_steps // 2)
    results = {
        "what": "RMS over samples of the Euclidean distance of each final sample to the converged probability-flow "
                "ODE solution from the same x_T (data units)",
        "mixture": mixture,
        "schedule": card.schedule_config().to_dict(),
        "batch": batch,
        "seed": SEED,
        "x_T": "torch.randn(batch, dim) from torch.Generator().manual_seed(seed), float32: x at the run's first "
               "timestep (t = T - 1 for trailing and linspace spacing)",
        "reference": {
            "method": "classical RK4 in float64 on dx/dlog(sigma) = x - D(x; sigma) with the exact denoiser, "
                      "uniform in log sigma from the run's first sigma to sigma_end, then x0 = D(x; sigma_end)",
            "sigma_start": references.sigma(T - 1),
            "sigma_end": SIGMA_END,
            "steps": reference_steps,
            "check_steps": reference_steps // 2,
            "check_difference": rms_distance(check, references.full),
        },
        "calls": list(calls),
        "spacings": list(spacings),
        "tables": [],
        "skipped": [],
    }
    if ddim_cross_check:
        from ..core.samplers import DDIMSettings

        cross = {}
        for steps in DDIM_CROSS_CHECK_STEPS:
            final, _ = run_sampler(model, DDIMSettings(steps=steps, spacing="trailing", clip_sample=False), x_T)
            cross[str(steps)] = rms_distance(final, references.full)
        results["reference"]["ddim_error"] = cross
    available = []
    for variant in variants:
        cls, how = sampler_class(variant.sampler)
        options, why = variant_options(variant, cls) if cls is not None else ({}, how)
        if cls is None or why:
            results["skipped"].append({"sampler": variant.key, "why": why})
            log(f"{variant.label}: skipped, {why}")
            continue
        available.append((variant, cls, how, options))
    for spacing in spacings:
        rows = []
        for variant, cls, how, options in available:
            points = []
            for budget in calls:
                try:
                    settings = settings_for_calls(cls, budget, spacing, options, T)
                except SettingsError as error:   # not a step-count problem: e.g. the spacing is not supported
                    points.append({"calls": budget, "error": None, "why": str(error)[:200]})
                    continue
                if settings is None:
                    points.append({"calls": budget, "error": None, "why": f"no step count fits {budget} calls"})
                    continue
                try:
                    start = float(settings.resolve(card).timestep_list(T, model.denoiser.schedule)[0])
                    final, made = run_sampler(model, settings, x_T)
                except Exception as error:   # a sampler still being written may fail in any way: say so, go on
                    points.append({"calls": budget, "steps": settings.steps, "error": None,
                                   "why": f"{type(error).__name__}: {str(error)[:200]}"})
                    continue
                points.append({"calls": budget, "steps": settings.steps, "model_calls": made, "start_t": start,
                               "error": rms_distance(final, references(start)),
                               "error_from_T": rms_distance(final, references.full),
                               "settings": settings.to_dict()})
            rows.append({"sampler": variant.key, "label": variant.label, "found": how, "points": points,
                         "order": fitted_order(points)})
            log(f"{spacing:>8} {variant.label}: " + ", ".join(
                f"{p['calls']}: {p['error']:.3g}" if p["error"] is not None else f"{p['calls']}: -" for p in points))
        if spacing == "trailing":
            rows.append(final_step_floor(model, references, calls, reference_steps))
        results["tables"].append({"spacing": spacing, "rows": rows})
    results["start_offsets"] = {f"{t:g}": rms_distance(solution, references.full)
                                for t, solution in sorted(references.solutions.items(), reverse=True)
                                if t != references.last}
    results["seconds"] = round(time.perf_counter() - started, 1)
    return results


FLOOR_LABEL = "final step alone"


def final_step_floor(model: CountingDenoiser, references: References, calls, steps: int) -> dict:
    """The error of the exact solution down to the last trailing timestep of S = N steps, t = T/S - 1, followed by
    one first-order step to sigma = 0, x0 = D(x; sigma_t). DDIM, Euler, Heun, DPM-Solver++ and UniPC all end with
    that step (their last step lands on sigma = 0 and returns the data prediction), so this is the error their last
    step alone makes; a scale rather than a bound, as a run's earlier errors may add to it or cancel part of it."""
    from ..core.samplers import DDIMSettings

    T = model.denoiser.card.num_train_timesteps
    points = []
    for budget in calls:
        t_last = float(DDIMSettings(steps=min(budget, T), spacing="trailing").timestep_list(T)[-1])
        exact_then_step = reference_solution(model.mixture, references.x_T, references.sigma(T - 1), steps,
                                             sigma_end=references.sigma(t_last))
        points.append({"calls": budget, "t_last": t_last, "error": rms_distance(exact_then_step, references.full)})
    return {"sampler": "final_step", "label": FLOOR_LABEL, "kind": "floor", "points": points,
            "order": fitted_order(points)}


def error_at(results: dict, key: str, calls: int, spacing: str | None = None) -> dict | None:
    """The point of sampler ``key`` at budget ``calls`` (first table unless ``spacing``), or None."""
    for table in results["tables"]:
        if spacing is None or table["spacing"] == spacing:
            for row in table["rows"]:
                if row["sampler"] == key:
                    return next((p for p in row["points"] if p["calls"] == calls), None)
            return None
    return None


# --- Markdown ----------------------------------------------------------------------------------------------------
def _cell(point: dict) -> str:
    if point.get("error") is None:
        return "-"
    text = f"{point['error']:.3g}"
    made = point.get("model_calls", point["calls"])
    return text if made == point["calls"] else f"{text} ({made})"


LINE_LIMIT = 120   # the docs' longest line


def _paragraph(text: str) -> list[str]:
    return textwrap.wrap(text, LINE_LIMIT, break_long_words=False, break_on_hyphens=False) + [""]


def markdown_tables(results: dict) -> str:
    """The tables and the notes under them, as the docs' generated block holds them (lines <= 120 characters)."""
    calls = results["calls"]
    lines = []
    for table in results["tables"]:
        lines += [f"**{table['spacing']} spacing**", "",
                  "| sampler | " + " | ".join(f"{c} calls" for c in calls) + " | order |",
                  "|---|" + "---:|" * (len(calls) + 1)]
        for row in table["rows"]:
            order = "-" if row["order"] is None else f"{row['order']:.2f}"
            label = f"*{row['label']}*" if row.get("kind") == "floor" else row["label"]
            lines.append(f"| {label} | " + " | ".join(_cell(p) for p in row["points"]) + f" | {order} |")
        lines.append("")
    lines += _paragraph(f"Errors: RMS over {results['batch']} samples of the distance to the converged solution. "
                        "(n): the run made n model calls. Order: the fitted slope of log error against log calls from "
                        f"{ORDER_FROM_CALLS} calls up.")
    if any(row.get("kind") == "floor" for table in results["tables"] for row in table["rows"]):
        lines += _paragraph(f"*{FLOOR_LABEL}* (not a sampler): the exact solution down to the last trailing timestep "
                            "of N steps, t = T/N - 1, then one first-order step to sigma = 0, x0 = D(x; sigma), the "
                            "step DDIM, Euler, Heun, DPM-Solver++ and UniPC end with: the error that last step alone "
                            "makes.")
    ref = results["reference"]
    check = (f"Reference: RK4 with {ref['steps']} steps in log sigma; with {ref['check_steps']} steps it differs by "
             f"{ref['check_difference']:.1e}.")
    if "ddim_error" in ref:
        check += " The studio's DDIM (trailing) is " + " and ".join(
            f"{error:.1e} off with {steps} steps" for steps, error in ref["ddim_error"].items()) + "."
    lines += _paragraph(check)
    offsets = results.get("start_offsets")
    if offsets:
        lines += _paragraph("Runs that start below t = T - 1 (leading spacing) are measured against the solution from "
                            "their own start; that start alone moves the final sample by " + ", ".join(
                                f"{distance:.2g} (t={t})" for t, distance in offsets.items()) + ".")
    if results["skipped"]:
        lines += _paragraph("Not measured: " + "; ".join(f"{s['sampler']} ({s['why']})" for s in results["skipped"])
                            + ".")
    return "\n".join(lines).rstrip("\n") + "\n"


def markdown_report(results: dict) -> str:
    head = (f"{results['what']}; T = {results['schedule']['num_train_timesteps']}, {results['batch']} samples, "
            f"seed {results['seed']}, made by `{results.get('command', 'python -m studio.studies.solver_error')}`. "
            "See docs/solver-error.md.")
    return ("# Solver error per model call (exact Gaussian-mixture denoiser)\n\n"
            + "\n".join(_paragraph(head)) + "\n" + markdown_tables(results))


# --- the plot -------------------------------------------------------------------------------------------------------
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")
PANEL_W, PANEL_H, MARGIN_L, MARGIN_B, MARGIN_T, GAP, LEGEND_W = 300, 260, 62, 48, 30, 24, 150


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _decade_label(power: int) -> str:
    return f"{10.0 ** power:g}" if -3 <= power <= 0 else f"1e{power}"


def svg_plot(results: dict) -> str:
    """Log-log error against model calls: one panel per spacing, one polyline per sampler, a shared legend."""
    tables = results["tables"]
    points = [p for t in tables for r in t["rows"] for p in r["points"] if p.get("error")]
    errors = [p["error"] for p in points] or [1e-3, 1.0]
    calls = [p.get("model_calls", p["calls"]) for p in points] or results["calls"]
    y_low, y_high = math.floor(math.log10(min(errors))), math.ceil(math.log10(max(errors)))
    y_high = max(y_high, y_low + 1)
    x_low, x_high = math.log10(min(calls) / 1.15), math.log10(max(calls) * 1.15)
    panels = max(1, len(tables))
    width = panels * (MARGIN_L + PANEL_W) + (panels - 1) * GAP + LEGEND_W + 10
    height = MARGIN_T + PANEL_H + MARGIN_B
    labels = []
    for table in tables:
        for row in table["rows"]:
            if row["label"] not in labels:
                labels.append(row["label"])
    colour = {label: COLOURS[i % len(COLOURS)] for i, label in enumerate(labels)}
    # every other line dashed, so lines that coincide (euler is ddim in sigma form) both show
    dash = {label: ' stroke-dasharray="6,3"' if i % 2 else "" for i, label in enumerate(labels)}
    colour[FLOOR_LABEL], dash[FLOOR_LABEL] = "#555555", ' stroke-dasharray="2,3"'   # not a sampler: grey, dotted
    out = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">'),
           f'<rect width="{width}" height="{height}" fill="white"/>']
    for index, table in enumerate(tables):
        left = index * (MARGIN_L + PANEL_W + GAP) + MARGIN_L
        top = MARGIN_T

        def px(value: float, left: float = left) -> float:
            return left + (math.log10(value) - x_low) / (x_high - x_low) * PANEL_W

        def py(value: float, top: float = top) -> float:
            return top + (y_high - math.log10(value)) / (y_high - y_low) * PANEL_H

        out.append(f'<text x="{left + PANEL_W / 2:.1f}" y="{top - 10}" text-anchor="middle" font-size="13">'
                   f'{_escape(table["spacing"])} spacing</text>')
        for power in range(y_low, y_high + 1):
            y = py(10.0 ** power)
            out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + PANEL_W}" y2="{y:.1f}" stroke="#ddd"/>')
            out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_decade_label(power)}</text>')
        for budget in results["calls"]:
            x = px(budget)
            out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + PANEL_H}" stroke="#eee"/>')
            out.append(f'<text x="{x:.1f}" y="{top + PANEL_H + 16}" text-anchor="middle">{budget}</text>')
        out.append(f'<rect x="{left}" y="{top}" width="{PANEL_W}" height="{PANEL_H}" fill="none" stroke="#333"/>')
        out.append(f'<text x="{left + PANEL_W / 2:.1f}" y="{top + PANEL_H + 36}" text-anchor="middle">'
                   'model calls (NFE)</text>')
        if index == 0:
            middle = top + PANEL_H / 2
            out.append(f'<text x="14" y="{middle:.1f}" text-anchor="middle" transform="rotate(-90 14 {middle:.1f})">'
                       'RMS error vs converged solution</text>')
        for row in table["rows"]:
            xy = [(px(p.get("model_calls", p["calls"])), py(p["error"])) for p in row["points"] if p.get("error")]
            if not xy:
                continue
            stroke = colour[row["label"]]
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
            out.append(f'<polyline points="{path}" fill="none" stroke="{stroke}" stroke-width="1.6"'
                       f'{dash[row["label"]]}/>')
            out += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.6" fill="{stroke}"/>' for x, y in xy]
    legend_left = panels * (MARGIN_L + PANEL_W) + (panels - 1) * GAP + 16
    for i, label in enumerate(labels):
        y = MARGIN_T + 10 + 18 * i
        out.append(f'<line x1="{legend_left}" y1="{y}" x2="{legend_left + 22}" y2="{y}" '
                   f'stroke="{colour[label]}" stroke-width="2"{dash[label]}/>')
        out.append(f'<text x="{legend_left + 28}" y="{y + 4}">{_escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


# --- files ----------------------------------------------------------------------------------------------------------
def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def write_outputs(results: dict, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (("solver_error.md", markdown_report(results)),
                       ("solver_error.json", json.dumps(results, indent=1) + "\n"),
                       ("solver_error.svg", svg_plot(results))):
        write_text(out / name, text)
        written.append(out / name)
    return written


def docs_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "docs"


def write_docs(results: dict, docs: Path) -> list[Path]:
    """Replace the generated block of docs/solver-error.md and write docs/solver-error.svg."""
    page = docs / "solver-error.md"
    text = page.read_text(encoding="utf-8")
    if text.count(DOCS_BEGIN) != 1 or text.count(DOCS_END) != 1 or text.index(DOCS_BEGIN) > text.index(DOCS_END):
        raise SettingsError(f"{page} must hold the generated block's markers once each:\n{DOCS_BEGIN}\n{DOCS_END}")
    head, rest = text.split(DOCS_BEGIN)
    _, tail = rest.split(DOCS_END)
    write_text(page, head + DOCS_BEGIN + "\n\n" + markdown_tables(results) + "\n" + DOCS_END + tail)
    write_text(docs / "solver-error.svg", svg_plot(results))
    return [page, docs / "solver-error.svg"]


# --- the command ----------------------------------------------------------------------------------------------------
def _numbers(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected model-call counts >= 1, got {text!r}")
    return values


def _variants(text: str) -> tuple[Variant, ...]:
    keys = [part.strip() for part in text.split(",") if part.strip()]
    chosen = []
    for key in keys:
        matches = [v for v in VARIANTS if key in (v.key, v.sampler)]
        if not matches:
            raise argparse.ArgumentTypeError(f"unknown sampler {key!r}; known: {', '.join(VARIANT_KEYS)} (or unipc)")
        chosen += [v for v in matches if v not in chosen]
    if not chosen:
        raise argparse.ArgumentTypeError("no sampler given")
    return tuple(chosen)


def _spacings(text: str) -> tuple[str, ...]:
    values = tuple(part.strip() for part in text.split(",") if part.strip())
    bad = [v for v in values if v not in ("leading", "linspace", "trailing")]
    if not values or bad:
        raise argparse.ArgumentTypeError(f"spacings are leading, linspace and trailing, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio.studies.solver_error",
                                     description="Each deterministic sampler's error against the converged "
                                                 "probability-flow solution, per model call, on an exact denoiser.")
    parser.add_argument("--out", type=Path, default=Path("build/solver-error"),
                        help="folder for the three files (default build/solver-error)")
    parser.add_argument("--quick", action="store_true",
                        help=f"a few seconds: {QUICK_BATCH} samples, calls {','.join(map(str, QUICK_CALLS))}, "
                             f"a {QUICK_REFERENCE_STEPS}-step reference, no DDIM cross-check")
    parser.add_argument("--samplers", type=_variants, default=VARIANTS,
                        help=f"rows to measure (default: all): {','.join(VARIANT_KEYS)}; unipc means both orders")
    parser.add_argument("--calls", type=_numbers, default=None,
                        help=f"model-call budgets (default {','.join(map(str, CALLS))})")
    parser.add_argument("--spacing", type=_spacings, default=SPACINGS,
                        help=f"timestep spacing(s), one table each (default {','.join(SPACINGS)})")
    parser.add_argument("--covariance-scale", type=float, default=1.0,
                        help="multiply the mixture's covariances (0.25: components half as wide, a harder problem)")
    parser.add_argument("--batch", type=int, default=None, help=f"samples (default {BATCH}, quick {QUICK_BATCH})")
    parser.add_argument("--write-docs", action="store_true",
                        help="also rewrite the generated block of docs/solver-error.md and docs/solver-error.svg")
    parser.add_argument("--docs", type=Path, default=None,
                        help="the docs folder for --write-docs (default: the repository's; it takes only the default "
                             "measurement)")
    args = parser.parse_args(argv)
    batch = args.batch if args.batch is not None else (QUICK_BATCH if args.quick else BATCH)
    if batch < 1:
        parser.error("--batch must be >= 1")
    if not args.covariance_scale > 0:
        parser.error("--covariance-scale must be > 0")
    calls = args.calls or (QUICK_CALLS if args.quick else CALLS)
    default = (not args.quick and args.samplers == VARIANTS and calls == CALLS and args.spacing == SPACINGS
               and batch == BATCH and args.covariance_scale == 1.0)
    if args.write_docs and args.docs is None and not default:
        parser.error("--write-docs writes the repository's docs/solver-error.md only with the default measurement "
                     "(no --quick, --samplers, --calls, --spacing, --batch or --covariance-scale); pass --docs DIR "
                     "to write another folder's")
    mixture = dict(MIXTURE, covariances=(np.asarray(MIXTURE["covariances"]) * args.covariance_scale).tolist())
    results = measure(args.samplers, calls, args.spacing, batch,
                      QUICK_REFERENCE_STEPS if args.quick else REFERENCE_STEPS, ddim_cross_check=not args.quick,
                      mixture=mixture, log=lambda text: print(text, file=sys.stderr, flush=True))
    given = sys.argv[1:] if argv is None else list(argv)
    results["command"] = " ".join(["python -m studio.studies.solver_error", *given])
    sys.stdout.write(markdown_report(results))
    written = write_outputs(results, args.out)
    if args.write_docs:
        try:
            written += write_docs(results, args.docs or docs_dir())
        except (OSError, SettingsError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    print("wrote " + ", ".join(map(str, written)), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
