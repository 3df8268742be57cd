"""The trajectory animation dialog: what to animate (x_t, x0_pred or both; one sample or the grid), which
frames, how fast, and the file format. A plain Qt dialog; the window asks for the file name after it.
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QButtonGroup, QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFormLayout, QHBoxLayout, QLabel,
    QRadioButton, QSpinBox, QVBoxLayout, QWidget,
)

from ..core.choices import ANIMATION_SOURCES
from ..core.export import AnimationOptions, mp4_available
from . import persistence

SOURCE_TEXTS = {"xt": "x_t, the noisy sample", "x0": "x0_pred, the model's guess", "both": "both side by side"}
FORMATS = ((".gif", "GIF", "GIF animation (*.gif)"),
           (".webp", "WebP (animated, lossless)", "Animated WebP (*.webp)"),
           (".mp4", "MP4 video (H.264)", "MP4 video (*.mp4)"))
SETTINGS_KEY = "export/animation"


def available_formats() -> list[tuple[str, str, str]]:
    """(suffix, name, file filter) of the formats this installation writes; MP4 needs imageio-ffmpeg."""
    return [f for f in FORMATS if f[0] != ".mp4" or mp4_available()]


class TrajectoryDialog(QDialog):
    def __init__(self, parent: QWidget | None, *, sample: int | None, sample_text: str, note: str = ""):
        """``sample``: the sample "this sample" means (None: the run has no samples to pick, e.g. a vector
        model; only the whole batch is offered). ``note``: what the animation cannot show, in words."""
        super().__init__(parent)
        self.setObjectName("trajectoryDialog")
        self.setWindowTitle("Export trajectory animation")
        self.sample = sample
        self._build_what(sample, sample_text)
        self._build_frames()
        self._build_file(note)
        self._lay_out()
        self._restore()
        self._update_enabled()

    def _build_what(self, sample: int | None, sample_text: str) -> None:
        """What to animate, and of which sample (or the whole batch)."""
        self.source_combo = QComboBox()
        self.source_combo.setObjectName("animationSourceCombo")
        self.source_combo.setAccessibleName("What to animate")
        self.source_combo.setToolTip("x_t goes from pure noise (x_T) to the sample; x0_pred shows where the model "
                                     "thinks it is heading at each step; both puts them side by side")
        for source in ANIMATION_SOURCES:
            self.source_combo.addItem(SOURCE_TEXTS.get(source, source), source)
        self.sample_radio = QRadioButton(sample_text)
        self.sample_radio.setObjectName("animationSampleRadio")
        self.grid_radio = QRadioButton("the whole batch, as a grid")
        self.grid_radio.setObjectName("animationGridRadio")
        which = QButtonGroup(self)
        for radio in (self.sample_radio, self.grid_radio):
            which.addButton(radio)
        self.sample_radio.setEnabled(sample is not None)
        (self.sample_radio if sample is not None else self.grid_radio).setChecked(True)

    def _build_frames(self) -> None:
        """Which steps become frames (every N-th, or at most N), and how long each shows."""
        self.stride_radio = QRadioButton("one frame every")
        self.stride_radio.setObjectName("frameStrideRadio")
        self.stride_spin = self._spin("frameStrideSpin", "One frame every N steps (the first and last always)", 1,
                                      1000, 1)
        self.max_radio = QRadioButton("at most")
        self.max_radio.setObjectName("maxFramesRadio")
        self.max_spin = self._spin("maxFramesSpin", "At most this many frames, evenly spread over the run", 1,
                                   10000, 60)
        thinning = QButtonGroup(self)
        for radio in (self.stride_radio, self.max_radio):
            thinning.addButton(radio)
            radio.toggled.connect(self._update_enabled)
        self.stride_radio.setChecked(True)
        self.frame_ms_spin = self._spin("frameDurationSpin", "How long each frame shows", 10, 10000, 80, " ms")
        self.hold_ms_spin = self._spin("holdSpin", "How long the last frame stays before the animation repeats", 0,
                                       60000, 1000, " ms")
        self.label_check = QCheckBox("step label under each frame")
        self.label_check.setObjectName("stepLabelCheck")
        self.label_check.setToolTip("A line 'step k/S  t=...' under every frame")
        self.label_check.setChecked(True)

    def _build_file(self, note: str) -> None:
        """The file format, what the animation cannot show, and the buttons."""
        self.format_combo = QComboBox()
        self.format_combo.setObjectName("animationFormatCombo")
        self.format_combo.setAccessibleName("File format")
        self.format_combo.setToolTip("GIF plays everywhere; WebP is smaller and exact; MP4 appears when "
                                     "imageio-ffmpeg is installed")
        for suffix, text, _ in available_formats():
            self.format_combo.addItem(text, suffix)
        self.note_label = QLabel(note)
        self.note_label.setObjectName("animationNote")
        self.note_label.setWordWrap(True)
        self.note_label.setVisible(bool(note))
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.export_button = self.buttons.addButton("Export…", QDialogButtonBox.ButtonRole.AcceptRole)
        self.export_button.setObjectName("animationExportButton")
        self.export_button.setDefault(True)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

    def _lay_out(self) -> None:
        form = QFormLayout()
        form.addRow("Animate", self.source_combo)
        samples = QVBoxLayout()
        samples.addWidget(self.sample_radio)
        samples.addWidget(self.grid_radio)
        form.addRow("Of", samples)
        frames = QVBoxLayout()
        for radio, spin, unit in ((self.stride_radio, self.stride_spin, "steps"),
                                  (self.max_radio, self.max_spin, "frames")):
            row = QHBoxLayout()
            row.addWidget(radio)
            row.addWidget(spin)
            row.addWidget(QLabel(unit))
            row.addStretch(1)
            frames.addLayout(row)
        form.addRow("Frames", frames)
        form.addRow("Frame duration", self.frame_ms_spin)
        form.addRow("Hold last frame", self.hold_ms_spin)
        form.addRow("", self.label_check)
        form.addRow("Format", self.format_combo)
        box = QVBoxLayout(self)
        box.addLayout(form)
        box.addWidget(self.note_label)
        box.addWidget(self.buttons)

    def _spin(self, name: str, tip: str, low: int, high: int, value: int, suffix: str = "") -> QSpinBox:
        spin = QSpinBox()
        spin.setObjectName(name)
        spin.setAccessibleName(tip)
        spin.setToolTip(tip)
        spin.setRange(low, high)
        spin.setValue(value)
        spin.setSuffix(suffix)
        return spin

    def _update_enabled(self, *_) -> None:
        self.stride_spin.setEnabled(self.stride_radio.isChecked())
        self.max_spin.setEnabled(self.max_radio.isChecked())

    # --- choices <-> options -----------------------------------------------------------------------------------
    def options(self) -> AnimationOptions:
        by_stride = self.stride_radio.isChecked()
        return AnimationOptions(
            source=self.source_combo.currentData(),
            sample=self.sample if self.sample_radio.isChecked() else None,
            stride=self.stride_spin.value() if by_stride else 1,
            max_frames=None if by_stride else self.max_spin.value(),
            frame_ms=self.frame_ms_spin.value(),
            hold_ms=self.hold_ms_spin.value(),
            label=self.label_check.isChecked(),
        )

    def suffix(self) -> str:
        return self.format_combo.currentData()

    def file_filter(self) -> str:
        return next(f for suffix, _, f in FORMATS if suffix == self.suffix())

    def remember(self) -> None:
        """The choices come back the next time the dialog opens (the sample choice too, if it can)."""
        persistence.write_json(SETTINGS_KEY, {
            "source": self.source_combo.currentData(), "grid": self.grid_radio.isChecked(),
            "by_stride": self.stride_radio.isChecked(), "stride": self.stride_spin.value(),
            "max_frames": self.max_spin.value(), "frame_ms": self.frame_ms_spin.value(),
            "hold_ms": self.hold_ms_spin.value(), "label": self.label_check.isChecked(), "format": self.suffix()})

    def _restore(self) -> None:
        stored = persistence.read_json(SETTINGS_KEY)
        if not isinstance(stored, dict):
            return
        try:
            for combo, key in ((self.source_combo, "source"), (self.format_combo, "format")):
                index = combo.findData(stored.get(key))
                if index >= 0:
                    combo.setCurrentIndex(index)
            if stored.get("grid"):
                self.grid_radio.setChecked(True)
            (self.stride_radio if stored.get("by_stride", True) else self.max_radio).setChecked(True)
            for spin, key in ((self.stride_spin, "stride"), (self.max_spin, "max_frames"),
                              (self.frame_ms_spin, "frame_ms"), (self.hold_ms_spin, "hold_ms")):
                if isinstance(stored.get(key), int):
                    spin.setValue(stored[key])
            self.label_check.setChecked(bool(stored.get("label", True)))
        except (TypeError, ValueError):
            pass   # a damaged entry: keep the defaults
