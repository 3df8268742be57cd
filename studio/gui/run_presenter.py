"""Shows a run: keeps its frames in the TrajectoryStore and paints the step the timeline points at.

Every step the worker sends goes into the store (and its float values into a FloatTrajectory, for exports);
a run's first step is painted at once, then painting is coalesced to at most one repaint per
``REPAINT_INTERVAL_MS`` while the run streams in, fewer where the GUI thread's work would take more than its share
of the machine from the sampler (``live_pace``), the plots (cursors, per-step curves) follow at most every
``LIVE_PLOTS_INTERVAL_S``; the last step is always painted in full, and scrubbing a finished run paints at once.

Step 0 of the timeline is x_T, the starting noise (``views.timeline.X_T``): x_t shows it, and x0_pred and the
predicted noise, which do not exist before the first model call, show as blank tiles under a caption that says so.

Each step the worker sends is one entry of the timeline, whatever it cost: a Heun step that made two model calls
is one step, PNDM's start (t_1 visited twice) two. The presenter keeps every step's own timestep, fractional for
the sigma-space solvers (the trajectory store keeps whole ones), and its model calls, whose sum is the run's NFE.
"""

from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from ..core.preview import GRID_BACKGROUND, GridLayout, tile_channels, to_uint8_tiles
from ..core.trajectory import DEFAULT_BUDGET_BYTES, TrajectoryStore
from .live_pace import REPAINT_INTERVAL_MS, LivePace
from .status_texts import calls_text, timestep_text
from .float_trajectory import DEFAULT_FLOAT_BUDGET_BYTES, FloatTrajectory, float_trajectory_bytes
from .views.focus_view import FocusView
from .views.preview_pane import PreviewPane
from .views.scatter_view import TRACED_PARTICLES
from .views.timeline import X_T, Timeline
from .panels.plots_panel import PlotsPanel
from .step_previews import WorkerStep
from .worker import RunInfo

LIVE_PLOTS_INTERVAL_S = 0.5    # the plots redraw their axes when the curves grow: less often
STEP_AXES_AT_START = (0.0, 1.0)   # pyqtgraph's range of an empty plot
NOT_YET = "x0_pred and eps_pred do not exist yet (no model call at x_T)"


