"""The studio window: model, sampler and seed panels, the batch previews, the timeline, plots.

Built the way Qt's own mainwindows/application example builds a window (``window_layout``: actions, menus,
toolbar, docks; read settings on start, write them on close), with every dock named so its layout is
remembered. The window turns clicks into RunSettings and a RunSession (``run_session``) runs them on a worker
thread while the RunPresenter shows what comes back. ``MainWindow()`` needs no event loop to be built.

Settings that belong to one model (x0 clipping, variance, class, guidance: ``sampler_panel.MODEL_SETTINGS``) are
remembered per model (``persistence.model_key``) and come back with it; a model opened for the first time shows
them as its model card says. The rest (sampler, steps, seed, batch, device, network) stay as they are.
"""

from __future__ import annotations

import gc
import logging
import os
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QCloseEvent, QGuiApplication
from PySide6.QtWidgets import QFileDialog, QMainWindow, QMessageBox

from ..core.bundled import DEFAULT_MODEL, bundled_by_name, bundled_of_source
from ..core.errors import StudioError
from ..core.settings import RunSettings
from . import persistence, window_layout
from .classifiers import ClassifierChoice
from .cpu_threads import prepare_gui_thread
from .grid_dialog import grid_running, shutdown_grid
from .model_loading import ModelLoading, open_failed_text, release_freed_memory
from .panels.sampler_panel import model_settings_of
from .recipe_opening import device_choice, open_recipe_png
from .run_list_dock import RunListDock
from .run_presenter import RunPresenter
from .run_session import RunSession
from .study_dock import StudyDock
from .trust_dialog import open_trusting
from .worker import RunController

pg.setConfigOptions(imageAxisOrder="row-major")

logger = logging.getLogger("studio.gui")

