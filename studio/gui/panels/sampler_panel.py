"""Sampler panel: sampler, steps, eta, timestep spacing, variance, x0 clipping, guidance, class, and the network's
speed mode.

Only the options that apply to the chosen sampler and the loaded model are enabled; each says what it does
in its tooltip. The panel turns its widgets into settings objects and back; it validates nothing itself
(the settings dataclasses do, with the messages the window shows).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QSpinBox, QWidget

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
DDIM_NOISE_CHOICES = (("× eq. 16 noise", "eta"), ("sigma-hat noise", "sigma_hat"))
NETWORK_CHOICES = (
    ("plain", "the network as it is: the reference, bit for bit what `studio sample` computes"),
    ("channels_last", "channels-last memory layout: often faster convolutions; outputs differ in their last bits "
                      "(used only if within 1e-4 of plain)"),
    ("compiled", "torch.compile: faster per step, but the first run takes tens of seconds to compile (once per "
                 "model and batch while the studio is open); outputs differ in their last bits (used only if "
                 "within 1e-4 of plain)"),
    ("compiled_channels_last", "torch.compile on the channels-last layout: both of the above, the same first-run "
                               "warm-up"),
    ("cuda_graph", "a CUDA GPU only: the network's forward recorded once as a CUDA graph and replayed with one "
                   "launch per step (a small network on a GPU waits on kernel launches); elsewhere the run goes "
                   "on plain (used only if within 1e-4 of plain)"),
)
NETWORK_TIP = ("How the network runs. A faster mode is checked against the plain network before the run and "
               "falls back to plain (the status bar says why) if it fails or moves an output by more than 1e-4:\n" +
               "\n".join(f"{name}: {tip}" for name, tip in NETWORK_CHOICES))
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
        self.ddim_noise_combo = self._combo("ddimNoiseCombo", "DDIM noise", (
            "DDIM only: which noise eta scales. eta: the paper's eq. 16, from none (eta 0, deterministic) to "
            "DDPM's own (eta 1). sigma-hat: the larger noise of the paper's appendix D.3 at every step but the "
            "last, whatever eta is"))
        for text, value in DDIM_NOISE_CHOICES:
            self.ddim_noise_combo.addItem(text, value)
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
        self.guidance_combo = self._combo("guidanceCombo", "Guidance", GUIDANCE_TIP)
        self.guidance_combo.addItem("None", "none")
        self.guidance_combo.addItem("Classifier-free", "classifier_free")
        self.guidance_combo.addItem("Classifier", "classifier")
        self._classifier_missing = "no model is open"   # why classifier guidance is not offered ("" if it is)
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
        self.network_combo = self._combo("networkCombo", "Network speed mode", NETWORK_TIP)
        for name, tip in NETWORK_CHOICES:
            self.network_combo.addItem(name, name)
            self.network_combo.setItemData(self.network_combo.count() - 1, f"{name}: {tip}",
                                           Qt.ItemDataRole.ToolTipRole)

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
        for signal in (self.sampler_combo.currentIndexChanged, self.steps_spin.valueChanged,
                       self.eta_spin.valueChanged, self.ddim_noise_combo.currentIndexChanged,
                       self.spacing_combo.currentIndexChanged,
                       self.variance_combo.currentIndexChanged, self.clip_combo.currentIndexChanged,
                       self.clip_range_spin.valueChanged, self.guidance_combo.currentIndexChanged,
                       self.guidance_scale_spin.valueChanged, self.class_combo.currentIndexChanged,
                       self.network_combo.currentIndexChanged):
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
            return DDIMSettings(eta=self.eta_spin.value(), variance=self.ddim_noise_combo.currentData(), **common)
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
                self._select(self.ddim_noise_combo, sampler.variance)
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
