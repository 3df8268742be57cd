""""Branch from here": the settings of a branch's remaining steps, starting from the parent's own.

The dialog shows the parent's sampler, steps, eta, guidance kind and scale, class and seed; left as they are, the
branch makes the parent's remaining steps again, bit for bit. Another seed gives the steps after k fresh noise;
another sampler, steps or eta restarts DDIM or DDPM at the parent's timestep t_k (``studio.core.branch``).
"""

from __future__ import annotations

from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFormLayout, QLabel, QSpinBox,
                               QVBoxLayout)

from ..core.choices import GUIDANCE_KINDS
from ..core.samplers import SAMPLERS
from ..core.settings import GuidanceSettings, RunSettings

NO_CLASS = "none (unconditional)"
CYCLE = "cycle"


class BranchDialog(QDialog):
    """Settings for a branch of ``parent_settings`` (RunSettings) at step ``at_step``."""

    def __init__(self, parent_settings: RunSettings, at_step: int, card, title: str, parent=None):
        super().__init__(parent)
        self.setObjectName("branchDialog")
        self.setWindowTitle(f"Branch {title} at step {at_step}")
        self.parent_settings, self.card = parent_settings, card
        sampler = parent_settings.sampler
        self.sampler_combo = _named(QComboBox(), "branchSampler")
        self.sampler_combo.addItems(list(SAMPLERS))
        self.sampler_combo.setCurrentText(sampler.name)
        self.steps_spin = _named(QSpinBox(), "branchSteps")
        self.steps_spin.setRange(1, card.num_train_timesteps)
        self.steps_spin.setValue(sampler.steps)
        self.eta_spin = _named(QDoubleSpinBox(), "branchEta")
        self.eta_spin.setRange(0.0, 1.0)
        self.eta_spin.setSingleStep(0.1)
        self.eta_spin.setDecimals(3)
        self.eta_spin.setValue(float(getattr(sampler, "eta", 0.0)))
        self.guidance_combo = _named(QComboBox(), "branchGuidanceKind")
        self.guidance_combo.addItems(list(GUIDANCE_KINDS))
        self.guidance_combo.setCurrentText(parent_settings.guidance.kind)
        self.scale_spin = _named(QDoubleSpinBox(), "branchGuidanceScale")
        self.scale_spin.setRange(0.0, 100.0)
        self.scale_spin.setDecimals(3)
        self.scale_spin.setValue(float(parent_settings.guidance.scale))
        self.class_combo = _named(QComboBox(), "branchClass")
        self.class_combo.addItems([CYCLE, NO_CLASS] + [str(k) for k in range(len(card.class_names))])
        label = parent_settings.class_label
        self.class_combo.setCurrentText(CYCLE if label == CYCLE else NO_CLASS if label is None else str(label))
        self.class_combo.setEnabled(bool(card.conditional))
        self.seed_spin = _named(QSpinBox(), "branchSeed")
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setValue(int(parent_settings.seed))
        form = QFormLayout()
        for text, widget in (("Sampler", self.sampler_combo), ("Steps", self.steps_spin), ("Eta", self.eta_spin),
                             ("Guidance", self.guidance_combo), ("Guidance scale", self.scale_spin),
                             ("Class", self.class_combo), ("Noise seed", self.seed_spin)):
            form.addRow(text, widget)
        note = QLabel("Unchanged settings make the parent's remaining steps again, bit for bit; another seed gives "
                      "the steps after this one fresh noise.")
        note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.setObjectName("branchButtons")
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Branch")
        buttons.button(QDialogButtonBox.StandardButton.Ok).setObjectName("branchStart")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(buttons)

    def settings(self) -> RunSettings:
        """The branch's RunSettings: the parent's, with what the dialog changed (the sampler's own other settings
        stay the parent's while the sampler is the same). Raises SettingsError for settings that do not go."""
        from ..core.samplers import sampler_settings

        parent = self.parent_settings
        name = self.sampler_combo.currentText()
        values = {}
        if name == parent.sampler.name:
            values = {k: v for k, v in parent.sampler.to_dict().items() if k != "sampler"}
        if self.steps_spin.value() != parent.sampler.steps or name != parent.sampler.name:
            values.pop("timesteps", None)
            values["steps"] = self.steps_spin.value()
        eta = self.eta_spin.value()
        # the parent's own eta unless the box was changed (the box rounds it to 3 decimals)
        if name == "ddim" and not (name == parent.sampler.name and abs(eta - parent.sampler.eta) < 5e-4):
            values["eta"] = eta
        sampler = sampler_settings(name, **values)
        scale = self.scale_spin.value()
        if abs(scale - parent.guidance.scale) < 5e-4:
            scale = parent.guidance.scale
        text = self.class_combo.currentText()
        label = CYCLE if text == CYCLE else None if text == NO_CLASS else int(text)
        return parent.replace(sampler=sampler, guidance=GuidanceSettings(self.guidance_combo.currentText(), scale),
                              class_label=label, seed=self.seed_spin.value())


def _named(widget, name: str):
    widget.setObjectName(name)
    return widget
