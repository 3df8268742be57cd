"""Sampler panel: sampler, steps (and the model calls they make), eta, UniPC's order, Karras sigmas, timestep
spacing, variance, x0 clipping, guidance, class, and the network's speed mode.

Only the options that apply to the chosen sampler and the loaded model are enabled; each says what it does
in its tooltip, and a greyed-out one says why. What applies is not listed here by hand: a widget is enabled
when the sampler's settings class has its field (``dataclasses.fields``), and a spacing or clipping choice
when the class accepts it (the panel builds the settings and keeps the class's refusal as the reason). The
panel turns its widgets into settings objects (``studio.core.samplers.sampler_settings``) and back; it
validates nothing itself (the settings dataclasses do, with the messages the window shows).

Some settings belong to one model (``MODEL_SETTINGS``: x0 clipping and its range, variance, class, guidance):
``model_settings`` reads them and ``use_model`` shows a model with its own (the window remembers them per
model) or, for a model without any, as its model card says, so one model's choices never leak into another.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import MISSING, fields

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel, QSpinBox, QWidget,
)

from ...core.choices import (
    DDIM_SIGMAS, DEFAULT_DDIM_STEPS, GUIDANCE_KINDS, LEARNED_VARIANCE_TYPES, NETWORK_MODES, SAMPLER_NAMES, SPACINGS,
    VARIANCE_TYPES, tolerance_text,
)
from ...core.errors import SettingsError
from ...core.models.card import ModelCard
from ...core.samplers import SAMPLERS, SamplerSettings
from ...core.samplers import sampler_settings as build_sampler_settings
from ...core.settings import CLASS_CYCLE, GuidanceSettings
from ..status_texts import calls_text

# The choices themselves come from studio.core.choices; these say them in words (a choice without words here
# is still offered, under its own name).
SAMPLER_TEXTS = {"ddim": "DDIM", "ddpm": "DDPM", "euler": "Euler", "euler_a": "Euler ancestral", "heun": "Heun",
                 "dpmpp_2m": "DPM++ 2M", "dpmpp_3m": "DPM++ 3M", "dpmpp_2m_sde": "DPM++ 2M SDE", "unipc": "UniPC",
                 "pndm": "PNDM (PLMS)"}
# what each sampler is; the model calls a run makes are counted from its settings class, not written here
SAMPLER_TIPS = {
    "ddim": "DDIM (Song et al. 2021): first order; deterministic at eta 0 (same seed, same image), stochastic "
            "with eta > 0 or sigma-hat noise. Big steps: few are needed. diffusers' DDIMScheduler",
    "ddpm": "DDPM (Ho et al. 2020): stochastic ancestral sampling, fresh noise at every step as in training; "
            "first order; wants many steps. diffusers' DDPMScheduler",
    "euler": "Euler (Karras et al. 2022, Algorithm 1 without its correction): deterministic, first order, on the "
             "probability-flow ODE in sigma space. diffusers' EulerDiscreteScheduler",
    "euler_a": "Euler ancestral (k-diffusion's sample_euler_ancestral): stochastic, first order: an Euler step "
               "plus fresh noise. diffusers' EulerAncestralDiscreteScheduler",
    "heun": "Heun (Karras et al. 2022, Algorithm 1): deterministic, second order: an Euler step corrected by a "
            "second model call, two calls per step except the last. diffusers' HeunDiscreteScheduler",
    "dpmpp_2m": "DPM-Solver++(2M) (Lu et al. 2022): deterministic, second-order multistep (reuses the step "
                "before's prediction). diffusers' DPMSolverMultistepScheduler, solver_order 2",
    "dpmpp_3m": "DPM-Solver++(3M) (Lu et al. 2022): deterministic, third-order multistep. diffusers' "
                "DPMSolverMultistepScheduler, solver_order 3",
    "dpmpp_2m_sde": "SDE-DPM-Solver++(2M) (Lu et al. 2022): stochastic, second-order multistep, fresh noise at "
                    "every step. diffusers' DPMSolverMultistepScheduler, algorithm_type sde-dpmsolver++",
    "unipc": "UniPC (Zhao et al. 2023): deterministic multistep predictor-corrector of order 1 to 3 (the "
             "corrector adds one without a model call of its own). diffusers' UniPCMultistepScheduler",
    "pndm": "PNDM's PLMS (Liu et al. 2022): deterministic linear multistep up to fourth order; its first step "
            "is redone with a second model call, so t_1 is visited twice. diffusers' PNDMScheduler, "
            "skip_prk_steps",
}
TIP_STEPS, TIP_T = 20, 1000   # the run the sampler tooltips count model calls for
SPACING_TIPS = {
    "leading": "leading: 0, T/S, 2T/S, … (diffusers' default; never visits t = T-1)",
    "linspace": "linspace: evenly from T-1 down to 0, both ends included",
    "trailing": "trailing: evenly from T-1 down, stopping short of 0 (best for few steps)",
    "quad": "quad: quadratic, dense near t = 0 (the DDIM paper's CIFAR-10 choice)",
}
CLIP_CHOICES = (("Model card", "model"), ("Clip to ± range", "clip"), ("Dynamic thresholding", "threshold"),
                ("Off", "off"))
CLIP_TIPS = {"clip": "Clip x0 to ± the range beside, at every step",
             "threshold": "Imagen's dynamic thresholding: x0 rescaled per sample by its 99.5% quantile of |x0|",
             "off": "x0 is left as the model predicts it"}
DDIM_SIGMA_TEXTS = {"eta": "× eq. 16 noise", "sigma_hat": "sigma-hat noise"}
GUIDANCE_TEXTS = {"none": "None", "classifier_free": "Classifier-free", "classifier": "Classifier"}
# the settings field each sampler-specific widget shows, in words for "X has no ... setting"
FIELD_WORDS = {"eta": "eta", "sigma_kind": "noise kind (sigma_kind)", "variance_type": "variance",
               "order": "order", "karras": "Karras sigmas"}
_CHECKED = f"(used only if within {tolerance_text()} of plain)"
NETWORK_TIPS = {
    "auto": "the default: the fastest mode whose set-up pays for itself in this run (on a CPU a traced graph, on a "
            "CUDA GPU cuda_graph; a short run stays plain); the status bar and the run's record name the mode it took",
    "plain": "the network as it is: the reference, bit for bit what `studio sample --network plain` and diffusers "
             "compute",
    "channels_last": f"channels-last memory layout: often faster convolutions; outputs differ in their last bits "
                     f"{_CHECKED}",
    "traced": f"the network traced with TorchScript and frozen: less Python per call (small networks on a CPU "
              f"gain most), set up in about a second; outputs usually equal plain's {_CHECKED}",
    "traced_channels_last": f"the traced graph on the channels-last layout: on a CPU the fastest set-up of about a "
                            f"second (what auto takes there for image models); outputs differ in their last bits "
                            f"{_CHECKED}",
    "compiled": f"torch.compile: faster per step, but the first run takes tens of seconds to compile (once per "
                f"model and batch while the studio is open); outputs differ in their last bits {_CHECKED}",
    "compiled_channels_last": "torch.compile on the channels-last layout: both of the above, the same first-run "
                              "warm-up",
    "cuda_graph": f"a CUDA GPU only: the network's forward recorded once as a CUDA graph and replayed with one "
                  f"launch per step (a small network on a GPU waits on kernel launches); elsewhere the run goes "
                  f"on plain {_CHECKED}",
}
NETWORK_TIP = ("How the network runs. A faster mode is checked against the plain network before the run and "
               "falls back to plain (the status bar says why) if it fails or moves an output by more than "
               f"{tolerance_text()}:\n"
               + "\n".join(f"{mode}: {NETWORK_TIPS.get(mode, mode)}" for mode in NETWORK_MODES))
GUIDANCE_TIP = (
    "Guidance pushes each sample towards the class chosen above. Classifier-free: the model's own "
    "conditional and unconditional answers, eps = eps_uncond + scale (eps_cond - eps_uncond); it needs a "
    "model trained with a null class. Classifier: a separate noise-aware classifier steers the unconditional "
    "model, eps = eps - scale sqrt(1 - alpha_bar_t) grad log p(class | x_t); it needs a classifier that fits "
    "the model (same images, classes and T)")


# --- what a sampler's settings class takes (derived from the class, never listed by hand) -------------------------
def sampler_text(name: str) -> str:
    return SAMPLER_TEXTS.get(name, name)


@functools.cache
def sampler_fields(name: str) -> frozenset[str]:
    """The settings fields of sampler ``name``'s class: a widget for a field the class lacks is greyed out."""
    return frozenset(field.name for field in fields(SAMPLERS[name]))


