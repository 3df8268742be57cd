"""Starting, following and stopping the window's runs.

``RunSession.start`` turns the panels into RunSettings, loads a guidance classifier if the run needs one, adds
what a PNG's recipe needs beyond the engine's record (``recipe_extras``, as ``studio sample`` adds it) and
hands it all to the window's RunController (a worker thread). The session then follows the run into the
presenter, the progress bar and the status texts, and reports its outcome. A failed run's exception is kept
on the window (``last_run_exception``), offered in the error banner's details and logged to the "studio.gui"
logger with its traceback.
"""

from __future__ import annotations

import logging
import time

from ..core.errors import StudioError
from ..core.recipe import recipe_extras
from . import persistence, status_texts
from .worker import CANCELLED, FAILED, RunOutcome, is_expected

logger = logging.getLogger("studio.gui")

PROGRESS_INTERVAL_S = 0.1   # the status text and progress bar follow a run at most this often (and at its end)


def _remade_branch(parent_recipe: dict, at_step: int):
    """An opened branch PNG's start, made in the worker thread: its parent's sample made again for k steps."""
    from ..core.branch_recipe import remake_parent

    def make(denoiser, classifier, device: str):
        return remake_parent(denoiser, parent_recipe, at_step, device=device, classifier=classifier)

    return make


