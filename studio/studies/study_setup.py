"""A study job from a model that is open and what the user asked for: the one place the command line
(``studio study``) and the window's Study dock turn a request into cells, metrics and an ODE reference plan.

    request = StudyRequest(samplers=["ddim", "ddpm"], steps=[10, 20], etas=[0.0, 1.0])
    job = build_job(model, "digits", request, base_settings, out_folder, plan_extra={"checkpoint": "digits"})
    prepare_job(job)      # the slow part: reference data, the feature network, the judge (a worker thread's job)

Every check that needs no data runs in ``build_job``, so a mistake is named before anything slow starts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import SettingsError
from ..core.settings import RunSettings
from .study_metrics import StudyMetrics
from .study_plan import plan_cells
from .study_run import REFERENCE_MAX_STEPS, REFERENCE_SOLVER, StudyJob

DEFAULT_STEPS = (10, 20, 50, 100)
DEFAULT_NUM_SAMPLES = 64


@dataclass
class StudyRequest:
    samplers: list[str]
    steps: list[int] = field(default_factory=lambda: list(DEFAULT_STEPS))
    etas: list[float] = field(default_factory=list)      # empty: DDIM at eta 0
    metrics: list[str] = field(default_factory=list)     # empty: every metric that applies
    num_samples: int = DEFAULT_NUM_SAMPLES
    seed: int = 0
    spacing: str = "trailing"    # every cell starts at t = T - 1 from the same x_T (ode_error needs it)
    clip: bool = False           # the DDIM paper's samplers do not clip x0, and the ODE reference cannot
    variance: str | None = None  # DDPM's reverse variance (None: the card's)
    reference: str | None = None  # reference samples for swd / frechet (.npy or an image folder)
    judge_path: str | None = None
    rows: int | None = None

    def sampler_values(self) -> dict:
        values = {"spacing": self.spacing, "clip_sample": bool(self.clip)}
        if self.variance is not None:
            values["variance_type"] = self.variance
        return values


def model_kind(card, bundled_name: str = "") -> str:
    """What the metrics know of the model: the bundled digits or toy2d model, else its data kind."""
    return bundled_name if bundled_name in ("digits", "toy2d") else card.data_kind


def build_job(model, kind: str, request: StudyRequest, base: RunSettings, out: Path, *, judge=None,
              classifier=None, mixture: dict | None = None, mixture_network=None,
              plan_extra: dict | None = None) -> StudyJob:
    """Every check that needs no data, then the job (its metrics not prepared yet: ``prepare_job``).
    ``plan_extra`` goes first into the study's plan (the CLI's ``checkpoint``): the plan is what a study folder
    is resumed by, so its keys and their order stay as they are."""
    card = model.card
    if request.reference is not None and not Path(request.reference).exists():
        raise SettingsError(f"--reference {request.reference} does not exist")
    values = request.sampler_values()
    cells = plan_cells(request.samplers, request.steps, request.etas, base, card, values)
    unavailable = {"ode_error": "its reference solver (DPM-Solver++) has no x0 clip: leave out --clip"} \
        if request.clip else {}
    metrics = StudyMetrics.for_model(model, kind, request.metrics or None, request.reference, judge,
                                     request.num_samples, mixture, unavailable)
    reference_settings = None
    if "ode_error" in metrics.names:
        late = [cell.key for cell in cells if cell.deterministic
                and int(cell.settings.sampler.timestep_list(card.num_train_timesteps)[0]) != card.num_train_timesteps - 1]
        if late:
            raise SettingsError(f"ode_error compares runs from the same x_T at t = T - 1, but {late[0]} starts "
                                f"later: use --spacing trailing or linspace, or leave ode_error out")
        from ..core.samplers import sampler_settings
        reference_settings = sampler_settings(
            REFERENCE_SOLVER, steps=min(REFERENCE_MAX_STEPS, card.num_train_timesteps - 1),
            spacing=request.spacing).resolve(card)
    etas = list(request.etas)
    plan = {**(plan_extra or {}), "sha256": card.sha256, "samplers": list(request.samplers),
            "steps": list(request.steps), "eta": etas, "metrics": list(metrics.names),
            "num_samples": request.num_samples, "seed": request.seed, "settings": base.to_dict(),
            "sampler_values": values, "reference": request.reference, "judge": request.judge_path,
            "rows": request.rows}
    return StudyJob(model=model, cells=cells, metrics=metrics, num_samples=request.num_samples, seed=request.seed,
                    out=Path(out), plan=json.loads(json.dumps(plan)), rows=request.rows, classifier=classifier,
                    mixture_network=mixture_network, reference_settings=reference_settings,
                    reference_path=request.reference, judge=judge)


def prepare_job(job: StudyJob) -> None:
    """Read or draw the reference data and train the feature network and judge the metrics need (seconds to a
    minute: after every cheaper check)."""
    job.metrics.prepare(job.model.card, job.reference_path, job.judge, job.num_samples)
