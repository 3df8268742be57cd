"""The Runs dock: every run since the window opened (``run_list``), shown again on a click, renamed, pinned,
deleted, branched from a step ("Branch from here"), compared, saved to one file and opened again.

A run is added when it ends with steps (finished or cancelled) and selected without being painted again. Picking
another run shows it in the previews, timeline and plots (not while a run streams in). "Branch from here" takes
the shown run's float x_t at the timeline's step k (0: x_T) and the settings of its BranchDialog, and runs the
remaining steps on the open model (the parent's own model only); the branch is listed as its parent's child.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QGridLayout, QInputDialog, QLabel, QListWidget, QListWidgetItem,
                               QPushButton, QVBoxLayout, QWidget)

from ..core.errors import SettingsError
from .run_list import KeptRun, RunList
from .run_list_file import model_key
from .views.timeline import X_T
from .worker import CANCELLED, FINISHED

ICON_SIZE = 48
MAX_COMPARED = 4


class RunListPanel(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("runListPanel")
        self.list = QListWidget()
        self.list.setObjectName("runList")
        self.list.setAccessibleName("Runs made since the window opened")
        self.list.setIconSize(QSize(ICON_SIZE, ICON_SIZE))
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.list.setWordWrap(True)
        self.memory_label = QLabel()
        self.memory_label.setObjectName("runListMemory")
        self.memory_label.setWordWrap(True)
        self.buttons = {}
        # three to a row: the dock shares the right column with the plots and must stay narrow on a laptop
        buttons = QGridLayout()
        for place, (name, text, tip) in enumerate((
                ("runRename", "Rename", "Rename the selected run"),
                ("runPin", "Pin", "Pin the selected run: it keeps its frames whatever the budget"),
                ("runDelete", "Delete", "Remove the selected runs from the list"),
                ("runBranch", "Branch…", "Branch the shown run from the timeline's step"),
                ("runCompare", "Compare", "Compare the 2 to 4 selected runs"),
                ("runListSave", "Save list…", "Save the runs of the open model to one file"),
                ("runListOpen", "Open list…", "Add the runs of a saved run list to this one"))):
            button = QPushButton(text)
            button.setObjectName(name)
            button.setToolTip(tip)
            buttons.addWidget(button, place // 3, place % 3)
            self.buttons[name] = button
        layout = QVBoxLayout(self)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.memory_label)


class RunListDock(QObject):
    """The run list's behaviour in the window (``window.run_list``)."""

    run_shown = Signal(object)   # the KeptRun now shown

    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.panel: RunListPanel = window.run_list_panel
        self.runs = RunList(window.presenter.budget_bytes)
        self.shown: KeptRun | None = None
        self.compare_view = None
        self._branch_of: tuple[KeptRun, int] | None = None   # the branch being run: (parent, step)
        panel = self.panel
        panel.list.itemSelectionChanged.connect(self._selection_changed)
        panel.buttons["runRename"].clicked.connect(lambda: self.rename_dialog())
        panel.buttons["runPin"].clicked.connect(lambda: self.toggle_pin())
        panel.buttons["runDelete"].clicked.connect(lambda: self.delete_selected())
        panel.buttons["runBranch"].clicked.connect(lambda: self.branch_from_here())
        panel.buttons["runCompare"].clicked.connect(lambda: self.compare_selected())
        panel.buttons["runListSave"].clicked.connect(lambda: self.save())
        panel.buttons["runListOpen"].clicked.connect(lambda: self.open())
        window.run_started.connect(self.update_buttons)
        window.run_finished.connect(self._run_finished)
        self.update_buttons()

    # --- keeping runs ----------------------------------------------------------------------------------------------
    def set_budget(self, budget_bytes: int) -> None:
        self.runs.budget_bytes = int(budget_bytes)
        self._dropped(self.runs.enforce_budget(self.shown))

    def _run_finished(self, outcome) -> None:
        presenter = self.window.presenter
        branch_of, self._branch_of = self._branch_of, None
        if outcome.status not in (FINISHED, CANCELLED) or not presenter.has_steps:
            self.update_buttons()
            return
        run = presenter.kept_run(self.runs.next_number(), outcome.seconds, outcome.status)
        if branch_of is not None:
            from .branch_timeline import join_parent_steps

            run.parent, run.at_step = branch_of
            if join_parent_steps(run):   # the timeline shows the parent's first steps, then the branch's
                self.add(run)
                self.show(run)
                return
        self.add(run)

    def add(self, run: KeptRun, showing: bool = True) -> None:
        """List ``run``; ``showing``: the presenter shows it already (a run that just ended)."""
        if showing:
            self.shown = run
        dropped = self.runs.add(run, self.shown)
        item = QListWidgetItem(run.label)
        item.setData(Qt.ItemDataRole.UserRole, run.number)
        item.setToolTip(run.label)
        if run.thumbnail is not None:
            item.setIcon(QIcon(_pixmap(run.thumbnail)))
        self.panel.list.addItem(item)
        self._select(run)
        self._dropped(dropped)

    def _dropped(self, runs: list[KeptRun]) -> None:
        for run in runs:
            self._refresh(run)
        self._show_memory()

    def _show_memory(self) -> None:
        runs = self.runs
        self.panel.memory_label.setText(f"{len(runs.runs)} runs · frames {runs.nbytes / 2**20:.1f} MiB of "
                                        f"{runs.budget_bytes / 2**20:.0f} MiB (Seed panel's frame memory)")

    # --- the list --------------------------------------------------------------------------------------------------
    def item_of(self, run: KeptRun) -> QListWidgetItem | None:
        for row in range(self.panel.list.count()):
            item = self.panel.list.item(row)
            if item.data(Qt.ItemDataRole.UserRole) == run.number:
                return item
        return None

    def run_of(self, item: QListWidgetItem) -> KeptRun | None:
        number = item.data(Qt.ItemDataRole.UserRole)
        return next((run for run in self.runs.runs if run.number == number), None)

    def selected(self) -> list[KeptRun]:
        runs = [self.run_of(item) for item in self.panel.list.selectedItems()]
        return sorted((run for run in runs if run is not None), key=lambda run: run.number)

    def _select(self, run: KeptRun) -> None:
        item = self.item_of(run)
        lst = self.panel.list
        lst.blockSignals(True)
        lst.clearSelection()
        if item is not None:
            item.setSelected(True)
            lst.setCurrentItem(item)
        lst.blockSignals(False)
        self.update_buttons()

    def _refresh(self, run: KeptRun) -> None:
        item = self.item_of(run)
        if item is not None:
            item.setText(run.label)
            item.setToolTip(run.label)

    def _selection_changed(self) -> None:
        selected = self.selected()
        if len(selected) == 1 and selected[0] is not self.shown and not self.window.controller.running:
            self.show(selected[0])
        self.update_buttons()

    def show(self, run: KeptRun) -> None:
        """Show a kept run in the window's views."""
        self.shown = run
        self.window.presenter.show_kept(run)
        self.window.update_actions()
        self.run_shown.emit(run)

    def update_buttons(self) -> None:
        selected = self.selected()
        running = self.window.controller.running
        buttons = self.panel.buttons
        buttons["runRename"].setEnabled(len(selected) == 1)
        buttons["runPin"].setEnabled(len(selected) == 1)
        buttons["runPin"].setText("Unpin" if len(selected) == 1 and selected[0].pinned else "Pin")
        buttons["runDelete"].setEnabled(bool(selected) and not running)
        buttons["runBranch"].setEnabled(self.shown is not None and not running)
        buttons["runCompare"].setEnabled(2 <= len(selected) <= MAX_COMPARED)
        card = self.window.card
        buttons["runListSave"].setEnabled(card is not None and any(model_key(r.card) == model_key(card)
                                                                   for r in self.runs.runs))
        buttons["runListOpen"].setEnabled(card is not None and not running)

    # --- rename, pin, delete ---------------------------------------------------------------------------------------
    def rename_dialog(self) -> None:
        selected = self.selected()
        if len(selected) != 1:
            return
        name, ok = QInputDialog.getText(self.window, "Rename run", "Name:", text=selected[0].name)
        if ok:
            self.rename(selected[0], name)

    def rename(self, run: KeptRun, name: str) -> None:
        name = " ".join(name.split())
        if not name:
            self.window.show_error("a run's name cannot be empty")
            return
        run.name = name
        self._refresh(run)
        for other in self.runs.runs:   # its branches name it
            if other.parent is run:
                self._refresh(other)
        if self.compare_view is not None and any(compared is run for compared in self.compare_view.runs):
            self.compare_view.follow_names()

    def toggle_pin(self, run: KeptRun | None = None) -> None:
        run = run or (self.selected() or [None])[0]
        if run is None:
            return
        run.pinned = not run.pinned
        self._refresh(run)
        self._dropped(self.runs.enforce_budget(self.shown))
        self.update_buttons()

    def delete_selected(self) -> None:
        if self.window.controller.running:
            return
        for run in self.selected():
            self.delete(run)

    def delete(self, run: KeptRun) -> None:
        children = [other for other in self.runs.runs if other.parent is run]
        view = self.compare_view
        if view is not None and any(compared is run for compared in view.runs):   # it must not show a deleted run
            view.close()
            view.deleteLater()
            self.compare_view = None
        self.runs.remove(run)
        item = self.item_of(run)
        if item is not None:
            self.panel.list.takeItem(self.panel.list.row(item))
        for child in children:
            self._refresh(child)
        if run is self.shown:
            self.shown = None
            self.window.presenter.clear()
            self.window.update_actions()
        self._show_memory()
        self.update_buttons()

    # --- branching -------------------------------------------------------------------------------------------------
    def branch_step(self) -> int:
        """The step k the timeline shows: the x_t after k steps (0: x_T)."""
        current = self.window.timeline.current
        return 0 if current == X_T else current + 1

    def branch_from_here(self, settings=None) -> bool:
        """Branch the shown run at the timeline's step: the dialog's settings (or ``settings``: RunSettings, no
        dialog). False, with the reason shown, when it cannot be done."""
        from ..core.settings import RunSettings

        window, run = self.window, self.shown
        if run is None or window.controller.running:
            return False
        k = self.branch_step()
        try:
            run, k = self._branch_target(run, k)
            start = self._branch_start(run, k)
            parent_settings = RunSettings.from_dict(run.info.record["settings"])
        except SettingsError as exc:
            window.show_error(str(exc))
            return False
        if settings is None:
            from .branch_dialog import BranchDialog

            dialog = BranchDialog(parent_settings, k, run.card, run.name, window)
            if not dialog.exec():
                return False
            try:
                settings = dialog.settings()
            except SettingsError as exc:
                window.show_error(f"the branch's settings do not work: {exc}")
                return False
        settings = settings.replace(batch_size=len(run.info.seeds), device=window.model_panel.device(),
                                    dtype=window.model_panel.dtype())
        self._branch_of = (run, k)
        window.runs.start(settings, branch=start)
        if not window.controller.running:   # it did not start: the message is shown
            self._branch_of = None
            return False
        return True

    def _branch_target(self, run: KeptRun, k: int) -> tuple[KeptRun, int]:
        """The run and step a branch starts from: a branch's own steps are not branched again (its recipes could
        not be made again), but the steps it shares with its parent are the parent's."""
        if run.parent is None and "branch" not in run.info.record:
            return run, k
        parent = run.parent if run.parent in self.runs.runs else None
        if parent is not None and run.shared_steps and k <= run.shared_steps:
            return parent, k
        where = (f"steps 0 to {run.shared_steps} are {parent.name}'s: branch there, or from {parent.name} itself"
                 if parent is not None and run.shared_steps else "branch from its parent run")
        raise SettingsError(f"{run.name} is itself a branch, and a branch is not branched again; {where}")

    def _branch_start(self, run: KeptRun, k: int):
        from ..core.branch import BranchStart

        window = self.window
        steps = len(run.timesteps)
        if run.card is not window.card and run.card.sha256 != getattr(window.card, "sha256", None):
            raise SettingsError(f"{run.name} was made with {run.card.name!r}, not the open model: open its model "
                                "to branch from it")
        if run.status != FINISHED:
            raise SettingsError(f"{run.name} was cancelled: only a finished run can be branched")
        if k >= steps:
            raise SettingsError(f"step {k} is {run.name}'s last (it has {steps} steps): nothing is left to branch "
                                f"from there; move the timeline to a step from 0 to {steps - 1}")
        x_t = run.x_t_at(k)
        if x_t is None:
            raise SettingsError(f"{run.name}'s float frames were not kept (memory budget), so it cannot be "
                                "branched; raise the frame memory and run it again")
        return BranchStart.from_record(run.info.record, k, x_t, run.info.x_T, parent={"record": run.info.record})

    # --- the list as a file -----------------------------------------------------------------------------------------
    def save(self, path=None) -> bool:
        """Save the runs of the open model to one file (a dialog asks where unless ``path`` is given)."""
        from ..core.run_archive import ARCHIVE_SUFFIX
        from .run_list_file import save_runs

        window = self.window
        if window.card is None:
            return False
        path = path or self._file_dialog(True, ARCHIVE_SUFFIX)
        if not path:
            return False
        try:
            count = save_runs(path, self.runs.runs, window.card)
        except SettingsError as exc:
            window.show_error(str(exc))
            return False
        others = len(self.runs.runs) - count
        window.status_label.setText(f"saved {count} runs to {path}" + (
            f" ({others} of other models are not in it: one file holds one model's runs)" if others else ""))
        return True

    def open(self, path=None) -> bool:
        """Add the runs of a saved list to this one (they must be of the open model)."""
        import itertools

        from ..core.run_archive import ARCHIVE_SUFFIX
        from .run_list_file import open_runs

        window = self.window
        if window.card is None or window.controller.running:
            return False
        path = path or self._file_dialog(False, ARCHIVE_SUFFIX)
        if not path:
            return False
        try:
            runs = open_runs(path, window.card, window.denoiser.schedule,
                             (self.runs.next_number() for _ in itertools.count()))
        except SettingsError as exc:
            window.show_error(str(exc))
            return False
        for run in runs:
            self.add(run, showing=False)
        if runs:
            self.show(runs[-1])
        window.status_label.setText(f"opened {len(runs)} runs from {path}")
        return True

    def _file_dialog(self, saving: bool, suffix: str) -> str:
        from PySide6.QtWidgets import QFileDialog

        from . import persistence

        folder = persistence.read_text("export/folder") or ""
        pattern = f"Run lists (*{suffix});;All files (*)"
        if saving:
            path, _ = QFileDialog.getSaveFileName(self.window, "Save run list", f"{folder}/runs{suffix}", pattern)
            if path and not path.endswith(suffix) and "." not in path.rsplit("/", 1)[-1]:
                path += suffix
        else:
            path, _ = QFileDialog.getOpenFileName(self.window, "Open run list", folder, pattern)
        return path

    # --- comparing -------------------------------------------------------------------------------------------------
    def compare_selected(self) -> None:
        selected = self.selected()
        if not 2 <= len(selected) <= MAX_COMPARED:
            self.window.show_error(f"pick 2 to {MAX_COMPARED} runs to compare (selected: {len(selected)})")
            return
        self.compare(selected)

    def compare(self, runs: list[KeptRun]) -> None:
        from .compare_view import CompareView

        if self.compare_view is not None:
            self.compare_view.close()
            self.compare_view.deleteLater()
        self.compare_view = CompareView(runs, self.window)
        self.compare_view.show()


def _pixmap(picture) -> QPixmap:
    import numpy as np

    picture = np.ascontiguousarray(picture)
    height, width = picture.shape[:2]
    image = QImage(picture.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()
    return QPixmap.fromImage(image).scaled(ICON_SIZE, ICON_SIZE, Qt.AspectRatioMode.KeepAspectRatio,
                                           Qt.TransformationMode.FastTransformation)