class RunSession:
    """The window's runs, one at a time: start, progress, cancel, outcome."""

    def __init__(self, window):
        self.window = window
        self._run_model = None   # (card, schedule) of the run in progress
        self._network = ""       # the run's network mode, when it is not plain or fell back
        self._progress_at = 0.0
        controller = window.controller
        controller.run_ready.connect(self._on_ready)
        controller.steps_ready.connect(self._on_steps)
        controller.run_done.connect(self._on_done)

    # --- starting --------------------------------------------------------------------------------------------------
    def start(self, settings=None, branch=None) -> None:
        """Start a run with the panels' settings (or ``settings``); a setting or classifier that does not work is
        a message. ``branch``: a BranchStart (the run list's "Branch from here"), run in its parent's rows and
        threads."""
        window = self.window
        if window.controller.running or window.denoiser is None:
            return
        card = window.card
        try:
            settings = settings if settings is not None else window.current_settings()
            classifier_source, classifier = self._classifier(settings, card)
        except StudioError as exc:
            window.show_error(str(exc))
            return
        window.error_banner.hide()
        if branch is None:
            persistence.write_json("run/settings", settings.to_dict())
            window.remember_model_settings()
        if branch is not None:
            parent = branch.parent["record"]
            settings = settings.replace(model_batch=int(parent.get("model_batch", settings.batch_size)))
        elif card.data_kind == "image":
            # as `studio sample` does: the model sees the batch's rows per call (or an opened recipe's), recorded so
            # that a sample's PNG recipe makes it again bit for bit; vectors keep their one big call
            settings = settings.replace(model_batch=window.model_batch_for(settings))
        num_steps = self._num_steps(settings.sampler, card)
        options = {"record_extra": recipe_extras(card, window.source, settings.model_batch, classifier,
                                                 classifier_source),
                   "keep_floats": window.presenter.keeps_floats_for(num_steps, settings.batch_size,
                                                                    card.data_shape)}
        if classifier is not None:
            options["classifier"] = classifier
        threads, layout = window.threads_for(settings), window.layout_for(settings)
        if branch is not None:
            threads, layout = branch.parent["record"].get("threads"), None
            options["branch"] = branch
        elif window.opened_branch is not None and window.opened_branch[:2] == (settings.seed, settings.batch_size):
            options["branch"] = _remade_branch(*window.opened_branch[2:])
        if threads is not None:
            options["threads"] = threads
        if layout is not None:
            options["layout"] = layout
        self._run_model = (card, window.denoiser.schedule)
        self._network = ""
        window.controller.start(window.denoiser, settings, **options)
        self._show_started(settings, num_steps)

    @staticmethod
    def _num_steps(sampler, card) -> int:
        """The Steps a run yields: one per entry of its timestep list (PNDM's has one more than its steps); the
        steps asked for if the list cannot be made (the run itself then says why)."""
        try:
            return len(sampler.timestep_list(card.num_train_timesteps))
        except StudioError:
            return sampler.steps

    def _classifier(self, settings, card):
        """(source, loaded classifier) for a classifier-guided run, (None, None) otherwise."""
        if settings.guidance.kind != "classifier":
            return None, None
        classifiers = self.window.classifiers
        source, why_not = classifiers.for_model(card)
        if source is None:
            raise StudioError(f"classifier guidance is not available: {why_not}")
        return source, classifiers.load(source)

    def _show_started(self, settings, num_steps: int) -> None:
        window = self.window
        window.progress_bar.show_run(num_steps)
        window.status_label.setText(status_texts.starting_text(settings.network))
        window.run_state_label.setText(status_texts.running_text())
        window.update_actions()
        window.run_started.emit()

    # --- stopping --------------------------------------------------------------------------------------------------
    def cancel(self) -> None:
        window = self.window
        if window.controller.running:
            window.controller.cancel()
            window.status_label.setText(status_texts.CANCELLING_STATUS)
            window.cancel_action.setEnabled(False)

    # --- following -------------------------------------------------------------------------------------------------
    def _on_ready(self, info) -> None:
        window = self.window
        card, schedule = self._run_model
        window.presenter.on_run_ready(info, card, schedule)
        window.progress_bar.setRange(0, info.num_steps)
        window.device_label.setText(f"{info.device}, {info.dtype}")
        window.model_panel.show_runs_on(f"{info.device}, {info.dtype}")
        self._network = status_texts.network_summary(info)
        if self._network:
            window.run_state_label.setText(status_texts.running_text(self._network))

    def _on_steps(self, steps) -> None:
        """A batch of steps from the worker (a fast model's come several at a time): kept, the timeline grown
        once, the status written at most every PROGRESS_INTERVAL_S; ``step_added`` for each."""
        window = self.window
        window.presenter.on_steps(steps)
        frames = steps[-1].frames
        done, total = frames.index + 1, frames.num_steps
        now = time.perf_counter()
        if done == total or now - self._progress_at >= PROGRESS_INTERVAL_S:   # text and bar repaint: not per step
            self._progress_at = now
            window.progress_bar.setValue(done)
            window.status_label.setText(status_texts.progress_text(done, total, window.presenter.rate(),
                                                                   window.presenter.model_calls_done))
        for step in steps:
            window.step_added.emit(step.frames.index)

    def _on_done(self, outcome: RunOutcome) -> None:
        window = self.window
        window.presenter.on_run_done()
        self._run_model = None
        window.run_state_label.setText("")
        store = window.presenter.store
        steps_kept = store.steps_done if store is not None else 0
        if steps_kept:
            window.progress_bar.setValue(steps_kept)   # a throttled update may have skipped the last ones
        if outcome.status == FAILED:
            self._show_failure(outcome, steps_kept)
        elif outcome.status == CANCELLED:
            window.status_label.setText(status_texts.cancelled_text(outcome.message,
                                                                    window.presenter.model_calls_done))
        else:
            window.status_label.setText(status_texts.finished_text(outcome.steps_done, outcome.seconds,
                                                                   self._network, store, self._model_calls()))
            if window.show_step_after_run is not None:
                window.timeline.set_step(window.show_step_after_run - 1)   # the step the opened PNG showed
        window.show_step_after_run = None
        window.update_actions()
        window.run_finished.emit(outcome)

    def _model_calls(self) -> int:
        """A finished run's model calls (NFE): its record's (the sampler's count), else the sum of its steps'."""
        presenter = self.window.presenter
        recorded = presenter.info.record.get("model_calls") if presenter.info is not None else None
        return recorded if isinstance(recorded, int) else presenter.model_calls_done

    def _show_failure(self, outcome: RunOutcome, steps_kept: int) -> None:
        """The message in the banner (the exception behind "Details…"), the exception kept, and a log record:
        an error with its traceback for a bug, a quieter one for what the message explains (NaN, bad settings)."""
        window = self.window
        window.last_run_exception = outcome.exception
        expected = outcome.exception is None or is_expected(outcome.exception)
        logger.log(logging.INFO if expected else logging.ERROR, "the run failed: %s\n%s", outcome.message,
                   outcome.traceback or "(no traceback)")
        window.show_error(status_texts.failed_message(outcome.message, steps_kept), details=outcome.traceback)
        window.status_label.setText(status_texts.FAILED_STATUS)
