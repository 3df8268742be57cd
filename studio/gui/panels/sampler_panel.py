"""Sampler panel: sampler, steps, eta, timestep spacing, variance, x0 clipping, guidance, class.

Only the options that apply to the chosen sampler and the loaded model are enabled; each says what it does
in its tooltip. The panel turns its widgets into settings objects and back; it validates nothing itself
(the settings dataclasses do, with the messages the window shows).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QFormLayout, QSpinBox, QWidget

from ...core.models.card import ModelCard
from ...core.samplers import DDIMSettings, DDPMSettings, SamplerSettings
from ...core.settings import CLASS_CYCLE, GuidanceSettings

SPACING_TIPS = {
    "leading": "leading: 0, T/S, 2T/S, … (diffusers' default; never visits t = T-1)",
    "linspace": "linspace: evenly from T-1 down to 0, both ends included",
    "trailing": "trailing: evenly from T-1 down, stopping short of 0 (best for few steps)",
    "quad": "quad: quadratic, dense near t = 0 (the DDIM paper's CIFAR-10 choice)",
}
CLIP_CHOICES = (("As the model card", "model"), ("Clip to ± range", "clip"), ("Dynamic thresholding", "threshold"),
                ("Off", "off"))
VARIANCE_CHOICES = ("fixed_small", "fixed_large", "learned", "learned_range")


class SamplerPanel(QWidget):
    changed = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.card: ModelCard | None = None
        # The class and guidance the user asked for, kept across models that cannot take them (a model
        # opened later, or settings restored before any model, gets them back where they apply).
        self._wanted_class = CLASS_CYCLE
        self._wanted_guidance = "none"
        self.sampler_combo = self._combo("samplerCombo", "Sampler", (
            "DDIM takes big deterministic steps (eta 0) and needs few of them; DDPM adds fresh noise at every "
            "step, as in training, and wants many steps"))
        self.sampler_combo.addItem("DDIM", "ddim")
        self.sampler_combo.addItem("DDPM", "ddpm")
        self.steps_spin = QSpinBox()
        self._name(self.steps_spin, "stepsSpin", "Steps", "How many model calls the run makes, spread over the "
                   "T training timesteps; more steps: slower, usually cleaner")
        self.steps_spin.setRange(1, 1000)
        self.steps_spin.setValue(50)
        self.eta_spin = QDoubleSpinBox()
        self._name(self.eta_spin, "etaSpin", "Eta", "DDIM only: how much fresh noise each step adds. 0 is "
                   "deterministic (same seed, same image); 1 behaves like DDPM")
        self.eta_spin.setRange(0.0, 1.0)
        self.eta_spin.setSingleStep(0.1)
        self.eta_spin.setDecimals(2)
        self.spacing_combo = self._combo("spacingCombo", "Timestep spacing",
                                         "Which of the T training timesteps the run visits:\n" +
                                         "\n".join(SPACING_TIPS.values()))
        for name, tip in SPACING_TIPS.items():
            self.spacing_combo.addItem(name, name)
            self.spacing_combo.setItemData(self.spacing_combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.variance_combo = self._combo("varianceCombo", "Variance", (
            "DDPM only: the size of the noise added each step. fixed_small: the exact posterior variance "
            "(sharper); fixed_large: beta_t (more noise); learned / learned_range: the model's own prediction "
            "(only for models that learned it)"))
        self.clip_combo = self._combo("clipCombo", "x0 clipping", (
            "What to do with the predicted x0 before each step: keep the model card's rule, clip it to ± range, "
            "rescale it per sample by its 99.5% quantile (dynamic thresholding), or leave it alone"))
        for text, value in CLIP_CHOICES:
            self.clip_combo.addItem(text, value)
        self.clip_range_spin = QDoubleSpinBox()
        self._name(self.clip_range_spin, "clipRangeSpin", "Clip range", "x0 is clipped to [-range, +range]")
        self.clip_range_spin.setRange(0.01, 100.0)
        self.clip_range_spin.setValue(1.0)
        self.guidance_combo = self._combo("guidanceCombo", "Guidance", (
            "Classifier-free guidance pushes each sample towards its class: eps = eps_uncond + scale (eps_cond - "
            "eps_uncond). It needs a class-conditional model with a null class and a class chosen below"))
        self.guidance_combo.addItem("None", "none")
        self.guidance_combo.addItem("Classifier-free", "classifier_free")
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

        form = QFormLayout(self)
        for label, widget in (("Sampler", self.sampler_combo), ("Steps", self.steps_spin), ("Eta", self.eta_spin),
                              ("Spacing", self.spacing_combo), ("Variance", self.variance_combo),
                              ("x0 clipping", self.clip_combo), ("Clip range", self.clip_range_spin),
                              ("Class", self.class_combo), ("Guidance", self.guidance_combo),
                              ("Guidance scale", self.guidance_scale_spin)):
            form.addRow(label, widget)
            form.labelForField(widget).setToolTip(widget.toolTip())
        for signal in (self.sampler_combo.currentIndexChanged, self.steps_spin.valueChanged,
                       self.eta_spin.valueChanged, self.spacing_combo.currentIndexChanged,
                       self.variance_combo.currentIndexChanged, self.clip_combo.currentIndexChanged,
                       self.clip_range_spin.valueChanged, self.guidance_combo.currentIndexChanged,
                       self.guidance_scale_spin.valueChanged, self.class_combo.currentIndexChanged):
            signal.connect(self._on_change)
        self.set_card(None)

    @staticmethod
    def _name(widget, name: str, accessible: str, tooltip: str) -> None:
        widget.setObjectName(name)
        widget.setAccessibleName(accessible)
        widget.setToolTip(tooltip)

    def _combo(self, name: str, accessible: str, tooltip: str) -> QComboBox:
        combo = QComboBox()
        self._name(combo, name, accessible, tooltip)
        return combo

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
        widgets = [self.sampler_combo, self.steps_spin, self.eta_spin, self.spacing_combo, self.variance_combo,
                   self.clip_combo, self.clip_range_spin, self.guidance_combo, self.guidance_scale_spin,
                   self.class_combo]
        for widget in widgets:
            widget.blockSignals(True)
        try:
            previous_variance = self.variance_combo.currentData()
            self.variance_combo.clear()
            model_variance = card.variance_type if card else "fixed_small"
            self.variance_combo.addItem(f"As the model card ({model_variance})", None)
            for name in VARIANCE_CHOICES:
                self.variance_combo.addItem(name, name)
                learned_elsewhere = name.startswith("learned") and name != model_variance
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

    def _update_enabled(self) -> None:
        has_model = self.card is not None
        ddim = self.sampler_combo.currentData() == "ddim"
        for widget in (self.sampler_combo, self.steps_spin, self.spacing_combo, self.clip_combo):
            widget.setEnabled(has_model)
        self.eta_spin.setEnabled(has_model and ddim)
        self.variance_combo.setEnabled(has_model and not ddim)
        self.clip_range_spin.setEnabled(has_model and self.clip_combo.currentData() == "clip")
        conditional = has_model and self.card.conditional
        self.class_combo.setEnabled(conditional)
        can_guide = conditional and self.card.null_class is not None and self.class_combo.currentData() is not None
        self.guidance_combo.setEnabled(can_guide)
        if not can_guide and self.guidance_combo.currentData() != "none":
            self.guidance_combo.blockSignals(True)
            self.guidance_combo.setCurrentIndex(0)
            self.guidance_combo.blockSignals(False)
        self.guidance_combo.setToolTip(self.guidance_combo.toolTip().split("\n\n")[0] + (
            "" if can_guide else "\n\nNot available now: " + (
                "the model is unconditional" if not conditional else
                "the model has no null class" if self.card.null_class is None else "choose a class first")))
        self.guidance_scale_spin.setEnabled(can_guide and self.guidance_combo.currentData() == "classifier_free")

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
            return DDIMSettings(eta=self.eta_spin.value(), **common)
        return DDPMSettings(variance_type=self.variance_combo.currentData(), **common)

    def guidance(self) -> GuidanceSettings:
        kind = self.guidance_combo.currentData() if self.guidance_combo.isEnabled() else "none"
        return GuidanceSettings(kind=kind, scale=self.guidance_scale_spin.value())

    def class_label(self):
        return self.class_combo.currentData() if self.class_combo.isEnabled() else None

    def apply(self, sampler: SamplerSettings, guidance: GuidanceSettings, class_label) -> None:
        """Show stored settings (clamped to what the model allows)."""
        widgets = [self.sampler_combo, self.steps_spin, self.eta_spin, self.spacing_combo, self.variance_combo,
                   self.clip_combo, self.clip_range_spin, self.guidance_combo, self.guidance_scale_spin,
                   self.class_combo]
        for widget in widgets:
            widget.blockSignals(True)
        try:
            self._select(self.sampler_combo, sampler.name)
            self.steps_spin.setValue(sampler.steps)
            self._select(self.spacing_combo, sampler.spacing)
            if isinstance(sampler, DDIMSettings):
                self.eta_spin.setValue(sampler.eta)
            else:
                self._select(self.variance_combo, sampler.variance_type)
            clip = ("threshold" if sampler.thresholding else "model" if sampler.clip_sample is None
                    else "clip" if sampler.clip_sample else "off")
            self._select(self.clip_combo, clip)
            if sampler.clip_sample_range is not None:
                self.clip_range_spin.setValue(sampler.clip_sample_range)
            self._wanted_class, self._wanted_guidance = class_label, guidance.kind
            self._select(self.class_combo, class_label)
            self._select(self.guidance_combo, guidance.kind)
            self.guidance_scale_spin.setValue(guidance.scale)
        finally:
            for widget in widgets:
                widget.blockSignals(False)
        self._update_enabled()
