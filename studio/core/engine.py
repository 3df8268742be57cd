"""One run: settings + model + seeds -> a stream of Steps.

    run = sample(denoiser, RunSettings(sampler=DDIMSettings(steps=50), seed=7, batch_size=4))
    for step in run:          # one model call per iteration; break (or run.close()) cancels
        ...

The run resolves everything up front (device, dtype, timesteps, per-sample seeds, class labels) so a
bad setting fails before the first model call, and ``run.record()`` describes exactly what ran.
A NaN or Inf in x_t or the model's prediction raises NumericalError naming the step and t; the steps
yielded before it stay with the caller, and no step with a NaN is ever yielded.

Checking for NaN needs the values on the host. On the CPU that is free and every step is checked as it is
made; on a GPU it would stall the device queue at every step, so the run computes ``check_window`` steps
ahead and checks them with one host sync (a cancel then wastes at most that many model calls).

``settings.network`` picks the network's speed mode (``studio.core.acceleration``): the run puts the denoiser
in it before the first model call (a plain run undoes an earlier run's mode). A mode that fails or moves an
output past its tolerance leaves the run plain; ``run.acceleration`` says what was done and why, and
``run.record()`` names the mode that ran (what ``auto`` chose, given the run's network calls: its model calls
times the network calls each makes, times ``planned_runs`` when the caller will make more runs like it).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Iterator, Sequence

import numpy as np
import torch

from .. import __version__
from .checks import require_choice, require_int
from .choices import DTYPES
from .errors import NumericalError, SettingsError
from .acceleration import Acceleration, accelerate
from .branch import BranchStart, BranchSteps, branch_noise, branch_seeds, plan_branch
from .guidance import Classifier, gradient_to_sampler, make_predict, rows_per_model_call, uses_classifier_free
from .models.denoiser import Denoiser
from .models.fixed_batch import FixedBatchClassifier, FixedBatchDenoiser, RowLayout
from .noise import SampleNoise, sample_seeds
from .samplers import SamplerSettings, Step
from .samplers.base import timestep_value
from .samplers.ddim import DDIMSettings, ddim_invert
from .settings import CLASS_CYCLE, RunSettings

_DTYPES = {name: getattr(torch, name) for name in DTYPES}
ACCELERATOR_CHECK_WINDOW = 8   # steps computed ahead per NaN check (one host sync) on a GPU


def resolve_device(name: str = "auto") -> torch.device:
    """auto: cuda, then mps, then cpu. An explicit device that is not there is an error, not a fallback."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SettingsError(f"device {name!r} is not available on this machine (no CUDA GPU); use auto or cpu")
        return torch.device(name)
    if name == "mps":
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise SettingsError("device 'mps' is not available on this machine; use auto or cpu")
        return torch.device("mps")
    if name == "cpu":
        return torch.device("cpu")
    raise SettingsError(f"device must be auto, cpu, cuda or mps, got {name!r}")


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    require_choice("dtype", name, DTYPES)
    if name != "float32" and device.type == "cpu":
        raise SettingsError(f"dtype {name} runs only on a GPU (cuda or mps); on the cpu use float32")
    return _DTYPES[name]


def _resolve_sampler(settings: RunSettings, card) -> SamplerSettings:
    """The sampler's settings against the card; DDIM's use_clipped_model_output=None becomes on exactly when
    guidance is on: guided eps and the clipped x0 it implies disagree, and DDIM's direction term then drives
    samples off the data, which is why GLIDE and improved-diffusion re-derive eps from the clipped x0. On a
    guided-diffusion model it is always on: its library's DDIM always re-derives."""
    sampler = settings.sampler.resolve(card)
    if isinstance(sampler, DDIMSettings) and sampler.use_clipped_model_output is None:
        guidance = settings.guidance
        guided = uses_classifier_free(guidance) or \
            (guidance.kind == "classifier" and guidance.scale != 0.0) or card.format == "guided_diffusion"
        sampler = sampler.replace(use_clipped_model_output=guided)
    return sampler


