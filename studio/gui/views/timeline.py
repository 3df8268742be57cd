"""The timeline under the centre: a slider over the steps taken, play/pause, step back/forward, a label.

It grows while a run streams in; if the slider sits on the newest step it follows the run, if the user
has moved it back it stays where it was put.

The slider's value is the index of the step shown (0: step 1, the first model call's result) and ``X_T`` (-1)
is step 0, the starting noise x_T, before any model call: once a run has steps the slider spans
``X_T .. steps - 1``, so Home (``first``) shows x_T, as the animation and the .npz export start with it.
"""

from __future__ import annotations

from PySide6.QtCore import QTimer, Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QStyle, QToolButton, QWidget

PLAY_INTERVAL_MS = 60   # ~16 steps a second
X_T = -1                # the slider's value for step 0: x_T, the starting noise


class Timeline(QWidget):
    step_changed = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        icon = self.style().standardIcon
        self.back_button = self._button("stepBackButton", icon(QStyle.StandardPixmap.SP_MediaSeekBackward),
                                        "Step back (Left)")
        self.play_button = self._button("playButton", icon(QStyle.StandardPixmap.SP_MediaPlay),
                                        "Play the steps as a movie / pause (Space)")
        self.play_button.setCheckable(True)
        self.play_button.setAccessibleName("Play or pause the timeline")
        self.forward_button = self._button("stepForwardButton", icon(QStyle.StandardPixmap.SP_MediaSeekForward),
                                           "Step forward (Right)")
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setObjectName("timelineSlider")
        self.slider.setAccessibleName("Timeline: the step shown")
        self.slider.setToolTip("Drag to look at any step of the run, from step 0 (x_T, the starting noise) to the "
                               "last (Left/Right, Home/End)")
        self.slider.setRange(0, 0)
        self.slider.setEnabled(False)
        self.slider.setPageStep(10)
        self.label = QLabel("no run yet")
        self.label.setObjectName("timelineLabel")
        self.label.setAccessibleName("Step, timestep, alpha_bar_t and sigma_t of the step shown")
        self.label.setToolTip("step i of S (step 0: x_T, the starting noise), the timestep t the model saw "
                              "(→ the one the step reached), alpha_bar_t (signal kept) and "
                              "sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t) (noise-to-signal ratio)")
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setMinimumWidth(self.fontMetrics().horizontalAdvance("step 1000/1000 · t 999 → 998 · "
                                                                        "alpha_bar_t 0.000040 · sigma_t 157.4"))
        box = QHBoxLayout(self)
        box.setContentsMargins(4, 2, 4, 2)
        for widget in (self.back_button, self.play_button, self.forward_button):
            box.addWidget(widget)
        box.addWidget(self.slider, 1)
        box.addWidget(self.label)

        self._timer = QTimer(self)
        self._timer.setInterval(PLAY_INTERVAL_MS)
        self._timer.timeout.connect(self._advance)
        self.slider.valueChanged.connect(self.step_changed)
        self.back_button.clicked.connect(self.step_back)
        self.forward_button.clicked.connect(self.step_forward)
        self.play_button.toggled.connect(self._play_toggled)
        self._update_buttons()

    def _button(self, name: str, icon, tooltip: str) -> QToolButton:
        button = QToolButton()
        button.setObjectName(name)
        button.setIcon(icon)
        button.setToolTip(tooltip)
        button.setAccessibleName(tooltip.split(" (")[0])
        button.setAutoRaise(True)
        return button

    # --- the steps there are ---------------------------------------------------------------------------------------
    @property
    def count(self) -> int:
        """The run's steps on the timeline (x_T, step 0, not counted)."""
        return self.slider.maximum() + 1 if self.slider.isEnabled() else 0

    @property
    def current(self) -> int:
        """The index of the step shown; ``X_T`` (-1) for step 0, the starting noise."""
        return self.slider.value()

    def reset(self) -> None:
        self.stop()
        self.slider.blockSignals(True)
        self.slider.setRange(0, 0)
        self.slider.setValue(0)
        self.slider.blockSignals(False)
        self.slider.setEnabled(False)
        self.label.setText("no run yet")
        self._update_buttons()

    def grow(self, count: int) -> None:
        """The run has ``count`` steps now; follow it if the slider was on the newest step."""
        following = not self.slider.isEnabled() or self.slider.value() == self.slider.maximum()
        self.slider.setEnabled(count > 0)
        self.slider.blockSignals(True)
        self.slider.setRange(X_T if count > 0 else 0, max(0, count - 1))   # x_T first, once there are steps
        self.slider.blockSignals(False)
        if following and not self._timer.isActive() and count > 0:
            if self.slider.value() != count - 1:
                self.slider.setValue(count - 1)   # emits step_changed
            else:
                self.step_changed.emit(count - 1)   # the first step lands on 0, where the slider already was
        self._update_buttons()

    def set_step(self, index: int) -> None:
        """Show step ``index`` (0: step 1; ``X_T``: the starting noise), within the steps there are."""
        self.slider.setValue(max(self.slider.minimum(), min(index, self.slider.maximum())))

    def step_back(self) -> None:
        self.set_step(self.current - 1)

    def step_forward(self) -> None:
        self.set_step(self.current + 1)

    def first(self) -> None:
        """Step 0: x_T, the starting noise."""
        self.set_step(X_T)

    def last(self) -> None:
        self.set_step(self.slider.maximum())

    # --- play ------------------------------------------------------------------------------------------------------
    def toggle_play(self) -> None:
        self.play_button.setChecked(not self.play_button.isChecked())

    def stop(self) -> None:
        self.play_button.setChecked(False)

    @property
    def playing(self) -> bool:
        return self._timer.isActive()

    def _play_toggled(self, on: bool) -> None:
        style = self.style()
        if on and self.count > 0:
            if self.current >= self.slider.maximum():
                self.first()   # play from the start (x_T) when at the end
            self._timer.start()
            self.play_button.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_MediaPause))
        else:
            self._timer.stop()
            if self.play_button.isChecked():
                self.play_button.setChecked(False)
            self.play_button.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_MediaPlay))

    def _advance(self) -> None:
        if self.current >= self.slider.maximum():
            self.stop()
        else:
            self.step_forward()

    def _update_buttons(self) -> None:
        has_steps = self.slider.isEnabled()
        for button in (self.back_button, self.play_button, self.forward_button):
            button.setEnabled(has_steps)