class RunPresenter(QObject):
    step_shown = Signal(int)

    def __init__(self, preview_xt: PreviewPane, preview_x0: PreviewPane, focus: FocusView, timeline: Timeline,
                 plots: PlotsPanel, parent=None):
        super().__init__(parent)
        self.preview_xt, self.preview_x0, self.focus_view = preview_xt, preview_x0, focus
        self.timeline, self.plots = timeline, plots
        self.store: TrajectoryStore | None = None
        self.floats: FloatTrajectory | None = None
        self.info: RunInfo | None = None
        self.timesteps = np.zeros(0)        # each step's t and t_prev as the sampler gave them (float; -1: data)
        self.timesteps_prev = np.zeros(0)
        self.step_calls = np.zeros(0, dtype=np.int64)   # each step's model calls
        self.card = None
        self.schedule = None
        self.focused = 0
        self.budget_bytes = DEFAULT_BUDGET_BYTES   # memory for one run's frames; past it, keyframes
        self.float_budget_bytes = DEFAULT_FLOAT_BUDGET_BYTES   # float frames for exports; past it, samples only
        self.live = False
        self._ready_at = 0.0
        self._curves_drawn = 0
        self._plots_at = 0.0   # when the plots last followed a live run
        self._pending_layout = None   # (GridLayout, labels) of a run whose first step is not painted yet
        self._first_paint_pending = False   # a live run's first step is not painted yet
        self._repaint_timer = QTimer(self)
        self._repaint_timer.setSingleShot(True)
        self._repaint_timer.setInterval(REPAINT_INTERVAL_MS)
        self._pace = LivePace()
        self._repaint_timer.timeout.connect(self.paint)
        timeline.step_changed.connect(self._on_step_changed)
        preview_xt.grid.tile_clicked.connect(self.focus_sample)
        preview_x0.grid.tile_clicked.connect(self.focus_sample)
        plots.timestep_dragged.connect(self._on_timestep_dragged)
        plots.step_dragged.connect(lambda step: self.timeline.set_step(int(round(step)) - 1))

    # --- a model, before any run -----------------------------------------------------------------------------------
    def set_model(self, card, schedule) -> None:
        """A new model: forget the last run and get the views ready for this kind of data."""
        self.clear()
        self.card, self.schedule = card, schedule
        vector = card is not None and card.data_kind == "vector"
        for pane in (self.preview_xt, self.preview_x0):
            pane.use_vector_mode(vector)
        self.focus_view.setVisible(card is not None and not vector)
        self._captions()

    def clear(self, *, new_run: bool = False) -> None:
        """Forget the run shown. ``new_run``: one is starting: the last run's pictures stay until its first step
        is painted over them (no flash to empty, and one repaint of the views less in the GUI time a run takes
        from the sampler), and the grids keep their labels when the batch has the same shape."""
        self._repaint_timer.stop()
        self._pending_layout = None
        self.store, self.info, self.floats = None, None, None
        self._reset_steps(0)
        self.live = False
        self._curves_drawn = 0
        if new_run:
            for pane in (self.preview_xt, self.preview_x0):
                pane.scatter.reset()   # a vector run's view range grows from its own points only
        else:
            self._clear_pictures()
        self.timeline.reset()
        self.plots.clear_run()
        if not new_run:
            self._reset_step_axes()
        self._captions()

    def _reset_step_axes(self) -> None:
        """No run: the per-step plot's axes go back to where they start (not the last run's steps and values)."""
        view = self.plots.step_plot.getPlotItem().getViewBox()
        view.setRange(xRange=STEP_AXES_AT_START, yRange=STEP_AXES_AT_START, padding=0)
        view.enableAutoRange()   # the next run's curves set the values' range again (its steps set x)

    def _reset_steps(self, num_steps: int) -> None:
        self.timesteps = np.full(num_steps, np.nan)
        self.timesteps_prev = np.full(num_steps, np.nan)
        self.step_calls = np.zeros(num_steps, dtype=np.int64)

    @property
    def model_calls_done(self) -> int:
        """The model calls the steps received so far made (the run's NFE once it has finished)."""
        return int(self.step_calls.sum())

    @property
    def has_steps(self) -> bool:
        return self.store is not None and self.store.steps_done > 0

    # --- a run streaming in ----------------------------------------------------------------------------------------
    def on_run_ready(self, info: RunInfo, card, schedule) -> None:
        self.clear(new_run=True)
        self.info, self.card, self.schedule = info, card, schedule
        batch = len(info.seeds)
        if card.data_kind == "image":
            _, height, width = card.data_shape
            # grey models keep one channel per tile, not three (read back as RGB views)
            self.store = TrajectoryStore(info.num_steps, batch, tile_shape=(height, width),
                                         budget_bytes=self.budget_bytes,
                                         channels=tile_channels(card.data_shape[0]))
            # laid out with the first step's pictures: until then the grids show the last run whole, its
            # labels on its pictures (a run that ends before a step clears them)
            self._pending_layout = (GridLayout.for_batch(batch, height, width),
                                    [self.tile_label(i) for i in range(batch)])
        else:
            self.store = TrajectoryStore(info.num_steps, batch, vector_dim=int(np.prod(card.data_shape)),
                                         budget_bytes=self.budget_bytes)
            self.store.set_initial(info.x_T_values)
        self.floats = FloatTrajectory(info.num_steps, info.x_T, self.float_budget_bytes)
        self._reset_steps(info.num_steps)
        self.focused = min(self.focused, batch - 1)
        if self._pending_layout is None:
            self._mark_focus()
        self.plots.set_timesteps(info.timesteps)
        self.live = True
        self._pace.start()
        self._first_paint_pending = True
        self._ready_at = time.perf_counter()
        self._plots_at = self._ready_at   # cleared above; they follow the run from LIVE_PLOTS_INTERVAL_S on
        self._captions()

    def keeps_floats_for(self, num_steps: int, batch_size: int, data_shape) -> bool:
        """Whether a run of this size will have all its float frames kept (the worker sends them only then)."""
        return float_trajectory_bytes(num_steps, batch_size, data_shape) <= self.float_budget_bytes

    def on_steps(self, steps: list[WorkerStep]) -> None:
        for step in steps:   # every step is kept (or its keyframe); only painting is coalesced
            self.store.append(step.frames)
            index = step.frames.index
            self.timesteps[index], self.timesteps_prev[index] = float(step.frames.t), float(step.frames.t_prev)
            self.step_calls[index] = step.model_calls
            self.floats.append(step.frames.index, step.x_t, step.x0_pred)
        self.timeline.grow(self.store.steps_done)

    def on_run_done(self) -> None:
        self.live = False
        self._repaint_timer.stop()
        if self.has_steps:
            self.paint()
        else:   # it ended before its first step: the last run's pictures must not pass for its own
            self._clear_pictures()

    def _clear_pictures(self) -> None:
        self._pending_layout = None
        for pane in (self.preview_xt, self.preview_x0):
            pane.grid.set_layout(None)
            pane.scatter.reset()
        self.focus_view.clear()

    def rate(self) -> float:
        """Steps per second so far."""
        elapsed = time.perf_counter() - self._ready_at
        return self.store.steps_done / elapsed if self.store is not None and elapsed > 0 else 0.0

    # --- kept runs (the run list) ---------------------------------------------------------------------------------
    def kept_run(self, number: int, seconds: float, status: str):
        """The run shown, as a KeptRun for the run list (its frames are handed over, not copied)."""
        from .run_list import KeptRun, thumbnail_of

        floats = self.floats
        final = floats.final.copy() if floats is not None and floats.final is not None else None
        return KeptRun(number, f"run {number}", self.info, self.card, self.schedule, self.store, floats,
                       self.timesteps, self.timesteps_prev, self.step_calls, final, seconds, status,
                       thumbnail=thumbnail_of(final, self.card))

    def show_kept(self, run) -> None:
        """Show a kept run as it was when it ended (its last step; a run whose frames were dropped: its final
        samples alone)."""
        self.clear(new_run=True)
        self.info, self.card, self.schedule = run.info, run.card, run.schedule
        self.timesteps, self.timesteps_prev, self.step_calls = run.timesteps, run.timesteps_prev, run.step_calls
        self.plots.set_timesteps(run.info.timesteps)
        batch = len(run.info.seeds)
        self.focused = min(self.focused, batch - 1)
        if run.store is None:
            self._show_final_only(run)
            return
        self.store, self.floats = run.store, run.floats
        if self.store.tile_shape is not None:
            height, width = self.store.tile_shape
            self._pending_layout = (GridLayout.for_batch(batch, height, width),
                                    [self.tile_label(i) for i in range(batch)])
        self.timeline.grow(self.store.steps_done)
        self.timeline.set_step(self.store.steps_done - 1)
        self.paint(full=True)

    def _show_final_only(self, run) -> None:
        self._clear_pictures()
        if run.final is not None and self.card.data_kind == "image":
            tiles = to_uint8_tiles(run.final, self.card.value_range)
            height, width = tiles.shape[1:3]
            self.preview_xt.grid.set_layout(GridLayout.for_batch(len(tiles), height, width),
                                            [self.tile_label(i) for i in range(len(tiles))])
            self.preview_xt.grid.show_tiles(tiles)
        self.preview_xt.set_caption(f"final samples of {run.name}: its steps' frames were dropped (memory budget)")
        self.preview_x0.set_caption("x0_pred: not kept for this run")

    # --- what to show ----------------------------------------------------------------------------------------------
    def tile_label(self, index: int) -> str:
        """What each tile says: its seed (seed + i). The class shows in the focus view's heading."""
        return f"seed {self.info.seeds[index]}"

    def sample_title(self, index: int) -> str:
        text = f"sample {index + 1} of {len(self.info.seeds)} · seed {self.info.seeds[index]}"
        labels = self.info.class_labels
        if labels is not None and self.card is not None and self.card.conditional:
            label = labels[index]
            if label == self.card.null_class:
                text += " · no class"
            elif label < len(self.card.class_names):
                name = self.card.class_names[label]
                text += f" · class {name}" if name == str(label) else f" · class {label} ({name})"
        return text

    def focus_sample(self, index: int) -> None:
        if self.info is None or not 0 <= index < len(self.info.seeds):
            return
        self.focused = index
        self._mark_focus()
        if self.has_steps:
            self.paint()

    def _mark_focus(self) -> None:
        for pane in (self.preview_xt, self.preview_x0):
            pane.grid.set_focus(self.focused)

    def _on_step_changed(self, _index: int) -> None:
        if self.live:
            if self._first_paint_pending:   # a run's first step is painted at once; the next ones coalesce
                self._first_paint_pending = False
                self._repaint_timer.stop()
                self.paint()
            elif not self._repaint_timer.isActive():
                self._repaint_timer.start()
        else:
            self.paint()

    def _on_timestep_dragged(self, t: float) -> None:
        """The schedule cursor was dragged to t: show the step whose timestep is nearest."""
        if not self.has_steps:
            return
        done = self.timesteps[:self.store.steps_done]
        self.timeline.set_step(int(np.argmin(np.abs(done - t))))

    def paint(self, full: bool = False) -> None:
        """Show the step the timeline points at; ``full``: the plots follow now even during a live run."""
        if not self.has_steps:
            return
        if self.live:
            self._repaint_timer.setInterval(self._pace.next_interval_ms())
        index = min(self.timeline.current, self.store.latest_index)
        if self._pending_layout is not None:
            layout, labels = self._pending_layout
            self._pending_layout = None
            for pane in (self.preview_xt, self.preview_x0):
                pane.grid.set_layout(layout, labels)
            self._mark_focus()
        if index == X_T:
            self._paint_x_T()
            self.timeline.label.setText(self.step_text(X_T))
        else:
            frame = self._paint_step(index)
            self.timeline.label.setText(self.step_text(index, frame.index))
        now = time.perf_counter()
        scrubbed = index != self.store.latest_index   # the user moved the timeline back: follow at once
        if full or not self.live or scrubbed or now - self._plots_at >= LIVE_PLOTS_INTERVAL_S:
            self._plots_at = now
            # x_T: no timestep was visited yet (the schedule cursor hides), the step cursor sits at step 0
            self.plots.set_cursor(None if index == X_T else float(self.timesteps[index]), index + 1)
            if self._curves_drawn != self.store.steps_done:
                done = self.store.steps_done
                self.plots.set_step_curves(self.store.x_t_std[:done], self.store.x0_change[:done])
                self._curves_drawn = done
        self._captions(index)
        self.step_shown.emit(index)

    def _paint_step(self, index: int):
        """Step ``index``'s frames (the kept step that stands for it) in the views; returns the frame."""
        frame = self.store.frame(index)
        if self.store.tile_shape is not None:
            self.preview_xt.grid.show_tiles(frame.x_t_tiles)
            self.preview_x0.grid.show_tiles(frame.x0_tiles)
            focused = self.focused
            eps = frame.eps_tiles[focused] if frame.eps_tiles is not None else None
            self.focus_view.show_sample(f"{self.sample_title(focused)} · step {frame.index + 1}",
                                        frame.x_t_tiles[focused], frame.x0_tiles[focused], eps)
        else:
            traced = list(range(min(TRACED_PARTICLES, self.store.batch_size)))
            self.preview_xt.scatter.show_points(frame.x_t_values, self.store.paths("x_t", traced, frame.index))
            self.preview_x0.scatter.show_points(frame.x0_values, self.store.paths("x0", traced, frame.index))
        return frame

    def _paint_x_T(self) -> None:  # noqa: N802 -- x_T is the paper's name
        """Step 0: x_T in the x_t views; x0_pred and eps_pred, which no model call has made yet, blank."""
        if self.store.tile_shape is not None:
            x_T = self.info.x_T_tiles
            blank = np.full_like(x_T, GRID_BACKGROUND)   # the grids' own background: an empty tile
            self.preview_xt.grid.show_tiles(x_T)
            self.preview_x0.grid.show_tiles(blank)
            focused = self.focused
            self.focus_view.show_sample(f"{self.sample_title(focused)} · step 0: x_T, the starting noise — "
                                        f"{NOT_YET}", x_T[focused], blank[focused], blank[focused])
        else:
            traced = list(range(min(TRACED_PARTICLES, self.store.batch_size)))
            self.preview_xt.scatter.show_points(self.store.initial_values, self.store.paths("x_t", traced, X_T))
            self.preview_x0.scatter.reset()

    def noise_level(self, t: float) -> tuple[float, float]:
        """(alpha_bar_t, sigma_t) of the model's schedule at t; between two training timesteps sigma is
        interpolated linearly in t, as the sigma-space solvers' tables are."""
        if float(t).is_integer():
            return float(self.schedule.alpha_bar[int(t)]), float(self.schedule.sigma[int(t)])
        sigmas = self.schedule.sigma
        sigma = float(np.interp(t, np.arange(len(sigmas)), sigmas))
        return 1.0 / (1.0 + sigma * sigma), sigma

    def step_text(self, index: int, shown: int | None = None) -> str:
        if index == X_T:
            return (f"step 0/{self.store.num_steps} · x_T, the starting noise (pure Gaussian noise, before the "
                    f"first model call at t {timestep_text(self.timesteps[0])})")
        t, t_prev = float(self.timesteps[index]), float(self.timesteps_prev[index])
        alpha_bar, sigma = self.noise_level(t)
        reached = timestep_text(t_prev) if t_prev >= 0 else "data"
        text = f"step {index + 1}/{self.store.num_steps} · t {timestep_text(t)} → {reached}"
        if t == t_prev:   # PNDM's second call: at t_1 again, redoing the first step with both slopes
            text += " (a second call at this t redoes the step before)"
        if self.step_calls[index] != 1:
            text += f" · {calls_text(int(self.step_calls[index]))}"
        text += f" · alpha_bar_t {alpha_bar:.4g} · sigma_t {sigma:.4g}"
        if shown is not None and shown != index:
            text += f" (showing kept step {shown + 1}: memory budget)"
        return text

    def _captions(self, index: int | None = None) -> None:
        if self.card is None:
            return
        if index is None or self.store is None:
            hint = "press Generate (Ctrl+Enter)" if self.info is None else "waiting for the first step…"
            self.preview_xt.set_caption(f"x_t, the noisy sample — {hint}")
            self.preview_x0.set_caption("x0_pred, the model's guess of the clean sample")
            return
        if index == X_T:
            self.preview_xt.set_caption("x_T at step 0: the starting noise, before any model call")
            self.preview_x0.set_caption("x0_pred at step 0: none yet (blank), the model has not been called")
            return
        t_prev = float(self.timesteps_prev[index])
        where = f"t = {timestep_text(t_prev)}" if t_prev >= 0 else "the final sample"
        self.preview_xt.set_caption(f"x_t after step {index + 1} ({where})")
        self.preview_x0.set_caption(f"x0_pred at step {index + 1} (from t = {timestep_text(self.timesteps[index])})")