def class_labels_for(card, settings: RunSettings, count: int, offsets=None) -> list[int] | None:
    """The class label of each sample (None: an unconditional model). With ``class_label="cycle"`` sample i
    gets class i mod K, where i is the sample's place in the job (``offsets``: seed - settings.seed), so a
    sample keeps its class in any batch."""
    label = settings.class_label
    guidance = settings.guidance.kind
    num_classes = len(card.class_names)
    if not card.conditional and guidance != "classifier":
        if label is not None:
            raise SettingsError(f"model {card.name!r} is unconditional: class_label must be null, got {label!r}")
        if guidance == "classifier_free":
            raise SettingsError(f"classifier-free guidance needs a class-conditional model; {card.name!r} is not")
        return None
    if label is None:
        if guidance != "none":
            raise SettingsError(f"{guidance.replace('_', '-')} guidance needs a class_label (a class index or 'cycle')")
        if card.null_class is None:
            raise SettingsError(
                f"model {card.name!r} needs a class_label from 0 to {num_classes - 1} or 'cycle' "
                "(it has no null class for unconditional sampling)"
            )
        return [card.null_class] * count
    if num_classes == 0:  # classifier guidance on an unconditional model: labels are the classifier's
        if label == CLASS_CYCLE:
            raise SettingsError("class_label 'cycle' needs a model with class_names")
        return [int(label)] * count
    if label == CLASS_CYCLE:
        return [int(i) % num_classes for i in (range(count) if offsets is None else offsets)]
    if not 0 <= label < num_classes:
        raise SettingsError(f"class_label must be from 0 to {num_classes - 1} for model {card.name!r}, got {label}")
    return [int(label)] * count