def samplers_with(field: str) -> tuple[str, ...]:
    return tuple(name for name in SAMPLER_NAMES if field in sampler_fields(name))


def field_default(name: str, field: str):
    """The default of ``field`` in sampler ``name``'s settings class."""
    for item in fields(SAMPLERS[name]):
        if item.name == field:
            return item.default if item.default is not MISSING else item.default_factory()
    raise KeyError(f"sampler {name} has no setting {field!r}")


def refusal(name: str, **values) -> str:
    """Why sampler ``name``'s settings class refuses ``values`` (its SettingsError's message); "" if it takes them."""
    return _refusal(name, tuple(sorted(values.items())))


@functools.lru_cache(maxsize=4096)
def _refusal(name: str, items: tuple) -> str:
    try:
        build_sampler_settings(name, **dict(items))
    except SettingsError as exc:
        return str(exc)
    return ""


def valid_range(name: str, field: str, candidates=range(1, 10), **values) -> list[int]:
    """The candidate values of an integer ``field`` the class takes (steps: its minimum; order: its range)."""
    return [n for n in candidates if not refusal(name, **values, **{field: n})]


def model_calls(settings: SamplerSettings, num_train_timesteps: int) -> int:
    """The model calls (NFE) a run with ``settings`` makes on a model of T = ``num_train_timesteps``: the class
    counts them over the steps its timestep list has (PNDM's has one more than its ``steps``)."""
    return settings.model_calls(len(settings.timestep_list(num_train_timesteps)))


