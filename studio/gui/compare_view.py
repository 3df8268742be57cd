"""Compare two to four kept runs side by side (``CompareView``, opened by the Runs dock's Compare button).

One row per run: its name and settings, its x_t grid and x0_pred grid at the step shown, and the focused sample's
x_t and x0_pred big. One timeline drives every row: the slider ``compareTimeline`` goes from 0 to 1000, the
fraction of the denoising done, and the alignment ``compareAlign`` says how a position picks each run's step:

- "fraction of steps": a run of S steps shows step i (0-based) with i + 1 = ceil(position / 1000 * S), at least
  its first step: the first step by which that fraction of its steps is done (the end: every run's last step).
- "timestep": the position is the timestep t = (T - 1) * (1 - position / 1000), T the largest of the runs' models'
  training timesteps (0: t = T - 1, 1000: t = 0); each run shows the last step whose timestep is >= t (the latest
  step it took without going below t), or its first step when even that one is below t.

A run that stopped early never shows past its last step done. The focused sample's |x0_pred difference| between
two runs (``compareDiffA``, ``compareDiffB``) at their steps shown is a grey picture (white: the largest
difference, said in ``compareDiffScale``); it needs both runs' float frames. A run whose frames were dropped (memory
budget) shows its final samples only and says so. The plots overlay the runs, each in its own colour: the
schedule's alpha_bar against t with the timesteps each run visited and a cursor at its step shown, and each run's
per-step std of x_t (solid) and change of x0_pred (dashed) against the fraction of its steps.

Exports: one PNG (a labelled row per run at the timeline's position, every run's recipe as JSON in the text
chunk ``sampling-studio-compare``) and one animated GIF in which every run advances together over the fraction
timeline. Vector models have no pictures: their rows say so and a scatter shows each run's x_t at its step shown.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (QComboBox, QDialog, QFileDialog, QGridLayout, QHBoxLayout, QLabel, QPushButton,
                               QScrollArea, QSlider, QSpinBox, QSplitter, QVBoxLayout, QWidget)

from ..core.errors import StudioError
from ..core.preview import GridLayout, make_grid, scale_nearest, to_uint8_tiles

POSITIONS = 1000
FRACTION, TIMESTEP = "fraction of steps", "timestep"
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e")
COLOURS_RGB = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14))
GRID_PIXELS = 128          # a row's grid pictures are blown up to about this height on screen
SAMPLE_PIXELS = 112        # the focused sample's pictures
EXPORT_GRID_PIXELS = 160   # ... and in the exported PNG and GIF
ANIMATION_FRAMES = 24
PNG_FILTER = "PNG image (*.png)"
GIF_FILTER = "GIF animation (*.gif)"
RECIPES_KEY = "sampling-studio-compare"
NO_FLOATS = "the difference needs float frames"


# --- which step a run shows -----------------------------------------------------------------------------------------
def steps_done(run) -> int:
    return run.store.steps_done if run.store is not None else run.steps_done


def step_at_fraction(num_steps: int, done: int, position: int) -> int | None:
    """The step (0-based) a run of ``num_steps`` steps (``done`` of them done) shows at ``position`` (0..1000)."""
    if done < 1:
        return None
    step = -(-int(position) * num_steps // POSITIONS) - 1   # ceil(position * S / 1000) - 1
    return min(max(step, 0), done - 1)


def timestep_at(position: int, num_train_timesteps: int) -> float:
    return (num_train_timesteps - 1) * (1.0 - position / POSITIONS)


def step_at_timestep(timesteps: np.ndarray, done: int, t: float) -> int | None:
    """The last step done whose timestep is >= ``t`` (the first step when none is)."""
    if done < 1:
        return None
    reached = np.nonzero(np.asarray(timesteps[:done], dtype=float) >= t - 1e-9)[0]
    return int(reached[-1]) if len(reached) else 0


def shown_steps(runs, position: int, align: str = FRACTION) -> list[int | None]:
    """Each run's step shown at ``position`` under ``align`` (None: a run without steps)."""
    if align == TIMESTEP:
        t = timestep_at(position, max(run.card.num_train_timesteps for run in runs))
        return [step_at_timestep(run.timesteps, steps_done(run), t) for run in runs]
    return [step_at_fraction(len(run.timesteps), steps_done(run), position) for run in runs]