class Run:
    """An iterator of Steps for one batch; see the module docstring."""

    def __init__(
        self,
        denoiser: Denoiser,
        settings: RunSettings,
        *,
        classifier: Classifier | None = None,
        seeds: Sequence[int] | None = None,
        x_T: torch.Tensor | None = None,
        check_window: int | None = None,
        planned_runs: int = 1,
        layout: RowLayout | None = None,
        branch: BranchStart | None = None,
    ):
        card = denoiser.card
        self.card = card
        self.settings = settings
        # a sample made again sits where its recipe says it was computed (``layout``, see fixed_batch.py)
        self.layout = None if layout is None or layout.plain else layout
        if (settings.model_batch or self.layout) and not isinstance(denoiser, FixedBatchDenoiser):
            denoiser = FixedBatchDenoiser(denoiser, settings.model_batch, self.layout)
            if classifier is not None:
                classifier = FixedBatchClassifier(classifier, settings.model_batch, self.layout)
        self.sampler: SamplerSettings = _resolve_sampler(settings, card)
        self.schedule = denoiser.schedule
        self.branch, self.branch_plan = branch, None
        if branch is None:
            self.timesteps: np.ndarray = self.sampler.timestep_list(card.num_train_timesteps, denoiser.schedule)
        else:   # the branch's own steps (studio.core.branch)
            self.branch_plan = plan_branch(branch, self.sampler, card, denoiser.schedule, settings.batch_size)
            self.timesteps = self.branch_plan.timesteps
            if seeds is None:
                seeds = branch_seeds(branch, settings.seed)
        self.seeds = list(seeds) if seeds is not None else sample_seeds(settings.seed, settings.batch_size)
        for s in self.seeds:
            sample_seeds(int(s), 1)
        self.device = resolve_device(settings.device)
        self.dtype = resolve_dtype(settings.dtype, self.device)
        # CPU kernels split their work by the thread count, and at some batch shapes a row's last bits follow it
        # (docs/engine.md): recorded so that a recipe can be made again on as many threads
        self.cpu_threads = torch.get_num_threads() if self.device.type == "cpu" else None
        if settings.guidance.kind == "classifier":
            if classifier is None:
                raise SettingsError("classifier guidance needs a classifier model; open one first")
        if settings.guidance.kind == "classifier_free" and card.null_class is None:
            raise SettingsError(f"classifier-free guidance needs a model trained with a null class; {card.name!r} has none")
        self.class_labels = class_labels_for(card, settings, len(self.seeds),
                                             offsets=[seed - settings.seed for seed in self.seeds])
        denoiser.to(self.device, self.dtype)
        # the network mode asked for (plain undoes an earlier run's); probed on the rows the network is called on;
        # auto weighs set-ups against the network calls of this run and of the later ones the caller plans
        rows = rows_per_model_call(settings.guidance, len(self.seeds))
        probe_rows = getattr(denoiser, "model_batch", 0) or rows
        require_int("planned_runs", planned_runs, 1)
        calls = self.sampler.model_calls(len(self.timesteps)) + self.replayed_model_calls
        network_calls = calls * math.ceil(rows / probe_rows) * planned_runs
        self.acceleration: Acceleration = accelerate(denoiser, settings.network, batch_size=probe_rows,
                                                     calls=network_calls,
                                                     sensitivity=run_sensitivity(self.sampler, self.timesteps,
                                                                                 self.schedule))
        if classifier is not None and hasattr(classifier, "to"):
            classifier.to(self.device)
        self._predict = self._build_predict(denoiser, classifier, settings, self.class_labels)
        on_device = settings.noise_device == "device"
        expected = (len(self.seeds), *card.data_shape)
        if branch is not None:
            self._steps: Iterator[Step] = self._branch_steps(denoiser, classifier, on_device)
            x_T = branch.x_t   # the branch starts from the parent's x_t at its step
        else:
            self.noise = SampleNoise(self.seeds, card.data_shape, self.device, on_device=on_device)
            if x_T is None:
                x_T = self.noise.draw()
        if tuple(x_T.shape) != expected:
            raise SettingsError(f"x_T must have shape {expected}, got {tuple(x_T.shape)}")
        self.x_T = x_T.to(self.device, torch.float32)
        # one context object for the whole run: entering it costs less than building one per step
        grad = settings.guidance.kind == "classifier" or (
            branch is not None and branch.parent_settings.guidance.kind == "classifier")
        self._grad_mode = torch.no_grad() if grad else torch.inference_mode()
        if branch is None:
            self._steps = self.sampler.run(self._predict, self.schedule, self.timesteps, self.x_T, self.noise)
        require_int("check_window", check_window, 1, optional=True)
        self.check_window = check_window or (1 if self.device.type == "cpu" else ACCELERATOR_CHECK_WINDOW)
        self._checked: deque[Step] = deque()   # computed and found finite, not yet handed out
        self._failure: NumericalError | None = None
        self.steps_done = 0
        self.finished = False

    @property
    def replayed_model_calls(self) -> int:
        """Model calls a branch makes again to rebuild its parent's first steps (replay mode), else 0."""
        plan = self.branch_plan
        if plan is None or plan.mode != "replay":
            return 0
        return self.sampler.model_calls(plan.parent_steps) - self.sampler.model_calls(len(plan.timesteps))

    def _branch_steps(self, denoiser: Denoiser, classifier, on_device: bool) -> BranchSteps:
        """A branch's steps: the replay (if any) under the parent's guidance and class, then the branch's own."""
        branch, plan = self.branch, self.branch_plan
        noise, parent_noise = branch_noise(branch, plan, self.seeds, self.card.data_shape, self.device, on_device)
        self.noise = noise
        parent_predict = None
        if plan.mode == "replay":
            parent = branch.parent_settings
            labels = class_labels_for(self.card, parent, len(self.seeds),
                                      offsets=[s - parent.seed for s in branch.parent_seeds])
            parent_predict = self._build_predict(denoiser, classifier, parent, labels)
        return BranchSteps(plan, self.sampler, self.schedule, branch, predict=self._predict,
                           parent_predict=parent_predict, noise=noise, parent_noise=parent_noise, device=self.device)

    def _build_predict(self, denoiser: Denoiser, classifier, settings: RunSettings, class_labels):
        labels = None
        if class_labels is not None:
            labels = torch.tensor(class_labels, dtype=torch.long, device=self.device)
        card = self.card
        null = None
        if card.null_class is not None:
            null = torch.full((len(self.seeds),), card.null_class, dtype=torch.long, device=self.device)
        guidance = settings.guidance
        model_labels = labels if card.conditional else None
        if guidance.kind == "classifier" and null is not None:
            model_labels = null  # classifier guidance steers the unconditional model
        return make_predict(denoiser, model_labels, guidance, target_labels=labels, null_labels=null,
                            classifier=classifier, classifier_to_sampler=gradient_to_sampler(card, self.sampler))

    @property
    def num_steps(self) -> int:
        return len(self.timesteps)

    def __iter__(self) -> "Run":
        return self

    def __next__(self) -> Step:
        if not self._checked:
            self._compute_ahead()
        self.steps_done += 1
        return self._checked.popleft()

    def _compute_ahead(self) -> None:
        """Make up to ``check_window`` steps, check them with one host sync, keep those before any NaN."""
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
        made = []
        with self._grad_mode:
            for _ in range(self.check_window):
                try:
                    made.append(next(self._steps))
                except StopIteration:
                    break
        if not made:
            self.finished = True
            raise StopIteration
        self._keep_finite(made)

    def _keep_finite(self, made: list[Step]) -> None:
        """Keep the steps before the first one with a NaN or Inf; at one, cancel and keep the failure to raise
        once the kept steps are handed out (at once when there are none)."""
        bad, where = _first_non_finite(made)
        if bad is None:
            self._checked.extend(made)
            return
        self.close()
        step = made[bad]
        self._checked.extend(made[:bad])
        what = f"the run produced NaN or Inf in {where} at step {step.index + 1}/{step.num_steps} (t={step.t})"
        self._failure = NumericalError(f"{what}; the steps before it are kept", index=step.index, t=step.t,
                                       what=what)
        if not self._checked:
            self._compute_ahead()   # raises the failure now

    def close(self) -> None:
        """Cancel: no further model call is made."""
        self._steps.close()

    def record(self) -> dict:
        """What ran, for run.json and PNG metadata."""
        return {
            "studio_version": __version__,
            "model": {"name": self.card.name, "sha256": self.card.sha256, "format": self.card.format},
            "settings": self.settings.replace(sampler=self.sampler, network=self.acceleration.mode).to_dict(),
            "timesteps": [timestep_value(t) for t in self.timesteps],
            "model_calls": self.sampler.model_calls(self.num_steps),
            "seeds": list(self.seeds),
            "class_labels": self.class_labels,
            "device": str(self.device),
            "dtype": str(self.dtype).replace("torch.", ""),
            **({"threads": self.cpu_threads} if self.cpu_threads is not None else {}),
            **({"made_in": self.layout.to_dict()} if self.layout is not None else {}),
            **({"branch": self._branch_record()} if self.branch is not None else {}),
        }

    def _branch_record(self) -> dict:
        branch, plan = self.branch, self.branch_plan
        steps = self._steps
        difference = getattr(steps, "replay_difference", None)
        return {"at_step": branch.at_step, "mode": plan.mode, "parent_steps": plan.parent_steps,
                "replayed_model_calls": self.replayed_model_calls,
                **({"replay_difference": difference} if difference is not None else {}),
                **({"parent": branch.parent} if branch.parent is not None else {})}