@functools.cache
def sampler_tip(name: str) -> str:
    """What a sampler is, with the model calls of a typical run counted from its settings class."""
    text = SAMPLER_TIPS.get(name, sampler_text(name))
    try:
        settings = build_sampler_settings(name, steps=TIP_STEPS)
        return f"{text}.\n{TIP_STEPS} steps make {calls_text(model_calls(settings, TIP_T))}."
    except SettingsError:
        return text


# the settings that belong to the model they were chosen for (the window keeps them per model; docs/window.md)
MODEL_SETTINGS = ("clip", "clip_range", "variance_type", "class_label", "guidance")
DEFAULT_CLIP_RANGE = 1.0
DEFAULT_GUIDANCE_SCALE = 3.0


def clip_choice(sampler: SamplerSettings) -> str:
    """The clip combo's choice for a sampler's settings: model card, clip to ± range, thresholding or off."""
    if getattr(sampler, "thresholding", False):
        return "threshold"
    clip = getattr(sampler, "clip_sample", None)
    return "model" if clip is None else "clip" if clip else "off"


def model_settings_of(sampler: SamplerSettings, guidance: GuidanceSettings, class_label) -> dict:
    """The model's own part of stored run settings, as ``SamplerPanel.model_settings`` writes it."""
    clip_range = getattr(sampler, "clip_sample_range", None)
    return {"clip": clip_choice(sampler),
            "clip_range": float(clip_range) if clip_range is not None else DEFAULT_CLIP_RANGE,
            "variance_type": getattr(sampler, "variance_type", None),
            "class_label": class_label, "guidance": guidance.to_dict()}


CLIP_VALUES = {   # the clip combo's choice -> the settings fields it sets (the range comes from its spin box)
    "model": {"clip_sample": None},
    "clip": {"clip_sample": True},
    "threshold": {"thresholding": True},
    "off": {"clip_sample": False},
}