# --- pictures --------------------------------------------------------------------------------------------------------
def grid_of(tiles: np.ndarray) -> np.ndarray:
    height, width = tiles.shape[1:3]
    return make_grid(tiles, GridLayout.for_batch(len(tiles), height, width))


def highlighted(grid: np.ndarray, batch: int, tile_shape, sample: int, colour) -> np.ndarray:
    """A copy of ``grid`` with the gap around tile ``sample`` painted in ``colour``."""
    layout = GridLayout.for_batch(batch, *tile_shape)
    grid = np.array(grid)
    if not 0 <= sample < batch:
        return grid
    top, left = layout.origin(sample)
    pad, (height, width) = layout.padding, tile_shape
    y0, y1, x0, x1 = max(top - pad, 0), top + height + pad, max(left - pad, 0), left + width + pad
    inside = grid[top:top + height, left:left + width].copy()
    grid[y0:y1, x0:x1] = colour
    grid[top:top + height, left:left + width] = inside
    return grid


def blown_up(picture: np.ndarray, pixels: int) -> np.ndarray:
    """Sharp squares, an integer factor, to about ``pixels`` high (never smaller than the picture)."""
    return scale_nearest(picture, max(1, pixels // max(picture.shape[0], 1)))


def pixmap_of(picture: np.ndarray) -> QPixmap:
    picture = np.ascontiguousarray(picture)
    if picture.ndim == 2:
        picture = np.ascontiguousarray(np.repeat(picture[..., None], 3, axis=-1))
    height, width = picture.shape[:2]
    return QPixmap.fromImage(QImage(picture.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy())


def difference_picture(x0_a: np.ndarray, x0_b: np.ndarray) -> tuple[np.ndarray, float]:
    """|x0_a - x0_b| of one sample ((C, H, W) or (D,)) as grey (H, W) uint8 (white: the largest) and that largest
    difference."""
    diff = np.abs(np.asarray(x0_a, dtype=np.float64) - np.asarray(x0_b, dtype=np.float64))
    largest = float(diff.max()) if diff.size else 0.0
    plane = diff.max(axis=0) if diff.ndim == 3 else np.atleast_2d(diff)
    scaled = plane / largest if largest > 0 else np.zeros_like(plane)
    return np.round(scaled * 255).astype(np.uint8), largest


class RunState:
    """What one run shows at the timeline's position."""

    def __init__(self, run, step: int | None):
        self.run = run
        self.step = step
        self.frame = None
        if run.store is not None and step is not None:
            self.frame = run.store.frame(step)

    @property
    def dropped(self) -> bool:
        return self.run.store is None

    @property
    def t(self):
        if self.step is None:
            return None
        value = float(self.run.timesteps[self.step])
        return int(value) if value.is_integer() else round(value, 3)

    def describe(self) -> str:
        run = self.run
        if self.dropped:
            return f"{run.name}: final samples only (frames dropped)"
        if self.step is None:
            return f"{run.name}: no steps"
        text = f"{run.name}: step {self.step + 1}/{len(run.timesteps)} (t {self.t})"
        if self.frame is not None and self.frame.is_keyframe_fallback:
            text += f", pictures of step {self.frame.index + 1} (keyframe)"
        return text

    def tiles(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(x_t tiles, x0_pred tiles) uint8 (B, H, W, 3) of the step shown; a dropped run: (its final samples'
        tiles, None)."""
        run = self.run
        if run.card.data_kind != "image":
            return None, None
        if self.dropped:
            return (None if run.final is None else to_uint8_tiles(run.final, run.card.value_range)), None
        if self.frame is None:
            return None, None
        return self.frame.x_t_tiles, self.frame.x0_tiles

    def grids(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(x_t grid, x0_pred grid) uint8; a dropped run: (final samples' grid, None)."""
        return tuple(None if tiles is None else grid_of(tiles) for tiles in self.tiles())

    def sample_tiles(self, sample: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        return tuple(None if tiles is None else tiles[sample] for tiles in self.tiles())

    def x0_float(self) -> np.ndarray | None:
        floats = self.run.floats
        if floats is None or not floats.keeps_all or self.step is None or self.step >= floats.steps_done:
            return None
        return floats.arrays()[1][self.step]

    def x_t_points(self) -> np.ndarray | None:
        """Vector models: the x_t points at the step shown (a dropped run: its final samples)."""
        if self.dropped:
            return None if self.run.final is None else np.asarray(self.run.final).reshape(len(self.run.final), -1)
        if self.frame is None or self.frame.x_t_values is None:
            return None
        return np.asarray(self.frame.x_t_values).reshape(len(self.frame.x_t_values), -1)


# --- the exported picture ------------------------------------------------------------------------------------------
def compare_picture(runs, position: int, align: str = FRACTION, header: str | None = None,
                    bounds=None) -> np.ndarray:
    """(H, W, 3) uint8: a header line, then per run its label and its x_t and x0_pred grids (a dropped run: its
    final samples and a note). Vector models: every run's x_t points on one plot (``compare_scatter``; ``bounds``:
    its axes, by default those of every step of the runs)."""
    from PIL import Image, ImageDraw, ImageFont

    steps = shown_steps(runs, position, align)
    states = [RunState(run, step) for run, step in zip(runs, steps)]
    header = header or f"Sampling Studio · compare by {align} · position {position / POSITIONS:.0%}"
    if runs and runs[0].card.data_kind == "vector":
        from .compare_scatter import scatter_bounds, scatter_picture

        colours = [COLOURS_RGB[number % len(COLOURS_RGB)] for number in range(len(states))]
        return scatter_picture(states, colours, header, bounds or scatter_bounds(runs))
    font = ImageFont.load_default()
    line = 14
    blocks = []
    for number, state in enumerate(states):
        x_t, x0 = state.grids()
        label = f"{state.run.name} · {state.run.settings_line}"
        status = state.describe()
        status += ": final samples, x0_pred not kept" if state.dropped else " · left x_t, right x0_pred"
        pictures = [blown_up(p, EXPORT_GRID_PIXELS) for p in (x_t, x0) if p is not None]
        blocks.append((label, status, pictures, COLOURS_RGB[number % len(COLOURS_RGB)]))
    gap = 8
    text_width = max(int(font.getlength(text)) for block in blocks for text in block[:2])
    text_width = max(text_width, int(font.getlength(header)))
    width = 2 * gap + max(text_width, max((sum(p.shape[1] for p in b[2]) + gap * (len(b[2]) - 1)
                                           for b in blocks), default=0))
    height = gap + line + gap + sum(2 * line + max((p.shape[0] for p in b[2]), default=0) + 2 * gap for b in blocks)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    draw.text((gap, gap), header, fill=(0, 0, 0), font=font)
    y = gap + line + gap
    for label, status, pictures, colour in blocks:
        draw.text((gap, y), label, fill=colour, font=font)
        draw.text((gap, y + line), status, fill=(60, 60, 60), font=font)
        y += 2 * line
        x = gap
        for picture in pictures:
            canvas.paste(Image.fromarray(np.ascontiguousarray(picture), "RGB"), (x, y))
            x += picture.shape[1] + gap
        y += max((p.shape[0] for p in pictures), default=0) + 2 * gap
    return np.asarray(canvas)


def padded(frames: list[np.ndarray]) -> np.ndarray:
    """Frames of different sizes on one white canvas size."""
    height = max(f.shape[0] for f in frames)
    width = max(f.shape[1] for f in frames)
    out = np.full((len(frames), height, width, 3), 255, dtype=np.uint8)
    for i, frame in enumerate(frames):
        out[i, :frame.shape[0], :frame.shape[1]] = frame
    return out


def recipes_of(runs) -> list[dict]:
    from ..core.recipe import recipe_for_run

    return [recipe_for_run(run.info.record) for run in runs]


# --- the dialog ------------------------------------------------------------------------------------------------------
class CompareRow:
    """One run's widgets: its label, x_t and x0_pred grids, the focused sample's x_t and x0_pred."""

    def __init__(self, run, number: int):
        self.run = run
        self.colour = COLOURS[number % len(COLOURS)]
        self.colour_rgb = COLOURS_RGB[number % len(COLOURS_RGB)]
        self.label = QLabel()
        self.label.setObjectName(f"compareRowLabel{number}")
        self.label.setWordWrap(True)
        self.label.setMinimumWidth(180)
        self.label.setMaximumWidth(260)
        self.x_t = self._picture(f"compareXt{number}")
        self.x0 = self._picture(f"compareX0{number}")
        self.sample_x_t = self._picture(f"compareSampleXt{number}")
        self.sample_x0 = self._picture(f"compareSampleX0{number}")
        self.x_t_grid = self.x0_grid = None       # uint8 grids shown (not highlighted), for tests and export
        self.sample_x_t_tile = self.sample_x0_tile = None

    @staticmethod
    def _picture(name: str) -> QLabel:
        label = QLabel()
        label.setObjectName(name)
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        label.setWordWrap(True)
        return label

    def widgets(self) -> list[QWidget]:
        return [self.label, self.x_t, self.x0, self.sample_x_t, self.sample_x0]


class CompareView(QDialog):
    def __init__(self, runs, window=None):
        super().__init__(window)
        if not 1 <= len(runs) <= len(COLOURS):
            raise ValueError(f"compare takes 1 to {len(COLOURS)} runs, got {len(runs)}")
        self.window_ = window
        self.runs = list(runs)
        self.states: list[RunState] = []
        self.diff_max: float | None = None
        self.diff_picture: np.ndarray | None = None
        self.is_image = all(run.card.data_kind == "image" for run in self.runs)
        self.setObjectName("compareView")
        self.setWindowTitle("Compare runs")
        self.setModal(False)
        self.resize(1400, 860)
        self._build()
        self._fill_plots()
        self.update_view()

    # --- widgets ---------------------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.timeline = QSlider(Qt.Orientation.Horizontal)
        self.timeline.setObjectName("compareTimeline")
        self.timeline.setAccessibleName("Comparison timeline: fraction of the denoising done")
        self.timeline.setRange(0, POSITIONS)
        self.timeline.setValue(POSITIONS)
        self.timeline.setPageStep(50)
        self.align = QComboBox()
        self.align.setObjectName("compareAlign")
        self.align.addItems([FRACTION, TIMESTEP])
        self.align.setToolTip("fraction of steps: each run at the same fraction of its steps; timestep: each run "
                              "at its last step whose t is at or above the timeline's t")
        self.sample = QSpinBox()
        self.sample.setObjectName("compareSample")
        self.sample.setRange(0, min(len(run.info.seeds) for run in self.runs) - 1)
        self.sample.setPrefix("sample ")
        self.steps_label = QLabel()
        self.steps_label.setObjectName("compareSteps")
        self.steps_label.setWordWrap(True)
        self.export_png_button = QPushButton("Export PNG…")
        self.export_png_button.setObjectName("compareExportPng")
        self.export_gif_button = QPushButton("Export animation…")
        self.export_gif_button.setObjectName("compareExportGif")
        if not self.is_image:
            for button in (self.export_png_button, self.export_gif_button):
                button.setToolTip("every run's x_t points on one plot, one colour per run")
        self.export_png_button.clicked.connect(lambda: self.export_png())
        self.export_gif_button.clicked.connect(lambda: self.export_animation())

        controls = QHBoxLayout()
        controls.addWidget(QLabel("Timeline"))
        controls.addWidget(self.timeline, 1)
        controls.addWidget(QLabel("Align by"))
        controls.addWidget(self.align)
        controls.addWidget(self.sample)
        controls.addWidget(self.export_png_button)
        controls.addWidget(self.export_gif_button)

        # Rows: one per run.
        rows_widget = QWidget()
        grid = QGridLayout(rows_widget)
        for column, text in enumerate(("run", "x_t", "x0_pred", "focused sample: x_t", "focused sample: x0_pred")):
            header = QLabel(f"<b>{text}</b>")
            header.setAlignment(Qt.AlignmentFlag.AlignCenter)
            grid.addWidget(header, 0, column)
        self.rows = [CompareRow(run, i) for i, run in enumerate(self.runs)]
        for i, row in enumerate(self.rows):
            for column, widget in enumerate(row.widgets()):
                grid.addWidget(widget, i + 1, column)
        self.note = QLabel()
        self.note.setObjectName("compareNote")
        self.note.setWordWrap(True)
        grid.addWidget(self.note, len(self.rows) + 1, 0, 1, 5)

        # The difference of two runs' x0_pred.
        self.diff_a, self.diff_b = QComboBox(), QComboBox()
        self.diff_a.setObjectName("compareDiffA")
        self.diff_b.setObjectName("compareDiffB")
        for combo in (self.diff_a, self.diff_b):
            combo.addItems([run.name for run in self.runs])
        self.diff_b.setCurrentIndex(min(1, len(self.runs) - 1))
        self.diff = QLabel()
        self.diff.setObjectName("compareDiff")
        self.diff.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.diff.setMinimumSize(SAMPLE_PIXELS, SAMPLE_PIXELS)
        self.diff_scale = QLabel()
        self.diff_scale.setObjectName("compareDiffScale")
        self.diff_scale.setWordWrap(True)
        diff_box = QHBoxLayout()
        diff_controls = QVBoxLayout()
        diff_controls.addWidget(QLabel("<b>|x0_pred difference|</b> of the focused sample"))
        pick = QHBoxLayout()
        pick.addWidget(self.diff_a)
        pick.addWidget(QLabel("vs"))
        pick.addWidget(self.diff_b)
        diff_controls.addLayout(pick)
        diff_controls.addWidget(self.diff_scale)
        diff_controls.addStretch(1)
        diff_box.addLayout(diff_controls)
        diff_box.addWidget(self.diff)
        diff_box.addStretch(1)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.addWidget(rows_widget)
        left_layout.addLayout(diff_box)
        left_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setObjectName("compareRows")
        scroll.setWidgetResizable(True)
        scroll.setWidget(left)

        # Plots.
        self.schedule_plot = pg.PlotWidget()
        self.schedule_plot.setObjectName("compareSchedulePlot")
        self.schedule_plot.setLabel("bottom", "t")
        self.schedule_plot.setLabel("left", "alpha_bar")
        self.schedule_plot.setTitle("schedule, each run's timesteps and its step shown")
        self.step_plot = pg.PlotWidget()
        self.step_plot.setObjectName("compareStepPlot")
        self.step_plot.setLabel("bottom", "fraction of steps")
        self.step_plot.setTitle("std of x_t (solid), change of x0_pred (dashed)")
        self.step_plot.addLegend(offset=(-10, 10))
        self.scatter_plot = None
        plots = QSplitter(Qt.Orientation.Vertical)
        plots.addWidget(self.schedule_plot)
        plots.addWidget(self.step_plot)
        if not self.is_image:
            self.scatter_plot = pg.PlotWidget()
            self.scatter_plot.setObjectName("compareScatter")
            self.scatter_plot.setTitle("x_t at each run's step shown")
            self.scatter_plot.addLegend(offset=(-10, 10))
            self.scatter_plot.setAspectLocked(True)
            plots.addWidget(self.scatter_plot)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(scroll)
        splitter.addWidget(plots)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setSizes([860, 540])

        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addWidget(self.steps_label)
        layout.addWidget(splitter, 1)

        self.timeline.valueChanged.connect(self.update_view)
        self.align.currentIndexChanged.connect(self.update_view)
        self.sample.valueChanged.connect(self.update_view)
        self.diff_a.currentIndexChanged.connect(self.update_view)
        self.diff_b.currentIndexChanged.connect(self.update_view)

    def _fill_plots(self) -> None:
        plotted = set()
        self.cursors = []
        self.fraction_line = pg.InfiniteLine(angle=90, pen=pg.mkPen("#888888", style=Qt.PenStyle.DotLine))
        self.step_plot.addItem(self.fraction_line)
        for run, row in zip(self.runs, self.rows):
            schedule = run.schedule
            key = getattr(schedule, "fingerprint", id(schedule))
            if key not in plotted:
                plotted.add(key)
                self.schedule_plot.plot(np.arange(len(schedule.alpha_bar)), schedule.alpha_bar,
                                        pen=pg.mkPen("#888888", width=1))
            done = run.steps_done
            ts = np.asarray(run.timesteps[:done], dtype=float)
            ts = ts[~np.isnan(ts)]
            index = np.clip(np.round(ts).astype(int), 0, len(schedule.alpha_bar) - 1)
            self.schedule_plot.plot(ts, schedule.alpha_bar[index], pen=None, symbol="o", symbolSize=7,
                                    symbolBrush=row.colour, symbolPen=row.colour, name=run.name)
            cursor = pg.InfiniteLine(angle=90, pen=pg.mkPen(row.colour, width=2, style=Qt.PenStyle.DashLine))
            self.schedule_plot.addItem(cursor)
            self.cursors.append(cursor)
            store = run.store
            if store is None:
                self.step_plot.plot([], [], pen=pg.mkPen(row.colour, width=2), name=f"{run.name} (frames dropped)")
                continue
            n = store.steps_done
            fraction = (np.arange(n) + 1) / len(run.timesteps)
            self.step_plot.plot(fraction, store.x_t_std[:n], pen=pg.mkPen(row.colour, width=2), name=run.name)
            self.step_plot.plot(fraction, store.x0_change[:n],
                                pen=pg.mkPen(row.colour, width=2, style=Qt.PenStyle.DashLine))

    def follow_names(self) -> None:
        """A compared run was renamed in the Runs dock: its row, the difference's choices and the plots' legends
        say its new name."""
        for combo in (self.diff_a, self.diff_b):
            for index, run in enumerate(self.runs):
                combo.setItemText(index, run.name)
        for plot in (self.schedule_plot, self.step_plot):
            plot.clear()
            legend = plot.getPlotItem().legend
            if legend is not None:
                legend.clear()
        self._fill_plots()
        self.update_view()

    # --- showing the position ------------------------------------------------------------------------------------
    @property
    def alignment(self) -> str:
        return self.align.currentText()

    def update_view(self) -> None:
        position = self.timeline.value()
        steps = shown_steps(self.runs, position, self.alignment)
        self.states = [RunState(run, step) for run, step in zip(self.runs, steps)]
        self.steps_label.setText(" · ".join(state.describe() for state in self.states))
        sample = self.sample.value()
        notes = []
        for state, row in zip(self.states, self.rows):
            self._show_row(state, row, sample)
            if state.dropped:
                notes.append(f"{state.run.name}: its frames were dropped to stay within the memory budget, so it "
                             "shows its final samples only")
        if not self.is_image:
            notes.append("pictures are for image models: the scatter shows each run's x_t at its step shown")
            self._show_scatter()
        self.note.setText("\n".join(notes))
        self.note.setVisible(bool(notes))
        for state, cursor in zip(self.states, self.cursors):
            t = state.t if not state.dropped else (state.run.timesteps[state.run.steps_done - 1]
                                                    if state.run.steps_done else None)
            cursor.setVisible(t is not None)
            if t is not None:
                cursor.setValue(float(t))
        self.fraction_line.setValue(position / POSITIONS)
        self._show_difference(sample)

    def _show_row(self, state: RunState, row: CompareRow, sample: int) -> None:
        run = state.run
        text = f"<b style='color:{row.colour}'>{run.name}</b><br>{run.settings_line}<br>{state.describe()}"
        row.label.setText(text)
        row.label.setToolTip(run.label)
        if not self.is_image:
            row.x_t_grid = row.x0_grid = row.sample_x_t_tile = row.sample_x0_tile = None
            for label in (row.x_t, row.x0, row.sample_x_t, row.sample_x0):
                label.clear()
            row.x_t.setText("pictures are for image models")
            return
        row.x_t_grid, row.x0_grid = state.grids()
        row.sample_x_t_tile, row.sample_x0_tile = state.sample_tiles(sample)
        batch = len(run.info.seeds)
        tile_shape = row.sample_x_t_tile.shape[:2] if row.sample_x_t_tile is not None else None
        for label, grid in ((row.x_t, row.x_t_grid), (row.x0, row.x0_grid)):
            if grid is None:
                label.clear()
                label.setText("x0_pred not kept:\nframes dropped" if state.dropped else "no frames")
                continue
            shown = highlighted(grid, batch, tile_shape, sample, row.colour_rgb) if tile_shape else grid
            label.setPixmap(pixmap_of(blown_up(shown, GRID_PIXELS)))
        for label, tile in ((row.sample_x_t, row.sample_x_t_tile), (row.sample_x0, row.sample_x0_tile)):
            if tile is None:
                label.clear()
                label.setText("not kept")
                continue
            label.setPixmap(pixmap_of(blown_up(tile, SAMPLE_PIXELS)))
        if state.dropped:
            row.x_t.setToolTip("final samples: the steps' frames were dropped")

    def _show_scatter(self) -> None:
        plot = self.scatter_plot
        plot.clear()
        for state, row in zip(self.states, self.rows):
            points = state.x_t_points()
            if points is None or points.shape[1] < 1:
                continue
            ys = points[:, 1] if points.shape[1] > 1 else np.zeros(len(points))
            name = state.run.name + (" (final)" if state.dropped else "")
            plot.plot(points[:, 0], ys, pen=None, symbol="o", symbolSize=5, symbolBrush=row.colour,
                      symbolPen=None, name=name)

    def _show_difference(self, sample: int) -> None:
        a, b = self.diff_a.currentIndex(), self.diff_b.currentIndex()
        self.diff_max, self.diff_picture = None, None
        self.diff.clear()
        if a < 0 or b < 0:
            return
        first, second = self.states[a], self.states[b]
        missing = [s.run.name for s in (first, second) if s.x0_float() is None]
        if missing:
            self.diff_scale.setText(f"{NO_FLOATS}: {' and '.join(dict.fromkeys(missing))} "
                                    f"{'has' if len(set(missing)) == 1 else 'have'} none kept")
            return
        x0_a, x0_b = first.x0_float(), second.x0_float()
        if x0_a.shape[1:] != x0_b.shape[1:]:
            self.diff_scale.setText("the two runs' samples have different shapes: no difference")
            return
        picture, largest = difference_picture(x0_a[sample], x0_b[sample])
        self.diff_max = largest
        self.diff_scale.setText(f"{first.run.name} vs {second.run.name}, sample {sample}: "
                                f"max |difference| {largest:.4g} (white), 0 black")
        if self.is_image:
            self.diff_picture = picture
            self.diff.setPixmap(pixmap_of(blown_up(picture, SAMPLE_PIXELS)))

    # --- exports ---------------------------------------------------------------------------------------------------
    def picture(self, position: int | None = None, align: str | None = None) -> np.ndarray:
        return compare_picture(self.runs, self.timeline.value() if position is None else position,
                               align or self.alignment)

    def export_png(self, path=None) -> bool:
        """One PNG of every run at the timeline's position, with their recipes; ``path``: no dialog."""
        from ..core.export import write_png_image
        from ..core.recipe import describe_recipe

        if not self._can_export():
            return False
        path = self._save_path("Export comparison as PNG", f"compare-{len(self.runs)}-runs.png", PNG_FILTER, path)
        if path is None:
            return False

        def write():
            recipes = recipes_of(self.runs)
            description = "Comparison of " + " | ".join(
                f"{run.name}: {describe_recipe(recipe)}" for run, recipe in zip(self.runs, recipes))
            text = {RECIPES_KEY: json.dumps(recipes), "Description": description}
            return write_png_image(path, self.picture(), text)

        return self._write(write)

    def export_animation(self, path=None, frames: int = ANIMATION_FRAMES) -> bool:
        """An animated GIF: every run advances together over the fraction timeline, ``frames`` evenly spread."""
        from ..core.export import write_gif

        if not self._can_export():
            return False
        path = self._save_path("Export comparison animation", f"compare-{len(self.runs)}-runs.gif", GIF_FILTER, path)
        if path is None:
            return False
        count = max(2, int(frames))

        def write():
            from .compare_scatter import scatter_bounds

            positions = np.linspace(0, POSITIONS, count).round().astype(int)
            bounds = None if self.is_image else scatter_bounds(self.runs)   # the same axes in every frame
            pictures = [compare_picture(self.runs, int(p), FRACTION,
                                        header=f"Sampling Studio · compare · frame {i + 1}/{count} · "
                                               f"{p / POSITIONS:.0%} of the steps", bounds=bounds)
                        for i, p in enumerate(positions)]
            return write_gif(path, padded(pictures), frame_ms=150, last_frame_ms=1500)

        return self._write(write)

    def _can_export(self) -> bool:
        return True   # image models: the grids; vector models: the points on one plot (compare_scatter)

    def _save_path(self, title: str, name: str, file_filter: str, path) -> str | None:
        from . import persistence

        if path:
            return str(path)
        folder = persistence.read_text("export/folder") or os.path.expanduser("~")
        chosen, _ = QFileDialog.getSaveFileName(self, title, os.path.join(folder, name), file_filter)
        if not chosen:
            return None
        persistence.write_text("export/folder", os.path.dirname(chosen))
        return chosen

    def _write(self, write) -> bool:
        try:
            written = write()
        except (StudioError, OSError, ValueError) as exc:
            self._error(f"Could not export: {exc}")
            return False
        self.steps_label.setToolTip(f"wrote {written}")
        window = self.window_
        if window is not None and hasattr(window, "status_label"):
            window.status_label.setText(f"wrote {written}")
        return True

    def _error(self, message: str) -> None:
        window = self.window_
        if window is not None and hasattr(window, "show_error"):
            window.show_error(message)


__all__ = ["CompareView", "FRACTION", "TIMESTEP", "compare_picture", "shown_steps", "step_at_fraction",
           "step_at_timestep", "timestep_at"]
