"""The window's Study dock: the panel's choices and the open model become a study job (``studio.studies``, as
``studio study`` makes one), run by a StudyController while the panel fills in.

A study uses the open model, the seed panel's seed (sample i of every cell: seed S + i), and the sampler panel's
class, guidance and device; its files go to a temporary folder that lives as long as the study is shown (the
exports save what a user keeps). One thing uses the model at a time: a study does not start during a run,
Generate waits for the study, and opening another model stops it. Opening a cell puts its exact settings, seeds
and row layout into the panels and runs it: the run's final samples are the cell's, bit for bit.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QFileDialog

from ..core.atomic import atomic_path
from ..core.bundled import bundled_by_name, bundled_of_source
from ..core.errors import SettingsError, StudioError
from ..core.settings import RunSettings
from .worker import FAILED

PLOT_FILTER = "PNG image (*.png);;SVG image (*.svg)"
TABLE_FILTER = "CSV table (*.csv)"


class StudyDock(QObject):
    def __init__(self, window):
        super().__init__(window)
        from .study_runner import StudyController

        self.window = window
        self.panel = window.study_panel
        self.controller = StudyController(self)
        self.folder: Path | None = None   # the shown study's files (a temporary folder)
        self.job = None
        panel, controller = self.panel, self.controller
        panel.start_requested.connect(self.start)
        panel.cancel_requested.connect(self.controller.cancel)
        panel.cell_activated.connect(self.open_cell)
        panel.export_plot_requested.connect(self._export_plot_dialog)
        panel.export_table_requested.connect(self._export_table_dialog)
        controller.stage.connect(panel.status_label.setText)
        controller.prepared.connect(self._prepared)
        controller.row_ready.connect(panel.add_row)
        controller.calls_done.connect(panel.show_progress)
        controller.finished.connect(self._finished)
        window.model_changed.connect(self.use_model)

    @property
    def running(self) -> bool:
        return self.controller.running

    # --- the model -------------------------------------------------------------------------------------------------
    def kind(self) -> str:
        from ..studies.study_setup import model_kind

        source = self.window.source
        bundled = (bundled_of_source(source) or bundled_by_name(source)) if source else None
        return model_kind(self.window.card, bundled.name if bundled is not None else "")

    def use_model(self, card) -> None:
        from ..studies.study_metrics import metric_availability

        self.panel.set_metrics_available(metric_availability(card, self.kind()))
        self.panel.set_running(self.running)

    # --- running ---------------------------------------------------------------------------------------------------
    def make_job(self):
        """The panel's choices on the open model as a study job (SettingsError names the first problem)."""
        from ..studies.study_setup import StudyRequest, build_job

        window, panel = self.window, self.panel
        if window.denoiser is None:
            raise SettingsError("open a model first")
        samplers = panel.checked_samplers()
        if not samplers:
            raise SettingsError("check at least one sampler")
        metrics = panel.checked_metrics()
        if not metrics:
            raise SettingsError("check at least one metric")
        steps = _numbers(panel.steps_edit.text(), int, "Steps")
        etas = _numbers(panel.eta_edit.text(), float, "DDIM eta") if "ddim" in samplers else []
        settings = window.current_settings()
        base = RunSettings(seed=settings.seed, batch_size=1, class_label=settings.class_label,
                           guidance=settings.guidance, device=settings.device, dtype=settings.dtype,
                           network="plain")
        classifier = window.runs._classifier(settings, window.card)[1]   # classifier guidance's, else None
        request = StudyRequest(samplers=samplers, steps=steps, etas=etas, metrics=metrics,
                               num_samples=panel.samples_spin.value(), seed=settings.seed)
        folder = Path(tempfile.mkdtemp(prefix="studio-study-"))
        try:
            job = build_job(window.denoiser, self.kind(), request, base, folder, classifier=classifier,
                            plan_extra={"checkpoint": window.source or window.card.name})
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return job

    def start(self) -> None:
        window, panel = self.window, self.panel
        if self.running:
            return
        if window.controller.running:
            panel.status_label.setText("a run is in progress: cancel it or let it end, then start the study")
            return
        if getattr(window, "grid_dialog", None) is not None and window.grid_dialog.running:
            panel.status_label.setText("an X/Y grid is in progress: cancel it or let it end, then start the study")
            return
        try:
            job = self.make_job()
        except StudioError as exc:
            panel.status_label.setText(f"not started: {exc}")
            return
        self._drop_folder()
        self.folder, self.job = job.out, job
        panel.begin(job.metrics.names, {})
        panel.status_label.setText(f"{len(job.cells)} cells of {job.num_samples} samples")
        self.controller.start(job)
        panel.set_running(True)
        window.update_actions()

    def _prepared(self, floors: dict) -> None:
        self.panel.floors = {name: value for name, value in floors.items()
                             if value is not None and math.isfinite(value)}
        self.panel.redraw()

    def _finished(self, status: str, message: str) -> None:
        panel = self.panel
        self.job = None
        if status == FAILED:
            panel.status_label.setText(f"the study failed: {message}")
            self.window.show_error(f"The study failed: {message}", self.controller.last_traceback)
        else:
            panel.status_label.setText(message)
        panel.set_running(False)
        self.window.update_actions()

    def cancel(self) -> None:
        self.controller.cancel()

    def shutdown(self) -> None:
        """Stop a study and wait for its thread (another model opens, the window closes)."""
        self.controller.shutdown()

    def close(self) -> None:
        self.shutdown()
        self._drop_folder()

    def _drop_folder(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    # --- a cell as a run -------------------------------------------------------------------------------------------
    def open_cell(self, row: dict) -> None:
        """The cell's settings, seeds and rows into the panels, and Generate: its samples, bit for bit."""
        window = self.window
        if self.running or window.controller.running:
            self.panel.status_label.setText(f"{row['key']}: wait for the study or run in progress to end")
            return
        run_cell_again(window, row["record"], f"study cell {row.get('key')}")

    # --- exports ---------------------------------------------------------------------------------------------------
    def export_plot(self, path: str | Path) -> Path:
        """The plot as shown, PNG or SVG by the file's suffix, written atomically."""
        from pyqtgraph.exporters import ImageExporter

        path = Path(path)
        item = self.panel.plot.getPlotItem()
        if path.suffix.lower() == ".svg":
            with atomic_path(path) as tmp:
                _write_svg(self.panel.plot, tmp)
        else:
            if path.suffix.lower() != ".png":
                path = path.with_suffix(".png")
            exporter = ImageExporter(item)
            # twice the plot's size on screen: the same look (text scales with the picture), sharper
            exporter.parameters()["width"] = 2 * max(1, int(self.panel.plot.width()))
            image = exporter.export(toBytes=True)
            with atomic_path(path) as tmp:
                if not image.save(str(tmp), "PNG"):
                    raise OSError(f"the plot could not be written to {path}")
        return path

    def export_table(self, path: str | Path) -> Path:
        """The table as study.csv from `studio study` has it."""
        from ..studies.study_files import study_csv

        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.write_text(study_csv(self.panel.rows, self.panel.metric_names))
        return path

    def _export_plot_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self.window, "Export the study plot", "study.png", PLOT_FILTER)
        if path:
            self._export(self.export_plot, path)

    def _export_table_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self.window, "Export the study table", "study.csv", TABLE_FILTER)
        if path:
            self._export(self.export_table, path)

    def _export(self, write, path: str) -> None:
        try:
            written = write(path)
        except OSError as exc:
            self.window.show_error(f"could not export to {path}: {exc}")
            return
        self.panel.status_label.setText(f"wrote {written}")


