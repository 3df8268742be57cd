"""Seed panel: the seed, a randomise button, the batch size, and the memory budget for a run's frames.

Sample i of a batch uses seed + i."""

from __future__ import annotations

import random

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFormLayout, QHBoxLayout, QLabel, QPushButton, QSpinBox, QWidget

MAX_SEED_IN_BOX = 2**31 - 1   # QSpinBox holds 32-bit ints; the engine takes larger seeds from the CLI
MAX_BATCH = 256
DEFAULT_FRAME_BUDGET_MIB = 512   # as the trajectory store's own default
MAX_FRAME_BUDGET_MIB = 256 * 1024
FRAME_BUDGET_TIP = (
    "Memory for one run's preview frames: every step's x_t, x0_pred and predicted noise as 8-bit pictures "
    "(vector models: float points). A run whose steps do not all fit keeps keyframes instead — every k-th step "
    "and the latest — and the timeline shows the nearest kept step (the status bar says so). "
    "Applies to the next run.")


class SeedPanel(QWidget):
    changed = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self._build_seed()
        self._build_batch()
        self._lay_out()
        self.seed_spin.valueChanged.connect(self._on_change)
        self.batch_spin.valueChanged.connect(self._on_change)
        self._on_change()

    def _build_seed(self) -> None:
        """The seed, its Randomise button, and the line that lists each sample's seed."""
        self.seed_spin = QSpinBox()
        self.seed_spin.setObjectName("seedSpin")
        self.seed_spin.setAccessibleName("Seed")
        self.seed_spin.setToolTip("The run's seed. Sample i of the batch draws its noise from seed + i, so a "
                                  "sample looks the same alone or in any batch")
        self.seed_spin.setRange(0, MAX_SEED_IN_BOX)
        self.randomise_button = QPushButton("Randomise")
        self.randomise_button.setObjectName("randomiseSeedButton")
        self.randomise_button.setAccessibleName("Randomise the seed")
        self.randomise_button.setToolTip("Pick a new random seed")
        self.randomise_button.clicked.connect(self.randomise)
        self.seeds_label = QLabel()
        self.seeds_label.setObjectName("seedsLabel")
        self.seeds_label.setWordWrap(True)
        self.seeds_label.setToolTip("Each preview tile shows its own seed")

    def _build_batch(self) -> None:
        """The batch size and the memory its frames may take."""
        self.batch_spin = QSpinBox()
        self.batch_spin.setObjectName("batchSpin")
        self.batch_spin.setAccessibleName("Batch size")
        self.batch_spin.setToolTip("How many samples to draw at once; each gets its own seed (seed + i)")
        self.batch_spin.setRange(1, MAX_BATCH)
        self.batch_spin.setValue(16)
        self.budget_spin = QSpinBox()
        self.budget_spin.setObjectName("frameBudgetSpin")
        self.budget_spin.setAccessibleName("Memory budget for a run's frames, in MiB")
        self.budget_spin.setToolTip(FRAME_BUDGET_TIP)
        self.budget_spin.setRange(1, MAX_FRAME_BUDGET_MIB)
        self.budget_spin.setSingleStep(64)
        self.budget_spin.setSuffix(" MiB")
        self.budget_spin.setValue(DEFAULT_FRAME_BUDGET_MIB)

    def _lay_out(self) -> None:
        seed_row = QHBoxLayout()
        seed_row.addWidget(self.seed_spin, 1)
        seed_row.addWidget(self.randomise_button)
        budget_label = QLabel("Frame memory")
        budget_label.setToolTip(FRAME_BUDGET_TIP)
        budget_label.setBuddy(self.budget_spin)
        batch_row = QHBoxLayout()   # the batch and the memory its frames may take share a row: the dock stays short
        batch_row.addWidget(self.batch_spin, 1)
        batch_row.addWidget(budget_label)
        batch_row.addWidget(self.budget_spin, 1)
        form = QFormLayout(self)
        form.addRow("Seed", seed_row)
        form.addRow("Batch size", batch_row)
        form.addRow(self.seeds_label)

    def _on_change(self, *_):
        seed, batch = self.seed_spin.value(), self.batch_spin.value()
        last = f" … {seed + batch - 1}" if batch > 1 else ""
        self.seeds_label.setText(f"seed + i per sample: {seed}{last}")
        self.changed.emit()

    def randomise(self) -> None:
        self.seed_spin.setValue(random.randint(0, MAX_SEED_IN_BOX - MAX_BATCH))

    def seed(self) -> int:
        return self.seed_spin.value()

    def batch_size(self) -> int:
        return self.batch_spin.value()

    def frame_budget_mib(self) -> int:
        return self.budget_spin.value()

    def set_frame_budget_mib(self, mib: int) -> None:
        self.budget_spin.setValue(max(1, min(int(mib), MAX_FRAME_BUDGET_MIB)))

    def apply(self, seed: int, batch_size: int) -> None:
        self.seed_spin.setValue(min(seed, MAX_SEED_IN_BOX))
        self.batch_spin.setValue(max(1, min(batch_size, MAX_BATCH)))
