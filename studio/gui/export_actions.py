"""The window's export actions, their toolbar button and the right-click menu of a tile.

Each action asks for a file (or folder) with a standard dialog, then hands the run to ``exporting``; a
cancelled dialog does nothing, a failure shows one message in the window's banner and leaves no file behind
(the core writes atomically), and success says what was written in the status bar.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QObject, QPoint
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QMenu, QToolButton

from ..core.errors import StudioError
from ..core.export import ANIMATION_SUFFIXES
from . import exporting, persistence
from .exporting import RunView
from .trajectory_dialog import TrajectoryDialog

PNG_FILTER = "PNG image (*.png)"
NPZ_FILTER = "NumPy arrays (*.npz)"


class ExportActions(QObject):
    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.trajectory_dialog: TrajectoryDialog | None = None
        self.tile_menu: QMenu | None = None
        self.image_action = self._action(
            "exportImageAction", "Export focused sample as &PNG…", lambda: self.export_sample_png(),
            "Save the focused sample at the step shown as a PNG that carries its recipe (open it again to make "
            "the same sample)", needs_image=True)
        self.samples_action = self._action(
            "exportSamplesAction", "Export &every sample as PNGs…", lambda: self.export_every_sample_png(),
            "Save each sample of the batch at the step shown as sample_NNNNN.png in a folder, each with its recipe",
            needs_image=True)
        self.grid_action = self._action(
            "exportGridAction", "Export &grid as PNG…", lambda: self.export_grid_png(),
            "Save the whole batch at the step shown as one PNG grid that carries the run's recipe", needs_image=True)
        self.animation_action = self._action(
            "exportGifAction", "Export trajectory &animation…", lambda: self.export_trajectory(),
            "Save the run step by step as an animated GIF, WebP or MP4: x_t, x0_pred or both; one sample or the "
            "grid")
        self.npz_action = self._action(
            "exportNpzAction", "Export trajectory as .&npz…", lambda: self.export_trajectory_npz(),
            "Save the run's numbers for analysis: x_t from x_T on, x0_pred, timesteps and settings (float32)")
        self.actions = [self.image_action, self.samples_action, self.grid_action, self.animation_action,
                        self.npz_action]

    def _action(self, name: str, text: str, slot, tip: str, needs_image: bool = False) -> QAction:
        action = QAction(text, self.window)
        action.setObjectName(name)
        action.setStatusTip(tip)
        action.setToolTip(tip)
        action.setData(needs_image)
        action.triggered.connect(slot)
        self.window.addAction(action)
        return action

    def toolbar_button(self) -> QToolButton:
        """"Export PNG" (the focused sample) with every export in its drop-down menu."""
        button = QToolButton()
        button.setObjectName("exportButton")
        button.setAccessibleName("Export")
        button.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)
        button.setDefaultAction(self.image_action)
        menu = QMenu(button)
        menu.setObjectName("exportMenu")
        menu.addActions(self.actions)
        button.setMenu(menu)
        button.setText("Export PNG")
        self.image_action.changed.connect(lambda: button.setText("Export PNG"))   # not the action's long text
        return button

    # --- what there is to export ---------------------------------------------------------------------------------
    def view(self) -> RunView | None:
        presenter = self.window.presenter
        if not presenter.has_steps or presenter.floats is None:
            return None
        return RunView(presenter.info, presenter.card, presenter.store, presenter.floats)

    def update(self) -> None:
        view = self.view()
        for action in self.actions:
            needs_image = bool(action.data())
            enabled = view is not None and (view.is_image or not needs_image)
            action.setEnabled(enabled)
            missing = "an image model has run" if needs_image else "a run has steps"
            action.setToolTip(action.statusTip() if enabled else f"{action.statusTip()} — available once {missing}")

    # --- the exports ---------------------------------------------------------------------------------------------
    def export_sample_png(self, path=None, index: int | None = None) -> bool:
        """PNG of sample ``index`` (default: the focused one) at the step shown."""
        view = self._image_view()
        if view is None:
            return False
        index = self.window.presenter.focused if index is None else index
        step = self.window.timeline.current
        name = f"sample-seed{view.info.seeds[index]}-step{exporting.shown_step(view, step)[0] + 1}.png"
        path = self._save_path("Export sample as PNG", name, PNG_FILTER, path)
        return path is not None and self._write(lambda: exporting.write_sample_png(path, view, step, index))

    def export_every_sample_png(self, folder=None) -> bool:
        view = self._image_view()
        if view is None:
            return False
        if folder is None:
            folder = QFileDialog.getExistingDirectory(self.window, "Export every sample into a folder",
                                                      self._folder())
            if not folder:
                return False
            persistence.write_text("export/folder", folder)
        step = self.window.timeline.current
        return self._write(lambda: exporting.write_every_sample_png(folder, view, step),
                           lambda paths: f"wrote {len(paths)} PNGs to {folder}")

    def export_grid_png(self, path=None) -> bool:
        view = self._image_view()
        if view is None:
            return False
        step = self.window.timeline.current
        name = f"grid-seed{view.info.seeds[0]}-step{exporting.shown_step(view, step)[0] + 1}.png"
        path = self._save_path("Export grid as PNG", name, PNG_FILTER, path)
        return path is not None and self._write(lambda: exporting.write_grid_png(path, view, step))

    def export_trajectory(self, sample: int | None = None) -> TrajectoryDialog | None:
        """Open the animation dialog (not blocking); its Export button asks for the file and writes it.
        ``sample``: preselect that sample (the tile menu); default: the focused one is offered."""
        view = self.view()
        if view is None:
            return None
        presenter = self.window.presenter
        chosen = (presenter.focused if sample is None else sample) if view.is_image else None
        text = "this sample" if chosen is None else \
            f"sample {chosen + 1} (seed {view.info.seeds[chosen]})"
        if self.trajectory_dialog is not None:
            self.trajectory_dialog.deleteLater()
        dialog = TrajectoryDialog(self.window, sample=chosen, sample_text=text,
                                  note=exporting.trajectory_note(view))
        if sample is not None:
            dialog.sample_radio.setChecked(True)
        dialog.accepted.connect(lambda: self._write_animation(dialog, view))
        self.trajectory_dialog = dialog
        dialog.open()
        return dialog

    def _write_animation(self, dialog: TrajectoryDialog, view: RunView) -> bool:
        dialog.remember()
        try:
            options = dialog.options()
        except StudioError as exc:
            self.window.show_error(f"Could not export: {exc}")
            return False
        which = f"sample{options.sample + 1}" if options.sample is not None else "grid"
        seed = view.info.seeds[options.sample if options.sample is not None else 0]   # the sample's own seed
        name = f"trajectory-{options.source}-{which}-seed{seed}{dialog.suffix()}"
        path = self._save_path("Export trajectory animation", name, dialog.file_filter(), None)
        if path is None:
            return False
        if Path(path).suffix.lower() not in ANIMATION_SUFFIXES:
            path += dialog.suffix()   # no suffix typed: the format chosen in the dialog
        return self._write(lambda: exporting.write_trajectory_animation(path, view, options))

    def export_trajectory_npz(self, path=None) -> bool:
        view = self.view()
        if view is None:
            return False
        path = self._save_path("Export trajectory as .npz", f"trajectory-seed{view.info.seeds[0]}.npz", NPZ_FILTER,
                               path)
        return path is not None and self._write(lambda: exporting.write_trajectory_arrays(path, view))

    # --- the tile menu -------------------------------------------------------------------------------------------
    def show_tile_menu(self, index: int, global_pos: QPoint) -> None:
        """Right-click on a tile: focus it and offer its exports."""
        view = self._image_view()
        if view is None:
            return
        self.window.presenter.focus_sample(index)
        if self.tile_menu is not None:
            self.tile_menu.deleteLater()
        menu = QMenu(self.window)
        menu.setObjectName("tileContextMenu")
        seed = view.info.seeds[index]
        png = menu.addAction(f"Export this sample (seed {seed}) as PNG…")
        png.setObjectName("exportTilePngAction")
        png.triggered.connect(lambda: self.export_sample_png(index=index))
        animation = menu.addAction("Export trajectory of this sample…")
        animation.setObjectName("exportTileTrajectoryAction")
        animation.triggered.connect(lambda: self.export_trajectory(sample=index))
        menu.addSeparator()
        menu.addAction(self.window.branch_action)   # the whole batch branches from the step shown
        self.tile_menu = menu
        menu.popup(global_pos)

    # --- helpers -------------------------------------------------------------------------------------------------
    def _image_view(self) -> RunView | None:
        view = self.view()
        return view if view is not None and view.is_image else None

    @staticmethod
    def _folder() -> str:
        return persistence.read_text("export/folder") or str(Path.home())

    def _save_path(self, title: str, name: str, file_filter: str, path) -> str | None:
        """``path`` if given, else the user's choice in a save dialog (None when cancelled)."""
        if path:
            return str(path)
        chosen, _ = QFileDialog.getSaveFileName(self.window, title, os.path.join(self._folder(), name), file_filter)
        if not chosen:
            return None
        persistence.write_text("export/folder", os.path.dirname(chosen))
        return chosen

    def _write(self, write, describe=None) -> bool:
        try:
            written = write()
        except (StudioError, OSError, ValueError) as exc:
            self.window.show_error(f"Could not export: {exc}")
            return False
        self.window.status_label.setText(describe(written) if describe else f"wrote {written}")
        return True
