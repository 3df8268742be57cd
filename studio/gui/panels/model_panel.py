"""Model panel: bundled models and recent checkpoints in one list, Open buttons, the model card, run device."""

from __future__ import annotations

import os

import torch
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox, QFormLayout, QFrame, QGroupBox, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QProgressBar,
    QPushButton, QVBoxLayout, QWidget,
)

from ...core.bundled import bundled_models
from ...core.choices import DEVICES, DTYPES
from ...core.models.card import ModelCard
from ..classifiers import bundled_classifier_sources

SOURCE_ROLE = Qt.ItemDataRole.UserRole
CARD_ROWS = (
    ("name", "Name"), ("format", "Format"), ("data", "Data"), ("schedule", "Schedule"), ("prediction", "Predicts"),
    ("classes", "Classes"), ("parameters", "Parameters"), ("sha256", "sha256"), ("runs_on", "Runs on"),
)


EXACT_DTYPE = "float32"   # the one number type every device runs; the others halve memory on a GPU only


def _device_available(device: str) -> bool:
    if device == "cuda":
        return torch.cuda.is_available()
    if device == "mps":
        return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    return True   # auto and cpu: always


def available_devices() -> list[str]:
    """The devices of studio.core.choices this machine has (auto and cpu always)."""
    return [device for device in DEVICES if _device_available(device)]


def describe_card(card: ModelCard) -> dict[str, str]:
    """The card's fields in plain words, one line each."""
    shape = " x ".join(str(d) for d in card.data_shape)
    data = f"{card.data_kind} {shape}, values in [{card.value_range[0]:g}, {card.value_range[1]:g}]"
    if card.trained_betas is not None:
        schedule = f"trained betas, T = {card.num_train_timesteps}"
    elif card.beta_schedule == "squaredcos_cap_v2":
        schedule = f"cosine, T = {card.num_train_timesteps}"
    else:
        schedule = (f"{card.beta_schedule} beta {card.beta_start:g} → {card.beta_end:g}, "
                    f"T = {card.num_train_timesteps}")
    prediction = f"{card.prediction_type}, variance {card.variance_type}"
    if card.clip_sample:
        prediction += f", x0 clipped to ±{card.clip_sample_range:g}"
    if card.conditional:
        names = ", ".join(card.class_names[:10]) + (" …" if len(card.class_names) > 10 else "")
        classes = f"{len(card.class_names)}: {names}"
        if card.null_class is not None:
            classes += f" (+ null class {card.null_class})"
    else:
        classes = "unconditional"
    parameters = f"{card.parameter_count:,}" if card.parameter_count else "unknown"
    if card.dtype:
        parameters += f" ({card.dtype})"
    info = {
        "name": card.name, "format": card.format, "data": data, "schedule": schedule, "prediction": prediction,
        "classes": classes, "parameters": parameters, "sha256": card.sha256[:12] if card.sha256 else "—",
    }
    if card.assumed:
        info["format"] += f" (assumed: {', '.join(card.assumed)})"
    return info