def run_sensitivity(sampler: SamplerSettings, timesteps, schedule) -> float:
    """How far a difference of 1 in every network output of one trajectory can move its final sample, at most
    about: each call's x0_pred moves by sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t) times a change of the
    predicted noise, and the trajectory carries it on; summed over the run's calls (a multi-call step counts each).
    What ``auto`` weighs a faster network's difference from plain against (studio.core.acceleration)."""
    t = np.asarray(timesteps, dtype=np.float64)
    if not t.size:
        return 0.0
    sigma = np.asarray(schedule.sigma, dtype=np.float64)
    per_step = np.interp(t, np.arange(len(sigma)), sigma)
    return float(per_step.sum()) * sampler.model_calls(len(t)) / len(t)


def _first_non_finite(steps: list[Step]) -> tuple[int | None, str]:
    """Index in ``steps`` of the first step with a NaN or Inf, and where it is ("the model's prediction" or
    "x_t"); (None, "") when all are finite. One host sync for all the steps."""
    flags = [_finite_or_unsure(step) for step in steps]
    if not all(flags):   # exact flags for the steps the cheap test could not clear (one sync on a GPU)
        exact = torch.stack([torch.stack([torch.isfinite(s.eps_pred).all(), torch.isfinite(s.x_t).all()])
                             for s in steps]).tolist()
        for index, (eps_finite, x_finite) in enumerate(exact):
            if not (eps_finite and x_finite):
                return index, "the model's prediction" if not eps_finite else "x_t"
    return None, ""


