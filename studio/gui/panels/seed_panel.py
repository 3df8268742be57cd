"""Seed panel: the seed, a randomise button and the batch size. Sample i of a batch uses seed + i."""

from __future__ import annotations

import random

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFormLayout, QHBoxLayout, QLabel, QPushButton, QSpinBox, QWidget

MAX_SEED_IN_BOX = 2**31 - 1   # QSpinBox holds 32-bit ints; the engine takes larger seeds from the CLI
MAX_BATCH = 256


class SeedPanel(QWidget):
    changed = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
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
        self.batch_spin = QSpinBox()
        self.batch_spin.setObjectName("batchSpin")
        self.batch_spin.setAccessibleName("Batch size")
        self.batch_spin.setToolTip("How many samples to draw at once; each gets its own seed (seed + i)")
        self.batch_spin.setRange(1, MAX_BATCH)
        self.batch_spin.setValue(16)
        self.seeds_label = QLabel()
        self.seeds_label.setObjectName("seedsLabel")
        self.seeds_label.setWordWrap(True)
        self.seeds_label.setToolTip("Each preview tile shows its own seed")
        seed_row = QHBoxLayout()
        seed_row.addWidget(self.seed_spin, 1)
        seed_row.addWidget(self.randomise_button)
        form = QFormLayout(self)
        form.addRow("Seed", seed_row)
        form.addRow("Batch size", self.batch_spin)
        form.addRow(self.seeds_label)
        self.seed_spin.valueChanged.connect(self._on_change)
        self.batch_spin.valueChanged.connect(self._on_change)
        self._on_change()

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

    def apply(self, seed: int, batch_size: int) -> None:
        self.seed_spin.setValue(min(seed, MAX_SEED_IN_BOX))
        self.batch_spin.setValue(max(1, min(batch_size, MAX_BATCH)))