class ModelPanel(QWidget):
    source_chosen = Signal(str)       # a bundled model's name or a checkpoint path
    open_file_requested = Signal()
    open_folder_requested = Signal()
    run_device_changed = Signal()
    cancel_load_requested = Signal()   # the loading strip's Cancel

    def __init__(self, parent=None):
        super().__init__(parent)
        self._build_model_list()
        self._build_loading_strip()
        self._build_card_box()
        self._build_run_on()
        self._lay_out()
        self._device_changed()

    def _build_model_list(self) -> None:
        """The bundled models and recent checkpoints, and the buttons that open others."""
        self.model_list = QListWidget()
        self.model_list.setObjectName("modelList")
        self.model_list.setAccessibleName("Bundled models and recent checkpoints")
        self.model_list.setToolTip("Click (or Enter) to open; the open model is highlighted in bold. Bundled demo "
                                   "models first, then your recent checkpoints. You can also drop a file or folder "
                                   "onto the window.")
        # one click opens (the window ignores the model already open): what is highlighted is what is loaded
        self.model_list.itemClicked.connect(self._activated)
        self.model_list.itemActivated.connect(self._activated)
        self.open_button = QPushButton("Open file…")
        self.open_button.setObjectName("openFileButton")
        self.open_button.setToolTip("Open a checkpoint file: .safetensors, .pt/.pth/.ckpt (weights only) or "
                                    "TorchScript (Ctrl+O)")
        self.open_button.clicked.connect(self.open_file_requested)
        self.folder_button = QPushButton("Open folder…")
        self.folder_button.setObjectName("openFolderButton")
        self.folder_button.setToolTip("Open a diffusers model folder (with unet/ and scheduler/ inside, or a "
                                      "single UNet folder with config.json)")
        self.folder_button.clicked.connect(self.open_folder_requested)

    def _build_loading_strip(self) -> None:
        """What a checkpoint opening in the background is doing (studio.gui.model_loading), with its Cancel;
        hidden when nothing loads."""
        self.loading_box = QFrame()
        self.loading_box.setObjectName("modelLoading")
        self.loading_box.setFrameShape(QFrame.Shape.StyledPanel)
        self.loading_label = QLabel()
        self.loading_label.setObjectName("modelLoadingLabel")
        self.loading_label.setWordWrap(True)
        self.loading_bar = QProgressBar()
        self.loading_bar.setObjectName("modelLoadingBar")
        self.loading_bar.setAccessibleName("Checkpoint loading progress")
        self.loading_bar.setTextVisible(True)
        self.cancel_load_button = QPushButton("Cancel")
        self.cancel_load_button.setObjectName("cancelLoadButton")
        self.cancel_load_button.setAccessibleName("Cancel opening the checkpoint")
        self.cancel_load_button.setToolTip("Stop opening this checkpoint; the open model stays (Esc when no run "
                                           "is going)")
        self.cancel_load_button.clicked.connect(self.cancel_load_requested)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.loading_bar, 1)
        row.addWidget(self.cancel_load_button)
        box = QVBoxLayout(self.loading_box)
        box.setContentsMargins(6, 4, 6, 4)
        box.addWidget(self.loading_label)
        box.addLayout(row)
        self.loading_box.hide()

    def show_loading(self, text: str, done: int = 0, total: int = 0) -> None:
        """``text`` and the bytes read of ``total`` (0: unknown, a busy bar)."""
        self.loading_label.setText(text)
        self.loading_box.setToolTip(text)
        if total > 0:
            self.loading_bar.setRange(0, 1000)
            self.loading_bar.setValue(min(1000, round(1000 * done / total)))
            self.loading_bar.setFormat(f"{done / 2**20:.0f} / {total / 2**20:.0f} MiB")
        else:
            self.loading_bar.setRange(0, 0)   # busy: the readers cannot say how far they are
            self.loading_bar.setFormat("")
        self.loading_box.show()

    def hide_loading(self) -> None:
        self.loading_box.hide()

    def _build_card_box(self) -> None:
        self.card_box = QGroupBox("Model card")
        form = QFormLayout(self.card_box)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.card_labels: dict[str, QLabel] = {}
        for key, title in CARD_ROWS:
            label = QLabel("—")
            label.setObjectName(f"card_{key}")
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.card_labels[key] = label
            form.addRow(title, label)

    def _build_run_on(self) -> None:
        """Where and in what precision the model runs."""
        self.device_combo = QComboBox()
        self.device_combo.setObjectName("deviceCombo")
        self.device_combo.setAccessibleName("Device the model runs on")
        self.device_combo.setToolTip("Where the model runs: auto picks a GPU (cuda, then mps) if there is one, "
                                     "else the CPU")
        self.device_combo.addItems(available_devices())
        self.dtype_combo = QComboBox()
        self.dtype_combo.setObjectName("dtypeCombo")
        self.dtype_combo.setAccessibleName("Number type the model runs in")
        self.dtype_combo.setToolTip("float32 is exact everywhere; float16/bfloat16 halve memory and run faster "
                                    "on a GPU only")
        self.dtype_combo.addItems(list(DTYPES))
        self.device_combo.currentIndexChanged.connect(self._device_changed)
        self.dtype_combo.currentIndexChanged.connect(lambda _: self.run_device_changed.emit())

    def _lay_out(self) -> None:
        buttons = QHBoxLayout()
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.folder_button)
        run_on = QHBoxLayout()
        run_on.addWidget(QLabel("Run on"))
        run_on.addWidget(self.device_combo, 1)
        run_on.addWidget(self.dtype_combo, 1)
        box = QVBoxLayout(self)
        box.addWidget(self.model_list, 1)
        box.addLayout(buttons)
        box.addWidget(self.loading_box)
        box.addWidget(self.card_box)
        box.addLayout(run_on)

    # --- list ------------------------------------------------------------------------------------------------------
    def set_sources(self, recent: list[str], current: str | None) -> None:
        self.model_list.clear()
        for model in bundled_models():
            if model.name in bundled_classifier_sources():
                continue   # a classifier guides a model (Sampler ▸ Guidance); it cannot be opened as one
            item = QListWidgetItem(f"{model.name} — bundled")
            item.setData(SOURCE_ROLE, model.name)
            item.setToolTip(f"{model.description}\n{model.path}")
            self.model_list.addItem(item)
        for path in recent:
            item = QListWidgetItem(os.path.basename(os.path.normpath(path)) or path)
            item.setData(SOURCE_ROLE, path)
            item.setToolTip(path + ("" if os.path.exists(path) else "\n(not found: it was moved or deleted)"))
            self.model_list.addItem(item)
        self.mark_current(current)

    def mark_current(self, current: str | None) -> None:
        for row in range(self.model_list.count()):
            item = self.model_list.item(row)
            font = item.font()
            font.setBold(item.data(SOURCE_ROLE) == current)
            item.setFont(font)
            if item.data(SOURCE_ROLE) == current:
                self.model_list.setCurrentItem(item)

    def sources(self) -> list[str]:
        return [self.model_list.item(r).data(SOURCE_ROLE) for r in range(self.model_list.count())]

    def _activated(self, item: QListWidgetItem) -> None:
        self.source_chosen.emit(item.data(SOURCE_ROLE))

    # --- card ------------------------------------------------------------------------------------------------------
    def show_card(self, card: ModelCard | None) -> None:
        if card is None:
            for label in self.card_labels.values():
                label.setText("—")
                label.setToolTip("")
            self.card_labels["name"].setText("no model loaded")
            return
        titles = dict(CARD_ROWS)
        for key, text in describe_card(card).items():
            self.card_labels[key].setText(text)
            self.card_labels[key].setToolTip(f"{titles[key]}: {text}")   # the whole line, whatever width shows it
        self.card_labels["sha256"].setToolTip(card.sha256 or "")
        self.card_labels["name"].setToolTip(card.path or card.description)
        self.show_runs_on(None)

    def show_runs_on(self, resolved: str | None) -> None:
        text = resolved or f"{self.device_combo.currentText()}, {self.dtype_combo.currentText()}"
        self.card_labels["runs_on"].setText(text)
        self.card_labels["runs_on"].setToolTip(f"Runs on: {text}")

    # --- device ----------------------------------------------------------------------------------------------------
    def _device_changed(self, *_):
        on_cpu = self.device_combo.currentText() == "cpu" or (
            self.device_combo.currentText() == "auto" and available_devices() == ["auto", "cpu"])
        model = self.dtype_combo.model()
        for row in range(self.dtype_combo.count()):   # half precision runs only on a GPU
            model.item(row).setEnabled(not on_cpu or self.dtype_combo.itemText(row) == EXACT_DTYPE)
        if on_cpu and self.dtype_combo.currentText() != EXACT_DTYPE:
            self.dtype_combo.setCurrentIndex(self.dtype_combo.findText(EXACT_DTYPE))
        self.run_device_changed.emit()

    def device(self) -> str:
        return self.device_combo.currentText()

    def dtype(self) -> str:
        return self.dtype_combo.currentText()

    def set_device(self, device: str, dtype: str) -> None:
        index = self.device_combo.findText(device)
        self.device_combo.setCurrentIndex(max(0, index))
        index = self.dtype_combo.findText(dtype)
        if index >= 0 and self.dtype_combo.model().item(index).isEnabled():
            self.dtype_combo.setCurrentIndex(index)
