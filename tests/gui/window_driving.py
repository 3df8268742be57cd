"""Driving the window the way a person does, for the tests: set the panels, click Generate, wait for the end."""

from __future__ import annotations

from PySide6.QtCore import Qt

from studio.gui.worker import FINISHED


def configure(window, steps: int | None = None, batch: int | None = None, seed: int | None = None) -> None:
    if steps is not None:
        window.sampler_panel.steps_spin.setValue(steps)
    if batch is not None:
        window.seed_panel.batch_spin.setValue(batch)
    if seed is not None:
        window.seed_panel.seed_spin.setValue(seed)


def generate(window, qtbot, timeout: int = 30000, **settings):
    """Set ``settings`` (steps, batch, seed), click Generate and wait for the run and its thread to end."""
    configure(window, **settings)
    with qtbot.waitSignal(window.run_finished, timeout=timeout) as finished:
        qtbot.mouseClick(window.generate_button, Qt.MouseButton.LeftButton)
    outcome = finished.args[0]
    assert outcome.status == FINISHED, outcome.message
    return outcome


def patch_save_dialog(monkeypatch, path) -> list:
    """QFileDialog.getSaveFileName answers ``path`` ("" : the user cancelled); returns the calls' titles."""
    from PySide6.QtWidgets import QFileDialog

    asked = []

    def answer(parent, title, *args, **kwargs):
        asked.append(title)
        return (str(path) if path else "", "")

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(answer))
    return asked