class SamplerPanel(QWidget):
    changed = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.card: ModelCard | None = None
        # The class and guidance the user asked for, kept across models that cannot take them (a model
        # opened later, or settings restored before any model, gets them back where they apply); likewise the
        # spacing and clipping asked for, across samplers that refuse them.
        self._wanted_class = CLASS_CYCLE
        self._wanted_guidance = "none"
        self._wanted_spacing = SPACINGS[0]
        self._wanted_clip = "model"
        self._classifier_missing = "no model is open"   # why classifier guidance is not offered ("" if it is)
        self._tips: dict[QWidget, str] = {}   # each widget's own tooltip, before any "why not"
        self._build_sampler_widgets()
        self._build_clipping_widgets()
        self._build_guidance_widgets()
        self.network_combo = self._combo("networkCombo", "Network speed mode", NETWORK_TIP)
        for mode in NETWORK_MODES:
            self._add_choice(self.network_combo, mode, mode, f"{mode}: {NETWORK_TIPS.get(mode, mode)}")
        self._sampler = self.sampler_combo.currentData()   # the sampler the steps were last fitted to
        self._wanted_spacing = self.spacing_combo.currentData()
        self._lay_out()
        self._connect_signals()
        self.set_card(None)

    def _build_sampler_widgets(self) -> None:
        """Sampler, steps and their model calls, eta and the noise it scales, order and Karras sigmas, timestep
        spacing, DDPM variance."""
        self.sampler_combo = self._combo("samplerCombo", "Sampler", (
            "Which solver turns noise into a sample. Deterministic ones make the same image from the same seed; "
            "stochastic ones add fresh noise at every step. Higher-order and multistep solvers need fewer steps. "
            "Each entry's tooltip says what it is, its order, its model calls and the diffusers scheduler it "
            "matches"))
        for name in SAMPLER_NAMES:
            self._add_choice(self.sampler_combo, sampler_text(name), name, sampler_tip(name))
        self.steps_spin = QSpinBox()
        self._name(self.steps_spin, "stepsSpin", "Steps", (
            "How many solver steps the run takes, spread over the T training timesteps; more steps: slower, "
            "usually cleaner. Most samplers make one model call per step; the count beside says how many this "
            "run makes (Heun: two per step but the last; PNDM: one more than its steps). Switching sampler keeps "
            "a number you chose if the new one takes it, else starts from the new sampler's default"))
        self.steps_spin.setRange(1, 1000)
        self.steps_spin.setValue(DEFAULT_DDIM_STEPS)
        self.calls_label = QLabel()
        self._name(self.calls_label, "modelCallsLabel", "Model calls", (
            "The model calls (NFE, network evaluations) a run with these settings makes: what a run costs, "
            "whatever the sampler's steps are"))
        self.eta_spin = QDoubleSpinBox()
        self._name(self.eta_spin, "etaSpin", "Eta", "DDIM only: how much fresh noise each step adds. 0 is "
                   "deterministic (same seed, same image); 1 behaves like DDPM")
        self.eta_spin.setRange(0.0, 1.0)
        self.eta_spin.setSingleStep(0.1)
        self.eta_spin.setDecimals(2)
        self.ddim_noise_combo = self._combo("ddimNoiseCombo", "DDIM noise", (
            "DDIM only: which noise eta scales. eta: the paper's eq. 16, from none (eta 0, deterministic) to "
            "DDPM's own (eta 1). sigma-hat: the larger noise of the paper's appendix D.3 at every step but the "
            "last, whatever eta is"))
        for kind in DDIM_SIGMAS:
            self.ddim_noise_combo.addItem(DDIM_SIGMA_TEXTS.get(kind, kind), kind)
        self._build_order_widgets()
        self.spacing_combo = self._combo("spacingCombo", "Timestep spacing",
                                         "Which of the T training timesteps the run visits:\n" +
                                         "\n".join(SPACING_TIPS.get(name, name) for name in SPACINGS))
        for name in SPACINGS:
            self._add_choice(self.spacing_combo, name, name, SPACING_TIPS.get(name, name))
        self.variance_combo = self._combo("varianceCombo", "Variance", (
            "DDPM only: the size of the noise added each step. fixed_small: the exact posterior variance "
            "(sharper); fixed_large: beta_t (more noise); learned / learned_range: the model's own prediction "
            "(only for models that learned it)"))

    def _build_order_widgets(self) -> None:
        """The solver order (UniPC's) and Karras sigmas, for the samplers whose settings have them."""
        self.order_spin = QSpinBox()
        self._name(self.order_spin, "orderSpin", "Solver order", (
            "The order of UniPC's predictor, diffusers' solver_order: higher orders reuse more earlier model "
            "outputs for a more accurate step (the corrector adds one more), at no extra model call; the first "
            "steps and the last fall back to lower orders"))
        orders = sorted({n for name in samplers_with("order") for n in valid_range(name, "order")}) or [1]
        self.order_spin.setRange(orders[0], orders[-1])
        with_order = samplers_with("order")
        self.order_spin.setValue(field_default(with_order[0], "order") if with_order else orders[0])
        self.karras_check = QCheckBox("Karras sigmas")
        self._name(self.karras_check, "karrasCheck", "Karras sigmas", (
            "Karras et al. 2022's noise levels (eq. 5, rho 7), diffusers' use_karras_sigmas: steps packed "
            "towards low noise, where detail forms. Euler and Heun space them between their spacing's first and "
            "last noise level; the multistep solvers over the model's whole range (their spacing then stays "
            "linspace)"))

    def _build_clipping_widgets(self) -> None:
        self.clip_combo = self._combo("clipCombo", "x0 clipping", (
            "What to do with the predicted x0 before each step: keep the model card's rule, clip it to ± range, "
            "rescale it per sample by its 99.5% quantile (dynamic thresholding), or leave it alone"))
        for text, value in CLIP_CHOICES:
            self.clip_combo.addItem(text, value)
        # it shares its row with the range: no wider than the other rows for its longest entry
        self.clip_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.clip_combo.setMinimumContentsLength(12)
        self.clip_range_spin = QDoubleSpinBox()
        self._name(self.clip_range_spin, "clipRangeSpin", "Clip range", "Clip range: x0 is clipped to [-range, +range]")
        self.clip_range_spin.setRange(0.01, 100.0)
        self.clip_range_spin.setValue(DEFAULT_CLIP_RANGE)

    def _build_guidance_widgets(self) -> None:
        """Guidance kind and scale, and the class it guides towards."""
        self.guidance_combo = self._combo("guidanceCombo", "Guidance", GUIDANCE_TIP)
        for kind in GUIDANCE_KINDS:
            self.guidance_combo.addItem(GUIDANCE_TEXTS.get(kind, kind), kind)
        self.guidance_scale_spin = QDoubleSpinBox()
        self._name(self.guidance_scale_spin, "guidanceScaleSpin", "Guidance scale", (
            "How hard guidance pushes: 1 is the plain conditional model, larger is more typical of the class but "
            "less varied, 0 ignores the class"))
        self.guidance_scale_spin.setRange(0.0, 100.0)
        self.guidance_scale_spin.setSingleStep(0.5)
        self.guidance_scale_spin.setValue(DEFAULT_GUIDANCE_SCALE)
        self.class_combo = self._combo("classCombo", "Class", (
            "Which class to draw, for a class-conditional model: one class for every sample, 'cycle' (sample i "
            "gets class i mod K), or no class (the model's unconditional mode)"))

    def _lay_out(self) -> None:
        form = QFormLayout(self)
        # widgets that share a row keep the dock short (the window fits a 1000-pixel screen): steps and their
        # model calls, eta and the noise it scales, the order and Karras sigmas, the clipping and its range
        rows = {"Steps": ((self.steps_spin, 1), (self.calls_label, 1)),
                "Eta": ((self.eta_spin, 1), (self.ddim_noise_combo, 1)),
                "Order": ((self.order_spin, 1), (self.karras_check, 1)),
                "x0 clipping": ((self.clip_combo, 1), (self.clip_range_spin, 0))}
        laid = {}
        for label, widgets in rows.items():
            row = QHBoxLayout()
            for widget, stretch in widgets:
                row.addWidget(widget, stretch)
            laid[label] = row
        for label, widget in (("Sampler", self.sampler_combo), ("Steps", laid["Steps"]), ("Eta", laid["Eta"]),
                              ("Order", laid["Order"]), ("Spacing", self.spacing_combo),
                              ("Variance", self.variance_combo), ("x0 clipping", laid["x0 clipping"]),
                              ("Class", self.class_combo), ("Guidance", self.guidance_combo),
                              ("Guidance scale", self.guidance_scale_spin), ("Network", self.network_combo)):
            form.addRow(label, widget)
            first = rows[label][0][0] if label in rows else widget
            form.labelForField(widget).setToolTip(self._tips[first])

    def _connect_signals(self) -> None:
        for widget in self._widgets():
            if isinstance(widget, QComboBox):
                signal = widget.currentIndexChanged
            elif isinstance(widget, QCheckBox):
                signal = widget.toggled
            else:
                signal = widget.valueChanged
            signal.connect(lambda *_, source=widget: self._on_change(source))

    def _add_choice(self, combo: QComboBox, text: str, value, tip: str) -> None:
        combo.addItem(text, value)
        combo.setItemData(combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)

    def _name(self, widget, name: str, accessible: str, tooltip: str) -> None:
        widget.setObjectName(name)
        widget.setAccessibleName(accessible)
        widget.setToolTip(tooltip)
        self._tips[widget] = tooltip

    def _combo(self, name: str, accessible: str, tooltip: str) -> QComboBox:
        combo = QComboBox()
        self._name(combo, name, accessible, tooltip)
        return combo

    def _widgets(self) -> list:
        return [self.sampler_combo, self.steps_spin, self.eta_spin, self.ddim_noise_combo, self.order_spin,
                self.karras_check, self.spacing_combo, self.variance_combo, self.clip_combo, self.clip_range_spin,
                self.guidance_combo, self.guidance_scale_spin, self.class_combo, self.network_combo]

    def _field_widgets(self) -> dict:
        """The settings field each sampler-specific widget shows: enabled only for a class with that field."""
        return {"eta": self.eta_spin, "sigma_kind": self.ddim_noise_combo, "variance_type": self.variance_combo,
                "order": self.order_spin, "karras": self.karras_check}

    @contextlib.contextmanager
    def _quiet(self, *widgets):
        """Change widgets without their signals (the panel fits itself; one ``changed`` follows)."""
        widgets = widgets or tuple(self._widgets())
        blocked = [widget.blockSignals(True) for widget in widgets]
        try:
            yield
        finally:
            for widget, was in zip(widgets, blocked):
                widget.blockSignals(was)

    def _on_change(self, source=None):
        if source is self.sampler_combo:
            self._switch_defaults()
        elif source is self.spacing_combo:
            self._wanted_spacing = self.spacing_combo.currentData()
        elif source is self.clip_combo:
            self._wanted_clip = self.clip_combo.currentData()
        if self.class_combo.isEnabled():
            self._wanted_class = self.class_combo.currentData()
        if self.guidance_combo.isEnabled():
            self._wanted_guidance = self.guidance_combo.currentData()
        self._update_enabled()
        self.changed.emit()

    # --- the model decides what applies ----------------------------------------------------------------------------
    def set_card(self, card: ModelCard | None) -> None:
        """Fit the choices to a model: steps up to T, its variance types, its classes."""
        self.card = card
        with self._quiet():
            previous_variance = self.variance_combo.currentData()
            self.variance_combo.clear()
            model_variance = card.variance_type if card else "fixed_small"
            self.variance_combo.addItem(f"As the model card ({model_variance})", None)
            for name in VARIANCE_TYPES:
                self.variance_combo.addItem(name, name)
                learned_elsewhere = name in LEARNED_VARIANCE_TYPES and name != model_variance
                self.variance_combo.model().item(self.variance_combo.count() - 1).setEnabled(not learned_elsewhere)
            self._select(self.variance_combo, previous_variance)
            self.steps_spin.setMaximum(card.num_train_timesteps if card else 1000)
            self.class_combo.clear()
            if card is None or not card.conditional:
                self.class_combo.addItem("Unconditional model", None)
            else:
                self.class_combo.addItem("Cycle through the classes", CLASS_CYCLE)
                if card.null_class is not None:
                    self.class_combo.addItem("No class (unconditional)", None)
                for index, name in enumerate(card.class_names):
                    self.class_combo.addItem(f"{index}: {name}" if name != str(index) else name, index)
                if self.class_combo.findData(self._wanted_class) >= 0:
                    self._select(self.class_combo, self._wanted_class)
                else:   # "cycle" shows every class in one batch
                    self._select(self.class_combo, CLASS_CYCLE)
            self._update_enabled()   # which guidance kinds this model can take, before choosing one
            self._select(self.guidance_combo, self._wanted_guidance)
        self._update_enabled()

    # --- the settings that belong to a model -------------------------------------------------------------------------
    def model_settings(self) -> dict:
        """The open model's own settings (``MODEL_SETTINGS``) as the user chose them: clipping even where the
        sampler shown cannot take it, the class and guidance only for a model that has classes."""
        values = {"clip": self._wanted_clip, "clip_range": self.clip_range_spin.value(),
                  "variance_type": self.variance_combo.currentData()}
        if self.card is not None and self.card.conditional:
            values["class_label"] = self._wanted_class
            values["guidance"] = {"kind": self._wanted_guidance, "scale": self.guidance_scale_spin.value()}
        return values

    def use_model(self, card: ModelCard | None, values: dict | None = None) -> list[str]:
        """Show ``card`` with its own settings: ``values`` (``model_settings`` as remembered for this model), or,
        without them, as the model card says (its clipping and variance, every class in turn, no guidance).
        Returns what in ``values`` this model cannot take, in words (those fall back to the model card's)."""
        values = values if isinstance(values, dict) else {}
        clip = values.get("clip", "model")
        clip = clip if clip in CLIP_VALUES else "model"
        clip_range = values.get("clip_range", DEFAULT_CLIP_RANGE)
        guidance = values.get("guidance") if isinstance(values.get("guidance"), dict) else {}
        kind = guidance.get("kind", "none") if guidance.get("kind") in GUIDANCE_KINDS else "none"
        scale = guidance.get("scale", DEFAULT_GUIDANCE_SCALE)
        with self._quiet():
            self._wanted_clip = clip
            if isinstance(clip_range, (int, float)) and not isinstance(clip_range, bool):
                self.clip_range_spin.setValue(float(clip_range))
            if isinstance(scale, (int, float)) and not isinstance(scale, bool):
                self.guidance_scale_spin.setValue(float(scale))
            self._wanted_class = values.get("class_label", CLASS_CYCLE)
            self._wanted_guidance = kind
            self.variance_combo.setCurrentIndex(0)   # "as the model card", unless chosen for this model
        self.set_card(card)
        wanted_variance = values.get("variance_type")
        with self._quiet():
            if wanted_variance is not None:
                self._select(self.variance_combo, wanted_variance)
        self._update_enabled()
        return self._misfits(card, values, wanted_variance, kind)

    def _misfits(self, card: ModelCard | None, values: dict, variance, guidance: str) -> list[str]:
        """What of the remembered ``values`` the panel could not show for ``card``."""
        if card is None:
            return []
        out = []
        label = values.get("class_label")
        if "class_label" in values and label not in (None, CLASS_CYCLE) and \
                (not card.conditional or self.class_combo.findData(label) < 0):
            out.append(f"class {label!r} ({'the model is unconditional' if not card.conditional else 'no such class'})")
        if variance is not None and self.variance_combo.currentData() != variance:
            out.append(f"variance {variance} (the model did not learn it)")
        if guidance != "none" and self.guidance_combo.currentData() != guidance:
            reason = self.guidance_combo.model().item(self.guidance_combo.findData(guidance)).toolTip()
            out.append(f"{GUIDANCE_TEXTS.get(guidance, guidance).lower()} guidance"
                       + (f" ({reason.removeprefix('Not available now: ')})" if reason else ""))
        return out

    @staticmethod
    def _select(combo: QComboBox, data) -> None:
        index = combo.findData(data)
        if index >= 0 and combo.model().item(index).isEnabled():
            combo.setCurrentIndex(index)

    def set_classifier_available(self, why_not: str) -> None:
        """Offer classifier guidance ("" : a classifier fits the model) or say why it is not offered."""
        self._classifier_missing = why_not
        self._update_enabled()

    # --- the sampler decides what applies --------------------------------------------------------------------------
    def _not_used(self, field: str, name: str) -> str:
        users = ", ".join(sampler_text(user) for user in samplers_with(field)) or "no sampler"
        return (f"Not used by {sampler_text(name)}: its settings have no {FIELD_WORDS.get(field, field)}; "
                f"{users} {'has' if len(samplers_with(field)) == 1 else 'have'} one")

    def _default_steps(self, name: str) -> int:
        """The sampler's own default number of steps, within what the model allows."""
        return max(self._min_steps(name), min(int(field_default(name, "steps")), self.steps_spin.maximum()))

    @staticmethod
    def _min_steps(name: str) -> int:
        return (valid_range(name, "steps") or [1])[0]

    def _switch_defaults(self) -> None:
        """A new sampler: keep the steps and spacing the user chose if it takes them, else start from its own
        defaults (a value left at the old sampler's default is that sampler's choice, not the user's)."""
        name, old = self.sampler_combo.currentData(), self._sampler
        self._sampler = name
        if name == old:
            return
        if old is None or self._wanted_spacing == field_default(old, "spacing"):
            self._wanted_spacing = field_default(name, "spacing")
        steps = self.steps_spin.value()
        chosen = old is None or steps != self._default_steps(old)
        keep = chosen and steps >= self._min_steps(name) and not refusal(name, steps=steps)
        with self._quiet(self.steps_spin):
            self.steps_spin.setMinimum(self._min_steps(name))
            self.steps_spin.setValue(steps if keep else self._default_steps(name))

    def _sampler_values(self, name: str) -> dict:
        """The values of the widgets for the fields of ``name``'s class other than steps, spacing and clipping."""
        have = sampler_fields(name)
        values = {"eta": self.eta_spin.value(), "sigma_kind": self.ddim_noise_combo.currentData(),
                  "variance_type": self.variance_combo.currentData(), "order": self.order_spin.value(),
                  "karras": self.karras_check.isChecked()}
        return {field: value for field, value in values.items() if field in have}

    def _clip_values(self, choice: str) -> dict:
        values = dict(CLIP_VALUES[choice])
        if choice == "clip":
            values["clip_sample_range"] = self.clip_range_spin.value()
        return values

    def _fit_combo(self, combo: QComboBox, reasons: dict, tips: dict, wanted, fallback) -> list:
        """Enable the choices the sampler takes (a refused one's tooltip says why) and show ``wanted`` if it is
        taken, else ``fallback``, else the first that is; returns the choices taken."""
        name = sampler_text(self.sampler_combo.currentData())
        model = combo.model()
        for index in range(combo.count()):
            value = combo.itemData(index)
            reason = reasons.get(value, "")
            model.item(index).setEnabled(not reason)
            tip = tips.get(value, "")
            why = f"Not available for {name}: {reason}" if reason else ""
            combo.setItemData(index, "\n\n".join(text for text in (tip, why) if text) or None,
                              Qt.ItemDataRole.ToolTipRole)
        taken = [combo.itemData(i) for i in range(combo.count()) if not reasons.get(combo.itemData(i))]
        choice = next((value for value in (wanted, fallback, *taken) if value in taken), None)
        if choice is not None and combo.currentData() != choice:
            with self._quiet(combo):
                combo.setCurrentIndex(combo.findData(choice))
        return taken

    def _fit_to_sampler(self, has_model: bool) -> None:
        """Enable what the chosen sampler's settings class has, and the spacings and clipping it takes."""
        name = self.sampler_combo.currentData()
        have = sampler_fields(name)
        for field, widget in self._field_widgets().items():
            applies = field in have
            widget.setEnabled(has_model and applies)
            tip = self._tips[widget]
            widget.setToolTip(tip if applies else f"{tip}\n\n{self._not_used(field, name)}")
        if self.steps_spin.minimum() != self._min_steps(name):
            with self._quiet(self.steps_spin):
                self.steps_spin.setMinimum(self._min_steps(name))
        values = self._sampler_values(name)
        reasons = {spacing: refusal(name, spacing=spacing, **values) for spacing in SPACINGS}
        taken = self._fit_combo(self.spacing_combo, reasons, SPACING_TIPS, self._wanted_spacing,
                                field_default(name, "spacing"))
        self.spacing_combo.setEnabled(has_model and len(taken) > 1)
        tip = self._tips[self.spacing_combo]
        if len(taken) == 1:
            other = next(reason for reason in reasons.values() if reason)
            tip += f"\n\nOnly {taken[0]} applies to {sampler_text(name)} with these settings: {other}"
        self.spacing_combo.setToolTip(tip)
        values["spacing"] = self.spacing_combo.currentData()
        reasons = {choice: refusal(name, **values, **self._clip_values(choice)) for choice in CLIP_VALUES}
        self._fit_combo(self.clip_combo, reasons, CLIP_TIPS, self._wanted_clip, "model")
        card = self.card
        card_clips = card is not None and card.clip_sample
        rule = ("n/a" if reasons["clip"] else f"±{card.clip_sample_range:g}") if card_clips else "off"
        self.clip_combo.setItemText(0, f"Model card: {rule}")
        self.clip_combo.setItemData(0, (
            f"As the model card says: it clips x0 to ±{card.clip_sample_range:g}, but {sampler_text(name)} has no "
            f"x0 clip ({reasons['clip']})" if card_clips and reasons["clip"] else
            f"As the model card says: {'clip x0 to ±%g' % card.clip_sample_range if card_clips else 'no clipping'}"),
            Qt.ItemDataRole.ToolTipRole)
        self.clip_range_spin.setEnabled(has_model and self.clip_combo.currentData() == "clip")
        if "sigma_kind" in have:   # sigma-hat noise does not depend on eta
            self.eta_spin.setEnabled(has_model and self.ddim_noise_combo.currentData() == "eta")
        self._show_model_calls()

    def _show_model_calls(self) -> None:
        """The model calls a run with these settings makes, beside the steps; nothing if the settings are refused."""
        try:
            settings = self.sampler_settings()
            calls = model_calls(settings, self.card.num_train_timesteps if self.card else self.steps_spin.maximum())
        except SettingsError as exc:
            self.calls_label.setText("")
            self.calls_label.setToolTip(f"{self._tips[self.calls_label]}\n\nNot counted: {exc}")
            return
        self.calls_label.setText(f"= {calls_text(calls)}")
        self.calls_label.setToolTip(self._tips[self.calls_label])
        self.calls_label.setEnabled(self.card is not None)

    def _update_enabled(self) -> None:
        has_model = self.card is not None
        for widget in (self.sampler_combo, self.steps_spin, self.spacing_combo, self.clip_combo, self.network_combo):
            widget.setEnabled(has_model)
        self.sampler_combo.setToolTip(f"{self._tips[self.sampler_combo]}\n\nNow: "
                                      f"{sampler_tip(self.sampler_combo.currentData())}")
        self._fit_to_sampler(has_model)
        conditional = has_model and self.card.conditional
        self.class_combo.setEnabled(conditional)
        has_class = conditional and self.class_combo.currentData() is not None
        why_not = {
            "classifier_free": ("the model is unconditional" if not conditional else
                                "the model has no null class" if self.card.null_class is None else
                                "choose a class first" if not has_class else ""),
            "classifier": ("no model is open" if not has_model else
                           self._classifier_missing or ("" if has_class else "choose a class first")),
        }
        model = self.guidance_combo.model()
        for kind, reason in why_not.items():
            item = model.item(self.guidance_combo.findData(kind))
            item.setEnabled(not reason)
            item.setToolTip(reason and f"Not available now: {reason}")
        can_guide = any(not reason for reason in why_not.values())
        self.guidance_combo.setEnabled(can_guide)
        if why_not.get(self.guidance_combo.currentData()):
            with self._quiet(self.guidance_combo):
                self.guidance_combo.setCurrentIndex(0)
        self.guidance_combo.setToolTip(GUIDANCE_TIP + "".join(
            f"\n\n{text} is not available now: {reason}" for text, reason in
            (("Classifier-free guidance", why_not["classifier_free"]), ("Classifier guidance", why_not["classifier"]))
            if reason))
        self.guidance_scale_spin.setEnabled(can_guide and self.guidance_combo.currentData() != "none")

    # --- widgets <-> settings --------------------------------------------------------------------------------------
    def sampler_settings(self) -> SamplerSettings:
        """The chosen sampler's settings from the widgets its class has a field for (raises SettingsError)."""
        name = self.sampler_combo.currentData()
        values = self._sampler_values(name)
        values.update(steps=self.steps_spin.value(), spacing=self.spacing_combo.currentData(),
                      **self._clip_values(self.clip_combo.currentData()))
        have = sampler_fields(name)
        return build_sampler_settings(name, **{field: value for field, value in values.items() if field in have})

    def guidance(self) -> GuidanceSettings:
        kind = self.guidance_combo.currentData() if self.guidance_combo.isEnabled() else "none"
        return GuidanceSettings(kind=kind, scale=self.guidance_scale_spin.value())

    def class_label(self):
        return self.class_combo.currentData() if self.class_combo.isEnabled() else None

    def network(self) -> str:
        """RunSettings.network: the network's speed mode."""
        return self.network_combo.currentData()

    def set_network(self, mode: str) -> None:
        self._select(self.network_combo, mode)

    def apply(self, sampler: SamplerSettings, guidance: GuidanceSettings, class_label) -> None:
        """Show stored settings of any sampler (clamped to what the model allows): every field the panel has a
        widget for. (The window keeps the rest, e.g. steps_offset, as the recipe's own settings.)"""
        with self._quiet():
            self._select(self.sampler_combo, sampler.name)
            self._sampler = self.sampler_combo.currentData()
            self.steps_spin.setMinimum(self._min_steps(self._sampler))
            self.steps_spin.setValue(sampler.steps)
            self._wanted_spacing = sampler.spacing
            self.spacing_combo.setCurrentIndex(max(0, self.spacing_combo.findData(sampler.spacing)))
            if hasattr(sampler, "eta"):
                self.eta_spin.setValue(sampler.eta)
            if hasattr(sampler, "sigma_kind"):
                self._select(self.ddim_noise_combo, sampler.sigma_kind)
            if hasattr(sampler, "variance_type"):
                self._select(self.variance_combo, sampler.variance_type)
            if hasattr(sampler, "order"):
                self.order_spin.setValue(sampler.order)
            if hasattr(sampler, "karras"):
                self.karras_check.setChecked(sampler.karras)
            clip = clip_choice(sampler)
            self._wanted_clip = clip
            self.clip_combo.setCurrentIndex(self.clip_combo.findData(clip))
            if sampler.clip_sample_range is not None:
                self.clip_range_spin.setValue(sampler.clip_sample_range)
            self._wanted_class, self._wanted_guidance = class_label, guidance.kind
            self._select(self.class_combo, class_label)
            self._update_enabled()   # the guidance kinds the class allows
            self._select(self.guidance_combo, guidance.kind)
            self.guidance_scale_spin.setValue(guidance.scale)
        self._update_enabled()