def _finite_or_unsure(step: Step) -> bool:
    """True only when every value of the step's eps_pred and x_t is finite, read from one number: their dot
    product is NaN or Inf as soon as either holds one (x * 0 is NaN for an infinite x). False may also mean the
    product overflowed; the caller then checks each value. On a GPU, False without reading anything: the
    steps of a window are checked together there, with one sync."""
    if step.x_t.device.type != "cpu":
        return False
    try:
        return math.isfinite(torch.dot(step.eps_pred.reshape(-1), step.x_t.reshape(-1)).item())
    except RuntimeError:   # dtypes or sizes that differ
        return False


def sample(denoiser: Denoiser, settings: RunSettings, **kwargs) -> Run:
    """Start a run; iterate it for Steps. See ``Run``."""
    return Run(denoiser, settings, **kwargs)


def sample_final(denoiser: Denoiser, settings: RunSettings, **kwargs) -> torch.Tensor:
    """Run to the end and return the final samples (batch, *data_shape), float32."""
    run = Run(denoiser, settings, **kwargs)
    x = run.x_T
    for step in run:
        x = step.x_t
    return x


class Inversion:
    """Deterministic DDIM inversion (data -> x_T) as an iterator of Steps; ``reconstruct`` runs DDIM back."""

    def __init__(self, denoiser: Denoiser, x0_data: torch.Tensor, sampler: DDIMSettings, device: str = "auto",
                 dtype: str = "float32", class_label: int | None = None):
        if not isinstance(sampler, DDIMSettings) or not sampler.deterministic:
            raise SettingsError("inversion needs the DDIM sampler with eta = 0")
        card = denoiser.card
        self.sampler = sampler.resolve(card)
        self.timesteps = self.sampler.timestep_list(card.num_train_timesteps)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.settings = RunSettings(sampler=self.sampler, batch_size=max(1, x0_data.shape[0]), class_label=class_label,
                                    device=device, dtype=dtype, network="plain")
        expected = tuple(card.data_shape)
        if x0_data.ndim != len(expected) + 1 or tuple(x0_data.shape[1:]) != expected:
            raise SettingsError(f"data to invert must have shape (batch, {', '.join(map(str, expected))}), "
                                f"got {tuple(x0_data.shape)}")
        self.denoiser = denoiser.to(self.device, self.dtype)
        self.acceleration = accelerate(denoiser, self.settings.network)   # plain: as its reconstruction runs
        labels = class_labels_for(card, self.settings, x0_data.shape[0])
        self._labels = None if labels is None else torch.tensor(labels, dtype=torch.long, device=self.device)
        self._predict = make_predict(denoiser, self._labels, self.settings.guidance)
        self.x0_data = x0_data.to(self.device, torch.float32)
        self._steps = ddim_invert(self._predict, denoiser.schedule, self.timesteps, self.x0_data)

    def __iter__(self):
        return self

    def __next__(self) -> Step:
        with torch.inference_mode():
            return next(self._steps)

    def run(self) -> torch.Tensor:
        x = self.x0_data
        for step in self:
            x = step.x_t
        return x

    def reconstruct(self, x_T: torch.Tensor) -> torch.Tensor:
        """DDIM (eta = 0, same timesteps and clipping) from x_T back to data."""
        run = Run(self.denoiser, self.settings, x_T=x_T)
        x = run.x_T
        for step in run:
            x = step.x_t
        return x
