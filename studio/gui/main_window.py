"""The studio window: model, sampler and seed panels, the batch previews, the timeline, plots.

Built the way Qt's own mainwindows/application example builds a window (create actions, menus, toolbar,
docks; read settings on start, write them on close), with every dock named so its layout is remembered.
The window turns clicks into RunSettings, hands them with the model to a RunController (a worker thread)
and lets the RunPresenter show what comes back. ``MainWindow()`` needs no event loop to be built.
"""

from __future__ import annotations

import gc
import os
import sys
import time
import traceback
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QAbstractButton, QApplication, QComboBox, QDockWidget, QFileDialog, QLabel, QMainWindow, QMessageBox,
    QPushButton, QSizePolicy, QSplitter, QStackedWidget, QToolBar, QVBoxLayout, QWidget,
)

from ..core.bundled import DEFAULT_MODEL, bundled_by_name, bundled_of_source
from ..core.errors import StudioError
from ..core.models.fixed_batch import DEFAULT_MODEL_BATCH
from ..core.recipe import recorded_source
from ..core.settings import RunSettings
from . import persistence
from .classifiers import ClassifierChoice
from .cpu_threads import prepare_gui_thread
from .error_banner import ErrorBanner
from .export_actions import ExportActions
from .panels.model_panel import ModelPanel
from .panels.plots_panel import PlotsPanel
from .panels.sampler_panel import SamplerPanel
from .panels.seed_panel import SeedPanel
from .recipe_opening import device_choice, open_recipe_png
from .trust_dialog import open_trusting
from .run_presenter import RunPresenter
from .views.focus_view import FocusView
from .views.preview_pane import PreviewPane
from .views.progress_bar import ProgressBar
from .views.timeline import Timeline
from .worker import CANCELLED, FAILED, RunController, RunOutcome

pg.setConfigOptions(imageAxisOrder="row-major")

FRAME_BUDGET_KEY = "run/frame_budget_mib"
PROGRESS_INTERVAL_S = 0.1   # the status text and progress bar follow a run at most this often (and at its end)

EMPTY_STATE_TEXT = ("<h2>No model loaded</h2><p>Open a checkpoint with <b>File ▸ Open checkpoint or PNG…</b> "
                    "(Ctrl+O), pick one in the Model panel, or drop a checkpoint file, a diffusers folder or a PNG "
                    "the studio exported onto this window.</p>")
CHECKPOINT_FILTER = ("Checkpoints and studio PNGs (*.safetensors *.pt *.pth *.ckpt *.bin *.zip *.torchscript *.png);;"
                     "Checkpoints (*.safetensors *.pt *.pth *.ckpt *.bin *.zip *.torchscript);;"
                     "PNGs exported by the studio (*.png);;All files (*)")


def store_summary(store) -> str:
    """What the run's trajectory store kept, for the status bar; past the memory budget, it says keyframes."""
    if store.keeps_every_step:
        return store.describe()
    return (f"keyframes: every {store.stride} steps and the latest are kept ({store.nbytes / 2**20:.1f} MiB; "
            f"frame memory {store.budget_bytes / 2**20:.0f} MiB, Seed panel)")


def network_summary(info) -> str:
    """The network mode a run uses, when there is something to say: a faster mode, or why it fell back."""
    if info.network_note:
        return f"network plain: {info.network_note}"
    return "" if info.network == "plain" else f"network {info.network}"


def is_png(path) -> bool:
    """A PNG is opened as a recipe, anything else as a checkpoint."""
    return str(path).lower().endswith(".png")