def run_cell_again(window, record: dict, name: str) -> bool:
    """A cell of shared model calls (a study's, an X/Y grid's) as a run in the window: its record's settings,
    seeds, rows per call, row offset and CPU threads into the panels, and Generate: its samples, bit for bit.
    False, with a message, when the record cannot be read."""
    from ..core.models.fixed_batch import RowLayout

    try:
        settings = RunSettings.from_dict(record["settings"])
        layout = RowLayout(offset=int(record.get("row_offset", 0)))
    except (StudioError, KeyError, TypeError, ValueError) as exc:
        window.show_error(f"{name} cannot be opened: {exc}")
        return False
    window.apply_settings(settings, exact_sampler=True, threads=record.get("threads"), layout=layout)
    window.generate()
    window.status_label.setText(f"{name}: its settings and seeds, run again")
    return True


def _write_svg(widget, path: Path) -> None:
    """The widget painted into an SVG file by Qt's own SVG generator (vector lines and text; pyqtgraph's SVG
    exporter cannot read the paths this Qt writes)."""
    from PySide6.QtCore import QRect, QSize
    from PySide6.QtGui import QPainter
    from PySide6.QtSvg import QSvgGenerator

    generator = QSvgGenerator()
    generator.setFileName(str(path))
    generator.setSize(QSize(widget.width(), widget.height()))
    generator.setViewBox(QRect(0, 0, widget.width(), widget.height()))
    generator.setTitle("Sampling Studio study")
    painter = QPainter(generator)
    try:
        widget.render(painter)
    finally:
        painter.end()
    if not path.is_file() or path.stat().st_size == 0:
        raise OSError(f"the SVG could not be written to {path}")


def _numbers(text: str, kind, what: str) -> list:
    parts = [part.strip() for part in str(text).split(",") if part.strip()]
    if not parts:
        raise SettingsError(f"{what} is empty: give at least one value")
    try:
        return [kind(part) for part in parts]
    except ValueError:
        raise SettingsError(f"{what} takes {kind.__name__} values separated by commas, got {text!r}") from None
