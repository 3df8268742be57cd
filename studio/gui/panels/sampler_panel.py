"""Sampler panel: sampler, steps, eta, timestep spacing, variance, x0 clipping, guidance, class, and the network's
speed mode.

Only the options that apply to the chosen sampler and the loaded model are enabled; each says what it does
in its tooltip. The panel turns its widgets into settings objects and back; it validates nothing itself
(the settings dataclasses do, with the messages the window shows).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QSpinBox, QWidget

from ...core.choices import (
    DDIM_SIGMAS, DEFAULT_DDIM_STEPS, GUIDANCE_KINDS, LEARNED_VARIANCE_TYPES, NETWORK_MODES, SAMPLER_NAMES, SPACINGS,
    VARIANCE_TYPES, tolerance_text,
)
from ...core.models.card import ModelCard
from ...core.samplers import DDIMSettings, DDPMSettings, SamplerSettings
from ...core.settings import CLASS_CYCLE, GuidanceSettings

# The choices themselves come from studio.core.choices; these say them in words (a choice without words here
# is still offered, under its own name).
SAMPLER_TEXTS = {"ddim": "DDIM", "ddpm": "DDPM"}
SPACING_TIPS = {
    "leading": "leading: 0, T/S, 2T/S, … (diffusers' default; never visits t = T-1)",
    "linspace": "linspace: evenly from T-1 down to 0, both ends included",
    "trailing": "trailing: evenly from T-1 down, stopping short of 0 (best for few steps)",
    "quad": "quad: quadratic, dense near t = 0 (the DDIM paper's CIFAR-10 choice)",
}
CLIP_CHOICES = (("As the model card", "model"), ("Clip to ± range", "clip"), ("Dynamic thresholding", "threshold"),
                ("Off", "off"))
DDIM_SIGMA_TEXTS = {"eta": "× eq. 16 noise", "sigma_hat": "sigma-hat noise"}
GUIDANCE_TEXTS = {"none": "None", "classifier_free": "Classifier-free", "classifier": "Classifier"}
_CHECKED = f"(used only if within {tolerance_text()} of plain)"
NETWORK_TIPS = {
    "plain": "the network as it is: the reference, bit for bit what `studio sample` computes",
    "channels_last": f"channels-last memory layout: often faster convolutions; outputs differ in their last bits "
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


class SamplerPanel(QWidget):
    changed = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.card: ModelCard | None = None
        # The class and guidance the user asked for, kept across models that cannot take them (a model
        # opened later, or settings restored before any model, gets them back where they apply).
        self._wanted_class = CLASS_CYCLE
        self._wanted_guidance = "none"
        self._classifier_missing = "no model is open"   # why classifier guidance is not offered ("" if it is)
        self._build_sampler_widgets()
        self._build_clipping_widgets()
        self._build_guidance_widgets()
        self.network_combo = self._combo("networkCombo", "Network speed mode", NETWORK_TIP)
        for mode in NETWORK_MODES:
            self._add_choice(self.network_combo, mode, mode, f"{mode}: {NETWORK_TIPS.get(mode, mode)}")
        self._lay_out()
        self._connect_signals()
        self.set_card(None)

    def _build_sampler_widgets(self) -> None:
        """Sampler, steps, eta and the noise it scales, timestep spacing, DDPM variance."""
        self.sampler_combo = self._combo("samplerCombo", "Sampler", (
            "DDIM takes big deterministic steps (eta 0) and needs few of them; DDPM adds fresh noise at every "
            "step, as in training, and wants many steps"))
        for name in SAMPLER_NAMES:
            self.sampler_combo.addItem(SAMPLER_TEXTS.get(name, name), name)
        self.steps_spin = QSpinBox()
        self._name(self.steps_spin, "stepsSpin", "Steps", "How many model calls the run makes, spread over the "
                   "T training timesteps; more steps: slower, usually cleaner")
        self.steps_spin.setRange(1, 1000)
        self.steps_spin.setValue(DEFAULT_DDIM_STEPS)
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
        self.spacing_combo = self._combo("spacingCombo", "Timestep spacing",
                                         "Which of the T training timesteps the run visits:\n" +
                                         "\n".join(SPACING_TIPS.get(name, name) for name in SPACINGS))
        for name in SPACINGS:
            self._add_choice(self.spacing_combo, name, name, SPACING_TIPS.get(name, name))
        self.variance_combo = self._combo("varianceCombo", "Variance", (
            "DDPM only: the size of the noise added each step. fixed_small: the exact posterior variance "
            "(sharper); fixed_large: beta_t (more noise); learned / learned_range: the model's own prediction "
            "(only for models that learned it)"))

    def _build_clipping_widgets(self) -> None:
        self.clip_combo = self._combo("clipCombo", "x0 clipping", (
            "What to do with the predicted x0 before each step: keep the model card's rule, clip it to ± range, "
            "rescale it per sample by its 99.5% quantile (dynamic thresholding), or leave it alone"))
        for text, value in CLIP_CHOICES:
            self.clip_combo.addItem(text, value)
        self.clip_range_spin = QDoubleSpinBox()
        self._name(self.clip_range_spin, "clipRangeSpin", "Clip range", "x0 is clipped to [-range, +range]")
        self.clip_range_spin.setRange(0.01, 100.0)
        self.clip_range_spin.setValue(1.0)

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
        self.guidance_scale_spin.setValue(3.0)
        self.class_combo = self._combo("classCombo", "Class", (
            "Which class to draw, for a class-conditional model: one class for every sample, 'cycle' (sample i "
            "gets class i mod K), or no class (the model's unconditional mode)"))

    def _lay_out(self) -> None:
        form = QFormLayout(self)
        eta_row = QHBoxLayout()   # eta and the noise it scales share a row: the dock stays short
        eta_row.addWidget(self.eta_spin, 1)
        eta_row.addWidget(self.ddim_noise_combo, 1)
        for label, widget in (("Sampler", self.sampler_combo), ("Steps", self.steps_spin), ("Eta", eta_row),
                              ("Spacing", self.spacing_combo), ("Variance", self.variance_combo),
                              ("x0 clipping", self.clip_combo), ("Clip range", self.clip_range_spin),
                              ("Class", self.class_combo), ("Guidance", self.guidance_combo),
                              ("Guidance scale", self.guidance_scale_spin), ("Network", self.network_combo)):
            form.addRow(label, widget)
            form.labelForField(widget).setToolTip((self.eta_spin if widget is eta_row else widget).toolTip())

    def _connect_signals(self) -> None:
        for widget in self._widgets():
            signal = widget.currentIndexChanged if isinstance(widget, QComboBox) else widget.valueChanged
            signal.connect(self._on_change)

    @staticmethod
    def _add_choice(combo: QComboBox, text: str, value, tip: str) -> None:
        combo.addItem(text, value)
        combo.setItemData(combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)

    @staticmethod
    def _name(widget, name: str, accessible: str, tooltip: str) -> None:
        widget.setObjectName(name)
        widget.setAccessibleName(accessible)
        widget.setToolTip(tooltip)

    def _combo(self, name: str, accessible: str, tooltip: str) -> QComboBox:
        combo = QComboBox()
        self._name(combo, name, accessible, tooltip)
        return combo

    def _widgets(self) -> list:
        return [self.sampler_combo, self.steps_spin, self.eta_spin, self.ddim_noise_combo, self.spacing_combo,
                self.variance_combo, self.clip_combo, self.clip_range_spin, self.guidance_combo,
                self.guidance_scale_spin, self.class_combo, self.network_combo]

    def _on_change(self, *_):
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
        widgets = self._widgets()
        for widget in widgets:
            widget.blockSignals(True)
        try:
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
            clip_text = (f"As the model card (clip to ±{card.clip_sample_range:g})" if card and card.clip_sample
                         else "As the model card (off)")
            self.clip_combo.setItemText(0, clip_text)
        finally:
            for widget in widgets:
                widget.blockSignals(False)
        self._update_enabled()

    @staticmethod
    def _select(combo: QComboBox, data) -> None:
        index = combo.findData(data)
        if index >= 0 and combo.model().item(index).isEnabled():
            combo.setCurrentIndex(index)

    def set_classifier_available(self, why_not: str) -> None:
        """Offer classifier guidance ("" : a classifier fits the model) or say why it is not offered."""
        self._classifier_missing = why_not
        self._update_enabled()

    def _update_enabled(self) -> None:
        has_model = self.card is not None
        ddim = self.sampler_combo.currentData() == "ddim"
        for widget in (self.sampler_combo, self.steps_spin, self.spacing_combo, self.clip_combo, self.network_combo):
            widget.setEnabled(has_model)
        self.ddim_noise_combo.setEnabled(has_model and ddim)
        self.eta_spin.setEnabled(has_model and ddim and self.ddim_noise_combo.currentData() == "eta")
        self.variance_combo.setEnabled(has_model and not ddim)
        self.clip_range_spin.setEnabled(has_model and self.clip_combo.currentData() == "clip")
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
            was_blocked = self.guidance_combo.blockSignals(True)
            self.guidance_combo.setCurrentIndex(0)
            self.guidance_combo.blockSignals(was_blocked)
        self.guidance_combo.setToolTip(GUIDANCE_TIP + "".join(
            f"\n\n{text} is not available now: {reason}" for text, reason in
            (("Classifier-free guidance", why_not["classifier_free"]), ("Classifier guidance", why_not["classifier"]))
            if reason))
        self.guidance_scale_spin.setEnabled(can_guide and self.guidance_combo.currentData() != "none")

    # --- widgets <-> settings --------------------------------------------------------------------------------------
    def sampler_settings(self) -> SamplerSettings:
        clip = self.clip_combo.currentData()
        common = dict(
            steps=self.steps_spin.value(),
            spacing=self.spacing_combo.currentData(),
            clip_sample={"model": None, "clip": True, "threshold": None, "off": False}[clip],
            clip_sample_range=self.clip_range_spin.value() if clip == "clip" else None,
            thresholding=clip == "threshold",
        )
        if self.sampler_combo.currentData() == "ddim":
            return DDIMSettings(eta=self.eta_spin.value(), sigma_kind=self.ddim_noise_combo.currentData(), **common)
        return DDPMSettings(variance_type=self.variance_combo.currentData(), **common)

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
        """Show stored settings (clamped to what the model allows)."""
        widgets = self._widgets()
        for widget in widgets:
            widget.blockSignals(True)
        try:
            self._select(self.sampler_combo, sampler.name)
            self.steps_spin.setValue(sampler.steps)
            self._select(self.spacing_combo, sampler.spacing)
            if isinstance(sampler, DDIMSettings):
                self.eta_spin.setValue(sampler.eta)
                self._select(self.ddim_noise_combo, sampler.sigma_kind)
            else:
                self._select(self.variance_combo, sampler.variance_type)
            clip = ("threshold" if sampler.thresholding else "model" if sampler.clip_sample is None
                    else "clip" if sampler.clip_sample else "off")
            self._select(self.clip_combo, clip)
            if sampler.clip_sample_range is not None:
                self.clip_range_spin.setValue(sampler.clip_sample_range)
            self._wanted_class, self._wanted_guidance = class_label, guidance.kind
            self._select(self.class_combo, class_label)
            self._update_enabled()   # the guidance kinds the class allows
            self._select(self.guidance_combo, guidance.kind)
            self.guidance_scale_spin.setValue(guidance.scale)
        finally:
            for widget in widgets:
                widget.blockSignals(False)
        self._update_enabled()