FRAME_BUDGET_KEY = "run/frame_budget_mib"
OPEN_FOLDER_KEY = "open/folder"   # where the Open dialogs start: the folder of the last file opened with one
CHECKPOINT_FILTER = ("Checkpoints and studio PNGs (*.safetensors *.pt *.pth *.ckpt *.bin *.zip *.torchscript *.png);;"
                     "Checkpoints (*.safetensors *.pt *.pth *.ckpt *.bin *.zip *.torchscript);;"
                     "PNGs exported by the studio (*.png);;All files (*)")


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
        self._exact_sampler = None   # (what the sampler panel showed, the recipe's own sampler settings)
        self._recipe_shape = None    # an opened recipe's (seed, batch, rows per model call, CPU threads, RowLayout)
        self.opened_branch = None   # an opened branch PNG's (seed, batch, parent recipe, step k)
        self.show_step_after_run: int | None = None   # an opened PNG showed this step: go there after the run
        self.last_run_exception: BaseException | None = None   # what the last failed run raised
        self._model_key: str | None = None   # what the open model's own settings are remembered under
        self._model_settings = self._read_model_settings()   # model key -> its own settings, most recent first
        window_layout.build(self)
        self.presenter = RunPresenter(self.preview_xt, self.preview_x0, self.focus_view, self.timeline,
                                      self.plots_panel, self)
        self.runs = RunSession(self)
        self.loading = ModelLoading(self)   # opening checkpoints off the GUI thread (the dialogs, list, drops)
        self.study = StudyDock(self)        # quality studies on the open model (the Study dock)
        self.run_list = RunListDock(self)   # the runs since the window opened (the Runs dock)
        self.progress_bar.show_no_run()
        self._connect_signals()
        self._default_state = self.saveState(persistence.STATE_VERSION)
        self._read_window_settings()
        self._apply_run_settings(persistence.read_json("run/settings"))
        self._open_first_model(checkpoint, restore_last, open_default)
        self.refresh_model_list()
        self.update_actions()

    def _connect_signals(self) -> None:
        self.model_panel.source_chosen.connect(self._open_from_list)
        self.model_panel.open_file_requested.connect(self.open_checkpoint_dialog)
        self.model_panel.open_folder_requested.connect(self.open_folder_dialog)
        self.model_panel.run_device_changed.connect(self._show_device)
        self.seed_panel.budget_spin.valueChanged.connect(self._frame_budget_changed)
        self.presenter.step_shown.connect(lambda _: self.update_actions())
        self.loading.started.connect(lambda _: self._show_empty_state())
        self.loading.finished.connect(lambda *_: self._show_empty_state())
        for pane in (self.preview_xt, self.preview_x0):
            pane.grid.tile_menu_requested.connect(self.exports.show_tile_menu)

    def _open_first_model(self, checkpoint, restore_last: bool, open_default: bool) -> None:
        """The checkpoint asked for, else the last session's (``restore_last``), else the bundled default; a
        checkpoint that does not open leaves its message, and the default opens in its place."""
        restored = checkpoint is None and restore_last
        if restored:
            checkpoint = persistence.last_checkpoint()
        opened = checkpoint is not None and (self.open_checkpoint(checkpoint, implicit=True) if restored
                                             else self.open_path(checkpoint))
        if not opened and open_default and bundled_by_name(DEFAULT_MODEL).path.is_file():
            self.open_checkpoint(DEFAULT_MODEL, remember=checkpoint is None)
            if checkpoint is not None and self.denoiser is not None:
                self.error_banner.show_message(
                    f"{self.error_banner.text.text()}\nThe bundled {DEFAULT_MODEL!r} model was opened instead.")

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
            persistence.write_text(OPEN_FOLDER_KEY, os.path.dirname(os.path.abspath(path)))
            self.open_path(path, background=True)

    def open_path(self, path: str | os.PathLike, *, background: bool = False) -> bool:
        """A PNG the studio exported (its recipe) or a checkpoint; ``background``: a checkpoint (a recipe's too)
        loads off the GUI thread (``load_checkpoint``; True then says the load started, or the recipe's model was
        open already and its settings are applied)."""
        if is_png(path):
            return open_recipe_png(self, path, background=background)
        if background:
            self.load_checkpoint(path)
            return True
        return self.open_checkpoint(path)

    def open_folder_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open diffusers folder", self._dialog_folder())
        if path:
            persistence.write_text(OPEN_FOLDER_KEY, os.path.dirname(os.path.abspath(path)))
            self.load_checkpoint(path)

    def _dialog_folder(self) -> str:
        """Where the Open dialogs start: the folder of the last file (or folder) opened with one, else the most
        recent checkpoint's folder, else the home folder."""
        last = persistence.read_text(OPEN_FOLDER_KEY)
        if last and os.path.isdir(last):
            return last
        recent = persistence.recent_checkpoints()
        return str(Path(recent[0]).parent) if recent else str(Path.home())

    def _open_from_list(self, source: str) -> None:
        """A model chosen in the model list (one click): loaded in the background, unless it is the open one (or
        the one loading); if it cannot be opened the list goes back to showing the open model, so what is
        highlighted is what is loaded."""
        def same(other):
            return other is not None and persistence.model_key(source, "") == persistence.model_key(other, "")

        if (self.denoiser is not None and same(self.source) and not self.loading.busy) or same(self.loading.source):
            return
        self.load_checkpoint(source)

    def load_checkpoint(self, source: str | os.PathLike, *, remember: bool = True) -> None:
        """Open a checkpoint off the GUI thread (studio.gui.model_loading): the open model stays in use until the
        new one is ready; ``loading.finished`` says how it ended. A load in progress is abandoned."""
        self.loading.open(source, remember=remember)

    def open_checkpoint(self, source: str | os.PathLike, *, remember: bool = True, implicit: bool = False) -> bool:
        """Open a checkpoint path or bundled name. On failure the message shows and the current model stays.
        A TorchScript archive (code) opens only once the user trusts it (asked here, remembered by sha256);
        ``implicit`` (the last model, reopened at start) never loads one."""
        source = str(source)
        self.loading.cancel()   # this one replaces a checkpoint opening in the background
        QGuiApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            open_trusting(self, source, implicit)
        except Exception as exc:   # noqa: BLE001 -- an expected failure is a StudioError; anything else too shows
            self.show_error(open_failed_text(source, exc))   # a bug's traceback goes to the log
            return False
        finally:
            QGuiApplication.restoreOverrideCursor()
        # Only now that the new model is loaded: a run in progress stops (keeping its steps until the views
        # reset), so a file that fails to open leaves a run undisturbed.
        self.controller.shutdown()
        self.study.shutdown()
        self._model_opened(source, remember)
        return True

    def set_model(self, denoiser, source: str | None = None) -> None:
        """Use an in-memory denoiser (tests, scripts); ``source`` is only a name to remember."""
        self.loading.cancel()
        self.install_model(denoiser, source, remember=False)

    def install_model(self, denoiser, source: str | None, remember: bool) -> None:
        """Make a loaded denoiser the open model: a run in progress stops (it holds the old one), then the old
        model goes."""
        self.controller.shutdown()
        self.study.shutdown()
        self.models.denoiser = denoiser
        self._model_opened(source, remember)

    def _model_opened(self, source: str | None, remember: bool) -> None:
        self.remember_model_settings()   # the model shown until now keeps its own settings for next time
        self.source = source
        card = self.card
        self.error_banner.hide()
        self._exact_sampler = None         # an opened recipe's exact settings belong to its own model...
        self._recipe_shape = None
        self.show_step_after_run = None    # ...as does the step its PNG showed
        self.presenter.set_model(card, self.denoiser.schedule)
        self.progress_bar.show_no_run()
        self.model_panel.show_card(card)
        try:
            from ..core.checkpoints import card_lines

            self.model_panel.card_box.setToolTip("\n".join(card_lines(card)))
        except Exception:  # noqa: BLE001 -- the tooltip is a nicety
            pass
        self.refresh_classifier()
        self._model_key = persistence.model_key(source, card.name)
        misfits = self.sampler_panel.use_model(card, self._remembered().get(self._model_key))
        self.plots_panel.set_schedule(self.denoiser.schedule)
        self.centre_stack.setCurrentWidget(self.preview_splitter)
        if remember and source is not None:
            self._remember_source(source)
        self.refresh_model_list()
        self.setWindowTitle(f"{card.name} — Sampling Studio")
        self.status_label.setText(f"opened {card.name}" + (
            f" — remembered settings that do not fit it were left as the model card says: {'; '.join(misfits)}"
            if misfits else ""))
        gc.collect()   # the previous model (and its run) go now, not at some later collection
        release_freed_memory()   # ...and the memory they held goes back to the system
        self.update_actions()
        self.model_changed.emit(card)

    @staticmethod
    def _remember_source(source: str) -> None:
        """Reopened next session: a bundled model by its name, a file by its absolute path (a recent file)."""
        if bundled_of_source(source) is not None:
            persistence.write_text("model/last", bundled_of_source(source).name)
        elif bundled_by_name(source) is not None and not os.path.exists(source):
            persistence.write_text("model/last", source)
        else:
            persistence.remember_checkpoint(os.path.abspath(source))

    def refresh_model_list(self) -> None:
        current = self.source
        if current is not None and os.path.exists(current):
            current = os.path.abspath(current)
        self.model_panel.set_sources(persistence.recent_checkpoints(), current)

    def remember_model_settings(self) -> None:
        """Keep the open model's own settings (clipping, variance, class, guidance) under its key, in memory and
        in the settings file, first among the models remembered."""
        if self._model_key is None or self.sampler_panel.card is None:
            return
        values = self.sampler_panel.model_settings()
        remembered = self._remembered()
        if next(iter(remembered.items()), None) == (self._model_key, values):
            return   # as remembered already (each Generate asks): nothing to write
        remembered.pop(self._model_key, None)
        self._model_settings = {self._model_key: values, **remembered}
        persistence.write_model_settings(self._model_settings)

    def _remembered(self) -> dict[str, dict]:
        """Every model's own settings, most recent first: the settings file's (another studio window may have
        added some), or, until the first are written, what this window read at its start."""
        if persistence.has_model_settings():
            self._model_settings = persistence.model_settings()
        return self._model_settings

    @staticmethod
    def _read_model_settings() -> dict[str, dict]:
        """The models' own settings. A settings file from before they were kept per model has them in its run
        settings only: they belong to the model that was open last, and to no other."""
        if persistence.has_model_settings():
            return persistence.model_settings()
        stored, last = persistence.read_json("run/settings"), persistence.last_checkpoint()
        if not isinstance(stored, dict) or last is None:
            return {}
        try:
            settings = RunSettings.from_dict(stored)
        except StudioError:
            return {}
        return {persistence.model_key(last, ""): model_settings_of(settings.sampler, settings.guidance,
                                                                   settings.class_label)}

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
        self.runs.start()

    def cancel(self) -> None:
        """Esc: the run in progress, else a checkpoint opening in the background."""
        if self.controller.running:
            self.runs.cancel()
        else:
            self.loading.cancel()

    def _show_empty_state(self) -> None:
        """With no model open, the centre says what is happening: a checkpoint opening, or how to open one."""
        from html import escape

        from .model_loading import display_name

        if self.loading.busy and self.denoiser is None:
            name = escape(display_name(self.loading.source))
            self.empty_state.setText(window_layout.LOADING_STATE_TEXT.format(name=name))
        else:
            self.empty_state.setText(window_layout.EMPTY_STATE_TEXT)

    def _frame_budget_changed(self, mib: int) -> None:
        """The Seed panel's frame memory: the budget of the next run's trajectory store."""
        self.presenter.budget_bytes = int(mib) * 2**20
        if hasattr(self, "run_list"):
            self.run_list.set_budget(self.presenter.budget_bytes)

    def _show_device(self) -> None:
        if not self.controller.running:
            self.device_label.setText(f"{self.model_panel.device()}, {self.model_panel.dtype()}")
            self.model_panel.show_runs_on(None)

    def update_actions(self) -> None:
        """Enable what applies now: Generate with a model and no run, Cancel during one, exports with steps."""
        running = self.controller.running
        has_model = self.denoiser is not None
        self.generate_action.setEnabled(has_model and not running and not self.study.running
                                        and not grid_running(self))
        self.cancel_action.setEnabled(running or self.loading.busy)
        self.open_action.setEnabled(True)
        self.exports.update()
        if hasattr(self, "run_list"):
            shown = self.run_list.shown
            self.branch_action.setEnabled(has_model and not running and shown is not None and shown.has_frames)
            self.run_list.update_buttons()
        if not has_model:
            self.centre_stack.setCurrentWidget(self.empty_state)
        for button, action in ((self.generate_button, self.generate_action), (self.cancel_button, self.cancel_action)):
            button.setEnabled(action.isEnabled())

    def show_error(self, message: str, details: str = "") -> None:
        """An expected failure: say what went wrong, keep everything else as it is. ``details`` (an exception's
        type, message and traceback) are offered behind the banner's "Details…" button."""
        self.error_banner.show_message(message, details)
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

    def apply_settings(self, settings: RunSettings, exact_sampler: bool = False, threads: int | None = None,
                       layout=None) -> None:
        """Show ``settings`` in the panels. ``exact_sampler``: run its sampler settings exactly (those the panel
        cannot show too), and in its model batch, on ``threads`` CPU threads and in the rows ``layout`` says
        (a RowLayout), until the sampler panel, seed or batch is changed (an opened recipe: its sample comes
        back bit for bit)."""
        self.sampler_panel.apply(settings.sampler, settings.guidance, settings.class_label)
        self.sampler_panel.set_network(settings.network)
        self.seed_panel.apply(settings.seed, settings.batch_size)
        self.model_panel.set_device(device_choice(settings.device), settings.dtype)
        self._exact_sampler = (self.sampler_panel.sampler_settings(), settings.sampler) if exact_sampler else None
        self._recipe_shape = ((settings.seed, settings.batch_size, settings.model_batch, threads, layout)
                              if exact_sampler else None)

    def model_batch_for(self, settings: RunSettings) -> int:
        """The rows per model call of an image run: the batch, as `studio sample` (a run computes the samples it
        shows), or, while the seed and batch are an opened recipe's, the rows its sample was made in."""
        shape = self._opened_recipe_shape(settings)
        return shape[2] if shape is not None and shape[2] else settings.batch_size

    def threads_for(self, settings: RunSettings) -> int | None:
        """The CPU threads a run asks for: an opened recipe's (while its seed and batch are shown), else None
        (the worker's own share, see studio.gui.cpu_threads)."""
        shape = self._opened_recipe_shape(settings)
        return shape[3] if shape is not None else None

    def layout_for(self, settings: RunSettings):
        """The RowLayout a run asks for: an opened recipe's (while its seed and batch are shown), else None."""
        shape = self._opened_recipe_shape(settings)
        return shape[4] if shape is not None else None

    def _opened_recipe_shape(self, settings: RunSettings):
        shape = self._recipe_shape
        return shape if shape is not None and shape[:2] == (settings.seed, settings.batch_size) else None

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
        self.remember_model_settings()
        try:
            persistence.write_json("run/settings", self.current_settings().to_dict())
        except StudioError:
            pass   # an invalid combination is not worth remembering

    def reset_layout(self) -> None:
        self.restoreState(self._default_state, persistence.STATE_VERSION)
        for dock in window_layout.docks(self):
            dock.show()

    def about(self) -> None:
        from .. import __version__

        QMessageBox.about(self, "About Sampling Studio", (
            f"<h3>Sampling Studio {__version__}</h3><p>Look inside DDPM/DDIM diffusion sampling.</p>"
            "<p><b>Shortcuts</b>: Ctrl+Enter generate · Esc cancel · Left/Right step · Home/End first/last step · "
            "Space play/pause · Ctrl+O open</p><p>Home shows step 0: x_T, the starting noise.</p>"))

    def closeEvent(self, event: QCloseEvent) -> None:
        self.loading.shutdown()      # a load in progress is abandoned (its thread drops what it built)
        self.controller.shutdown()   # stop the worker and wait for its thread: no "QThread destroyed while running"
        self.study.close()           # ...the study's too, and its temporary files go
        shutdown_grid(self)          # ...and an X/Y grid's
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
            self.open_path(urls[0].toLocalFile(), background=True)