class MainWindow(QMainWindow):
    model_changed = Signal(object)   # the new ModelCard
    run_started = Signal()
    step_added = Signal(int)         # index of a step that reached the store
    run_finished = Signal(object)    # RunOutcome, once the worker thread has ended
    error_shown = Signal(str)

    def __init__(self, checkpoint: str | os.PathLike | None = None, *, restore_last: bool = False,
                 open_default: bool = True):
        """``checkpoint``: a path or bundled name to open; without it the bundled default model opens (if
        installed). ``restore_last`` reopens the last checkpoint of the previous session instead (what
        ``studio`` does); ``open_default=False`` starts empty (tests, scripts that bring their own model).
        ``checkpoint`` may also be a PNG the studio exported: its recipe's model and settings open."""
        super().__init__()
        prepare_gui_thread()   # the GUI thread's torch work on one thread: the worker's team keeps its speed
        self.setObjectName("mainWindow")
        self.setWindowTitle("Sampling Studio")
        self.setAcceptDrops(True)
        from ..core.checkpoints import ModelHolder   # the checkpoint readers load lazily (diffusers on demand)

        self.models = ModelHolder()
        self.source: str | None = None
        self.classifiers = ClassifierChoice()   # noise-aware classifiers for classifier guidance, loaded lazily
        self.controller = RunController(self)
        self._run_model = None       # (card, schedule) of the run in progress
        self._exact_sampler = None   # (what the sampler panel showed, the recipe's own sampler settings)
        self.show_step_after_run: int | None = None   # an opened PNG showed this step: go there after the run
        self._progress_at = 0.0
        self._run_network = ""   # the run's network mode, when it is not plain or fell back (for the status bar)
        self._create_actions()
        self._create_central()
        self._create_docks()
        self._create_menus()
        self._create_toolbar()
        self._create_status_bar()
        self._connect()
        self._default_state = self.saveState(persistence.STATE_VERSION)
        self._read_window_settings()

        restored = checkpoint is None and restore_last
        if restored:
            checkpoint = persistence.last_checkpoint()
        self._apply_run_settings(persistence.read_json("run/settings"))
        opened = checkpoint is not None and (self.open_checkpoint(checkpoint, implicit=True) if restored
                                             else self.open_path(checkpoint))
        if not opened and open_default and bundled_by_name(DEFAULT_MODEL).path.is_file():
            self.open_checkpoint(DEFAULT_MODEL, remember=checkpoint is None)
            if checkpoint is not None and self.denoiser is not None:
                self.error_banner.show_message(
                    f"{self.error_banner.text.text()}\nThe bundled {DEFAULT_MODEL!r} model was opened instead.")
        self._refresh_model_list()
        self._update_actions()

    # ==== construction =============================================================================================
    def _action(self, name: str, text: str, slot, shortcuts=(), tip: str = "") -> QAction:
        action = QAction(text, self)
        action.setObjectName(name)
        if shortcuts:
            action.setShortcuts([QKeySequence(s) for s in shortcuts])
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip)
        action.triggered.connect(slot)
        self.addAction(action)   # shortcuts work even when the action's menu is closed
        return action

    def _create_actions(self) -> None:
        self.open_action = self._action("openCheckpointAction", "&Open checkpoint or PNG…",
                                        self.open_checkpoint_dialog, [QKeySequence.StandardKey.Open],
                                        "Open a checkpoint file, or a PNG the studio exported to make it again (Ctrl+O)")
        self.open_folder_action = self._action("openFolderAction", "Open diffusers &folder…", self.open_folder_dialog,
                                               tip="Open a diffusers model or pipeline folder")
        self.exports = ExportActions(self)
        self.quit_action = self._action("quitAction", "&Quit", self.close, [QKeySequence.StandardKey.Quit])
        self.generate_action = self._action("generateAction", "&Generate", self.generate,
                                            ["Ctrl+Return", "Ctrl+Enter"], "Sample a batch (Ctrl+Enter)")
        self.cancel_action = self._action("cancelAction", "&Cancel", self.cancel, ["Esc"],
                                          "Stop the run after the model call in progress; the steps done stay (Esc)")
        self.play_action = self._action("playAction", "&Play / pause", self._space_pressed,
                                        ["Space"], "Play the steps as a movie (Space)")
        self.back_action = self._action("stepBackAction", "Step &back", lambda: self.timeline.step_back(),
                                        ["Left"], "Show the step before (Left)")
        self.forward_action = self._action("stepForwardAction", "Step &forward", lambda: self.timeline.step_forward(),
                                           ["Right"], "Show the step after (Right)")
        self.first_action = self._action("firstStepAction", "&First step", lambda: self.timeline.first(),
                                         ["Home"], "Show the first step (Home)")
        self.last_action = self._action("lastStepAction", "&Last step", lambda: self.timeline.last(),
                                        ["End"], "Show the last step (End)")
        self.reset_layout_action = self._action("resetLayoutAction", "&Reset layout", self.reset_layout,
                                                tip="Put every panel back where it started")
        self.about_action = self._action("aboutAction", "&About Sampling Studio", self.about)

    def _create_central(self) -> None:
        self.error_banner = ErrorBanner()
        self.preview_xt = PreviewPane("x_t, the noisy sample", "The batch's x_t: the sample after the step shown. "
                                      "Click a tile to look at it closely below.")
        self.preview_xt.setObjectName("previewXt")
        self.preview_xt.setAccessibleName("x_t of the batch")
        self.preview_x0 = PreviewPane("x0_pred, the model's guess of the clean sample",
                                      "The batch's predicted x0: where the model thinks each sample is heading. "
                                      "Click a tile to look at it closely below.")
        self.preview_x0.setObjectName("previewX0")
        self.preview_x0.setAccessibleName("Predicted x0 of the batch")
        self.focus_view = FocusView()
        grids = QSplitter(Qt.Orientation.Horizontal)
        grids.setObjectName("gridsSplitter")
        grids.addWidget(self.preview_xt)
        grids.addWidget(self.preview_x0)
        self.preview_splitter = QSplitter(Qt.Orientation.Vertical)
        self.preview_splitter.setObjectName("previewSplitter")
        self.preview_splitter.addWidget(grids)
        self.preview_splitter.addWidget(self.focus_view)
        self.preview_splitter.setStretchFactor(0, 3)
        self.preview_splitter.setStretchFactor(1, 2)
        self.empty_state = QLabel(EMPTY_STATE_TEXT)
        self.empty_state.setObjectName("emptyState")
        self.empty_state.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_state.setWordWrap(True)
        self.centre_stack = QStackedWidget()
        self.centre_stack.addWidget(self.empty_state)
        self.centre_stack.addWidget(self.preview_splitter)
        self.timeline = Timeline()
        centre = QWidget()
        box = QVBoxLayout(centre)
        box.setContentsMargins(4, 4, 4, 0)
        box.addWidget(self.error_banner)
        box.addWidget(self.centre_stack, 1)
        box.addWidget(self.timeline)
        self.setCentralWidget(centre)

    def _space_pressed(self) -> None:
        """Space plays/pauses the timeline, except that a focused button or list still gets its own Space
        (keyboard users press buttons and open combo boxes with it)."""
        focus = QApplication.focusWidget()
        if isinstance(focus, QAbstractButton) and focus is not self.timeline.play_button and focus.isEnabled():
            focus.animateClick()
        elif isinstance(focus, QComboBox):
            focus.showPopup()
        else:
            self.timeline.toggle_play()

    def _dock(self, name: str, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)   # saveState/restoreState find docks by objectName
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _create_docks(self) -> None:
        self.model_panel = ModelPanel()
        self.sampler_panel = SamplerPanel()
        self.seed_panel = SeedPanel()
        self.plots_panel = PlotsPanel()
        left, right = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
        self.model_dock = self._dock("modelDock", "Model", self.model_panel, left)
        self.sampler_dock = self._dock("samplerDock", "Sampler", self.sampler_panel, left)
        self.seed_dock = self._dock("seedDock", "Seed", self.seed_panel, left)
        self.plots_dock = self._dock("plotsDock", "Plots", self.plots_panel, right)
        self.resizeDocks([self.model_dock, self.plots_dock], [330, 380], Qt.Orientation.Horizontal)
        self.presenter = RunPresenter(self.preview_xt, self.preview_x0, self.focus_view, self.timeline,
                                      self.plots_panel, self)

    def _create_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addActions([self.open_action, self.open_folder_action])
        file_menu.addSeparator()
        file_menu.addActions(self.exports.actions)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        run_menu = bar.addMenu("&Run")
        run_menu.addActions([self.generate_action, self.cancel_action])
        run_menu.addSeparator()
        run_menu.addActions([self.play_action, self.back_action, self.forward_action, self.first_action,
                             self.last_action])
        view_menu = bar.addMenu("&View")
        for dock in (self.model_dock, self.sampler_dock, self.seed_dock, self.plots_dock):
            view_menu.addAction(dock.toggleViewAction())
        view_menu.addSeparator()
        view_menu.addAction(self.reset_layout_action)
        bar.addMenu("&Help").addAction(self.about_action)

    def _create_toolbar(self) -> None:
        toolbar = QToolBar("Run")
        toolbar.setObjectName("runToolBar")
        toolbar.setIconSize(QSize(18, 18))
        self.addToolBar(toolbar)
        self.open_button = self._button("openButton", "Open…", self.open_action, "Open a checkpoint")
        self.generate_button = self._button("generateButton", "Generate", self.generate_action, "Generate")
        self.generate_button.setDefault(True)
        self.generate_button.setStyleSheet("QPushButton#generateButton { font-weight: bold; padding: 4px 18px; }")
        self.cancel_button = self._button("cancelButton", "Cancel", self.cancel_action, "Cancel the run")
        for button in (self.open_button, self.generate_button, self.cancel_button):
            toolbar.addWidget(button)
        toolbar.addSeparator()
        self.export_button = self.exports.toolbar_button()
        toolbar.addWidget(self.export_button)
        self.run_state_label = QLabel()
        self.run_state_label.setObjectName("runStateLabel")
        self.run_state_label.setContentsMargins(12, 0, 0, 0)
        toolbar.addWidget(self.run_state_label)

    def _button(self, name: str, text: str, action: QAction, accessible: str) -> QPushButton:
        """A push button that triggers ``action`` and mirrors its enabled state and tooltip."""
        button = QPushButton(text)
        button.setObjectName(name)
        button.setAccessibleName(accessible)
        button.setToolTip(action.toolTip())
        button.clicked.connect(action.trigger)
        action.changed.connect(lambda: button.setEnabled(action.isEnabled()))
        return button

    def _create_status_bar(self) -> None:
        status = self.statusBar()
        self.status_label = QLabel("ready")
        self.status_label.setObjectName("runStatusLabel")
        # long messages are cut, not allowed to push the device and progress off the bar
        self.status_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.device_label = QLabel()
        self.device_label.setObjectName("deviceLabel")
        self.progress_bar = ProgressBar()
        self.progress_bar.setObjectName("progressBar")
        self.progress_bar.setAccessibleName("Run progress")
        self.progress_bar.setMaximumWidth(220)
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("%v/%m steps")
        status.addWidget(self.status_label, 1)
        status.addPermanentWidget(self.device_label)
        status.addPermanentWidget(self.progress_bar)

    def _connect(self) -> None:
        self.controller.run_ready.connect(self._on_run_ready)
        self.controller.steps_ready.connect(self._on_steps)
        self.controller.run_done.connect(self._on_run_done)
        self.model_panel.source_chosen.connect(lambda source: self.open_checkpoint(source))
        self.model_panel.open_file_requested.connect(self.open_checkpoint_dialog)
        self.model_panel.open_folder_requested.connect(self.open_folder_dialog)
        self.model_panel.run_device_changed.connect(self._show_device)
        self.seed_panel.budget_spin.valueChanged.connect(self._frame_budget_changed)
        self.presenter.step_shown.connect(lambda _: self._update_actions())
        for pane in (self.preview_xt, self.preview_x0):
            pane.grid.tile_menu_requested.connect(self.exports.show_tile_menu)

    # ==== the model ================================================================================================
    @property
    def denoiser(self):
        return self.models.denoiser

    @property
    def card(self):
        return self.models.card

    def open_checkpoint_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open checkpoint or studio PNG", self._dialog_folder(),
                                              CHECKPOINT_FILTER)
        if path:
            self.open_path(path)

    def open_path(self, path: str | os.PathLike) -> bool:
        """A PNG the studio exported (its recipe) or a checkpoint."""
        return open_recipe_png(self, path) if is_png(path) else self.open_checkpoint(path)

    def open_folder_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open diffusers folder", self._dialog_folder())
        if path:
            self.open_checkpoint(path)

    def _dialog_folder(self) -> str:
        recent = persistence.recent_checkpoints()
        return str(Path(recent[0]).parent) if recent else str(Path.home())

    def open_checkpoint(self, source: str | os.PathLike, *, remember: bool = True, implicit: bool = False) -> bool:
        """Open a checkpoint path or bundled name. On failure the message shows and the current model stays.
        A TorchScript archive (code) opens only once the user trusts it (asked here, remembered by sha256);
        ``implicit`` (the last model, reopened at start) never loads one."""
        source = str(source)
        QGuiApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            open_trusting(self, source, implicit)
        except Exception as exc:   # noqa: BLE001 -- an expected failure is a StudioError; anything else too shows
            if not isinstance(exc, StudioError):
                traceback.print_exc(file=sys.stderr)
            name = os.path.basename(os.path.normpath(source)) or source
            self.show_error(f"Could not open {name}: {exc}" if isinstance(exc, StudioError)
                            else f"Could not open {name}: unexpected {type(exc).__name__}: {exc}")
            return False
        finally:
            QGuiApplication.restoreOverrideCursor()
        # Only now that the new model is loaded: a run in progress stops (keeping its steps until the views
        # reset), so a file that fails to open leaves a run undisturbed.
        self.controller.shutdown()
        self._model_opened(source, remember)
        return True

    def set_model(self, denoiser, source: str | None = None) -> None:
        """Use an in-memory denoiser (tests, scripts); ``source`` is only a name to remember."""
        self.controller.shutdown()
        self.models.denoiser = denoiser
        self._model_opened(source, remember=False)

    def _model_opened(self, source: str | None, remember: bool) -> None:
        self.source = source
        card = self.card
        self.error_banner.hide()
        self.presenter.set_model(card, self.denoiser.schedule)
        self.model_panel.show_card(card)
        try:
            from ..core.checkpoints import card_lines

            self.model_panel.card_box.setToolTip("\n".join(card_lines(card)))
        except Exception:  # noqa: BLE001 -- the tooltip is a nicety
            pass
        self.refresh_classifier()
        self.sampler_panel.set_card(card)
        self.plots_panel.set_schedule(self.denoiser.schedule)
        self.centre_stack.setCurrentWidget(self.preview_splitter)
        if remember and source is not None:
            if bundled_of_source(source) is not None:
                persistence.write_text("model/last", bundled_of_source(source).name)
            elif bundled_by_name(source) is not None and not os.path.exists(source):
                persistence.write_text("model/last", source)
            else:
                persistence.remember_checkpoint(os.path.abspath(source))
        self._refresh_model_list()
        self.setWindowTitle(f"{card.name} — Sampling Studio")
        self.status_label.setText(f"opened {card.name}")
        gc.collect()   # the previous model (and its run) go now, not at some later collection
        self._update_actions()
        self.model_changed.emit(card)

    def _refresh_model_list(self) -> None:
        current = self.source
        if current is not None and os.path.exists(current):
            current = os.path.abspath(current)
        self.model_panel.set_sources(persistence.recent_checkpoints(), current)

    def refresh_classifier(self) -> None:
        """Offer classifier guidance when a classifier fits the open model."""
        _, why_not = self.classifiers.for_model(self.card)
        self.sampler_panel.set_classifier_available(why_not)

    # ==== running ==================================================================================================
    def current_settings(self) -> RunSettings:
        """The panels' choices as RunSettings (raises SettingsError with a readable message)."""
        sampler = self.sampler_panel.sampler_settings()
        if self._exact_sampler is not None and sampler == self._exact_sampler[0]:
            sampler = self._exact_sampler[1]   # an opened recipe, untouched since: its settings exactly
        return RunSettings(
            sampler=sampler,
            seed=self.seed_panel.seed(),
            batch_size=self.seed_panel.batch_size(),
            class_label=self.sampler_panel.class_label(),
            guidance=self.sampler_panel.guidance(),
            device=self.model_panel.device(),
            dtype=self.model_panel.dtype(),
            network=self.sampler_panel.network(),
        )

    def generate(self) -> None:
        if self.controller.running or self.denoiser is None:
            return
        try:
            settings = self.current_settings()
        except StudioError as exc:
            self.show_error(str(exc))
            return
        card = self.card
        options = {"record_extra": self._recipe_extra(card)}
        if settings.guidance.kind == "classifier":
            source, why_not = self.classifiers.for_model(card)
            try:
                if source is None:
                    raise StudioError(f"classifier guidance is not available: {why_not}")
                options["classifier"] = self.classifiers.load(source)
            except StudioError as exc:
                self.show_error(str(exc))
                return
            options["record_extra"]["classifier"] = {"checkpoint": recorded_source(source),
                                                     "name": options["classifier"].card.name,
                                                     "sha256": options["classifier"].card.sha256}
        self.error_banner.hide()
        persistence.write_json("run/settings", settings.to_dict())
        if card.data_kind == "image":
            # as `studio sample` does: the model sees DEFAULT_MODEL_BATCH rows per call, so a sample's bits are
            # the same in any batch and alone (its PNG's recipe makes it again); vectors keep their one big call
            settings = settings.replace(model_batch=DEFAULT_MODEL_BATCH)
            options["record_extra"]["model_batch"] = DEFAULT_MODEL_BATCH
        options["keep_floats"] = self.presenter.keeps_floats_for(settings.sampler.steps, settings.batch_size,
                                                                 card.data_shape)
        self._run_model = (card, self.denoiser.schedule)
        self._run_network = ""
        self.controller.start(self.denoiser, settings, **options)
        self.progress_bar.setRange(0, settings.sampler.steps)
        self.progress_bar.setValue(0)
        compiling = settings.network.startswith("compiled")
        self.status_label.setText("starting… (compiling the network: a first run takes tens of seconds)" if compiling
                                  else "starting…")
        self.run_state_label.setText("running — settings you change now apply to the next run")
        self._update_actions()
        self.run_started.emit()

    def _recipe_extra(self, card) -> dict:
        """What a PNG's recipe needs beyond the engine's record (as `studio sample` adds it)."""
        extra = {"model_batch": 0, "data": {"kind": card.data_kind, "shape": list(card.data_shape),
                                             "value_range": list(card.value_range)}}
        if self.source is not None:
            extra["checkpoint"] = recorded_source(self.source)
        return extra

    def cancel(self) -> None:
        if self.controller.running:
            self.controller.cancel()
            self.status_label.setText("cancelling after the model call in progress…")
            self.cancel_action.setEnabled(False)

    def _on_run_ready(self, info) -> None:
        card, schedule = self._run_model
        self.presenter.on_run_ready(info, card, schedule)
        self.progress_bar.setRange(0, info.num_steps)
        self.device_label.setText(f"{info.device}, {info.dtype}")
        self.model_panel.show_runs_on(f"{info.device}, {info.dtype}")
        self._run_network = network_summary(info)
        if self._run_network:
            self.run_state_label.setText(f"running ({self._run_network}) — settings you change now apply to the "
                                         "next run")

    def _on_steps(self, steps) -> None:
        """A batch of steps from the worker (a fast model's come several at a time): kept, the timeline grown
        once, the status written at most every PROGRESS_INTERVAL_S; ``step_added`` for each."""
        self.presenter.on_steps(steps)
        frames = steps[-1].frames
        done, total = frames.index + 1, frames.num_steps
        now = time.perf_counter()
        if done == total or now - self._progress_at >= PROGRESS_INTERVAL_S:   # text and bar repaint: not per step
            self._progress_at = now
            self.progress_bar.setValue(done)
            rate = self.presenter.rate()
            eta = (total - done) / rate if rate > 0 else 0.0
            self.status_label.setText(f"step {done}/{total} · {rate:.1f} it/s · ETA {eta:.1f} s")
        for step in steps:
            self.step_added.emit(step.frames.index)

    def _on_run_done(self, outcome: RunOutcome) -> None:
        self.presenter.on_run_done()
        self._run_model = None
        self.run_state_label.setText("")
        store = self.presenter.store
        if store is not None and store.steps_done:
            self.progress_bar.setValue(store.steps_done)   # a throttled update may have skipped the last ones
        if outcome.status == FAILED:
            self.show_error(outcome.message + ("" if store is None or not store.steps_done
                                               else f" — the {store.steps_done} steps before it are kept"))
            self.status_label.setText("the run failed")
        elif outcome.status == CANCELLED:
            self.status_label.setText(f"{outcome.message}; the steps done are kept")
        else:
            rate = outcome.steps_done / outcome.seconds if outcome.seconds > 0 else 0.0
            self.status_label.setText(f"done: {outcome.steps_done} steps in {outcome.seconds:.1f} s "
                                      f"({rate:.1f} it/s)" + (f" · {self._run_network}" if self._run_network else "")
                                      + (f" · {store_summary(store)}" if store else ""))
            if self.show_step_after_run is not None:
                self.timeline.set_step(self.show_step_after_run - 1)   # the step the opened PNG showed
        self.show_step_after_run = None
        self._update_actions()
        self.run_finished.emit(outcome)

    def _frame_budget_changed(self, mib: int) -> None:
        """The Seed panel's frame memory: the budget of the next run's trajectory store."""
        self.presenter.budget_bytes = int(mib) * 2**20

    def _show_device(self) -> None:
        if not self.controller.running:
            self.device_label.setText(f"{self.model_panel.device()}, {self.model_panel.dtype()}")
            self.model_panel.show_runs_on(None)

    def _update_actions(self) -> None:
        running = self.controller.running
        has_model = self.denoiser is not None
        self.generate_action.setEnabled(has_model and not running)
        self.cancel_action.setEnabled(running)
        self.open_action.setEnabled(True)
        self.exports.update()
        if not has_model:
            self.centre_stack.setCurrentWidget(self.empty_state)
        for button, action in ((self.generate_button, self.generate_action), (self.cancel_button, self.cancel_action)):
            button.setEnabled(action.isEnabled())

    def show_error(self, message: str) -> None:
        """An expected failure: say what went wrong, keep everything else as it is."""
        self.error_banner.show_message(message)
        self.status_label.setText(message.splitlines()[0])
        self.error_shown.emit(message)

    # ==== settings, layout, closing ================================================================================
    def _apply_run_settings(self, data) -> None:
        if not isinstance(data, dict):
            return
        try:
            settings = RunSettings.from_dict(data)
        except StudioError:
            return   # stored by another version or damaged: keep the defaults
        self.apply_settings(settings)

    def apply_settings(self, settings: RunSettings, exact_sampler: bool = False) -> None:
        """Show ``settings`` in the panels. ``exact_sampler``: run its sampler settings exactly (those the panel
        cannot show too) until the sampler panel is changed."""
        self.sampler_panel.apply(settings.sampler, settings.guidance, settings.class_label)
        self.sampler_panel.set_network(settings.network)
        self.seed_panel.apply(settings.seed, settings.batch_size)
        self.model_panel.set_device(device_choice(settings.device), settings.dtype)
        self._exact_sampler = (self.sampler_panel.sampler_settings(), settings.sampler) if exact_sampler else None

    def _read_window_settings(self) -> None:
        geometry = persistence.read_bytes("window/geometry")
        if geometry is None or not self.restoreGeometry(geometry):
            screen = QGuiApplication.primaryScreen()
            available = screen.availableGeometry() if screen else None
            if available is not None:
                self.resize(min(1500, available.width() - 40), min(940, available.height() - 40))
        state = persistence.read_bytes("window/state")
        if state is not None:
            self.restoreState(state, persistence.STATE_VERSION)
        curve = persistence.read_text("plots/curve")
        if curve:
            self.plots_panel.set_curve_key(curve)
        budget = persistence.read_text(FRAME_BUDGET_KEY)
        if budget is not None and budget.isdigit():
            self.seed_panel.set_frame_budget_mib(int(budget))
        self._frame_budget_changed(self.seed_panel.frame_budget_mib())

    def write_settings(self) -> None:
        persistence.write_bytes("window/geometry", self.saveGeometry())
        persistence.write_bytes("window/state", self.saveState(persistence.STATE_VERSION))
        persistence.write_text("plots/curve", self.plots_panel.curve_key())
        persistence.write_text(FRAME_BUDGET_KEY, str(self.seed_panel.frame_budget_mib()))
        try:
            persistence.write_json("run/settings", self.current_settings().to_dict())
        except StudioError:
            pass   # an invalid combination is not worth remembering

    def reset_layout(self) -> None:
        self.restoreState(self._default_state, persistence.STATE_VERSION)
        for dock in (self.model_dock, self.sampler_dock, self.seed_dock, self.plots_dock):
            dock.show()

    def about(self) -> None:
        from .. import __version__

        QMessageBox.about(self, "About Sampling Studio", (
            f"<h3>Sampling Studio {__version__}</h3><p>Look inside DDPM/DDIM diffusion sampling.</p>"
            "<p><b>Shortcuts</b>: Ctrl+Enter generate · Esc cancel · Left/Right step · Home/End first/last step · "
            "Space play/pause · Ctrl+O open</p>"))

    def closeEvent(self, event: QCloseEvent) -> None:
        self.controller.shutdown()   # stop the worker and wait for its thread: no "QThread destroyed while running"
        self.timeline.stop()
        self.write_settings()
        event.accept()

    # ==== drag and drop ============================================================================================
    def dragEnterEvent(self, event) -> None:
        urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
        if urls and urls[0].isLocalFile():
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event) -> None:
        urls = event.mimeData().urls()
        if urls and urls[0].isLocalFile():
            event.acceptProposedAction()
            self.open_path(urls[0].toLocalFile())


