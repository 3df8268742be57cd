"""The Runs dock: every run is kept and shown again on a click; rename, pin, delete; the memory budget drops the
oldest unpinned runs' frames (final samples kept); "Branch from here" finishes a kept run from the timeline's step:
with the parent's settings bit for bit, with a new seed only after step k, and its PNG's recipe makes the same
pixels headless; bad branches are one message and nothing else changes."""

from __future__ import annotations

import numpy as np
from PIL import Image
import pytest
from gui_models import tiny_digits, write_unet_checkpoint
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QListWidget, QPushButton
from window_driving import generate

from studio.core.samplers import sampler_settings
from studio.core.settings import RunSettings
from studio.gui.branch_dialog import BranchDialog
from studio.gui.run_list import FRAMES_DROPPED
from studio.gui.worker import FINISHED


def runs_of(window):
    return window.run_list.runs.runs


def click_item(window, qtbot, row: int) -> None:
    lst = window.findChild(QListWidget, "runList")
    rect = lst.visualItemRect(lst.item(row))
    qtbot.mouseClick(lst.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def parent_settings(run) -> RunSettings:
    return RunSettings.from_dict(run.info.record["settings"])


def branch(window, qtbot, settings, at_step: int):
    """Move the timeline to ``at_step`` (the x_t after that many steps) and branch with ``settings``."""
    window.timeline.set_step(at_step - 1)
    with qtbot.waitSignal(window.run_finished, timeout=30000) as finished:
        assert window.run_list.branch_from_here(settings)
    assert finished.args[0].status == FINISHED, finished.args[0].message
    return runs_of(window)[-1]


def file_model_run(make_window, qtbot, tmp_path, steps: int, seed: int):
    """A window on a checkpoint file (so its PNGs can be opened again) after one DDIM run at eta 1 of 2 samples."""
    checkpoint = write_unet_checkpoint(tmp_path / "model.safetensors")
    window = make_window()
    assert window.open_checkpoint(checkpoint)
    window.sampler_panel.eta_spin.setValue(1.0)
    generate(window, qtbot, steps=steps, batch=2, seed=seed)
    return window, runs_of(window)[0]


@pytest.fixture
def window(make_window):
    return make_window(tiny_digits())


def test_every_run_is_kept_and_a_click_shows_it_again(window, qtbot):
    generate(window, qtbot, steps=3, batch=2, seed=1)
    generate(window, qtbot, steps=5, batch=3, seed=2)
    first, second = runs_of(window)
    lst = window.findChild(QListWidget, "runList")
    assert lst.count() == 2 and lst.item(1).isSelected()
    assert "3 steps" in lst.item(0).text() and "seed 1" in lst.item(0).text() and "3 calls" in lst.item(0).text()
    assert "5 steps" in lst.item(1).text() and not lst.item(0).icon().isNull()
    assert window.presenter.store is second.store
    click_item(window, qtbot, 0)
    assert window.run_list.shown is first and window.presenter.store is first.store
    assert window.timeline.count == 3 and window.timeline.current == 2   # its last step, as when it ended
    assert window.presenter.info.seeds == [1, 2]
    assert window.presenter.floats.final.tolist() == first.final.tolist()
    # a new run from a shown old one keeps the list whole
    generate(window, qtbot, steps=2, batch=2, seed=3)
    assert lst.count() == 3 and runs_of(window)[-1].number == 3


def test_rename_pin_and_delete(window, qtbot, monkeypatch):
    generate(window, qtbot, steps=2, batch=2)
    generate(window, qtbot, steps=2, batch=2, seed=9)
    first, second = runs_of(window)
    lst = window.findChild(QListWidget, "runList")
    click_item(window, qtbot, 0)
    from PySide6.QtWidgets import QInputDialog

    monkeypatch.setattr(QInputDialog, "getText", staticmethod(lambda *a, **k: ("  baseline  run ", True)))
    qtbot.mouseClick(window.findChild(QPushButton, "runRename"), Qt.MouseButton.LeftButton)
    assert first.name == "baseline run" and lst.item(0).text().startswith("baseline run ·")
    window.run_list.rename(first, "   ")
    assert first.name == "baseline run" and "cannot be empty" in window.error_banner.text.text()
    qtbot.mouseClick(window.findChild(QPushButton, "runPin"), Qt.MouseButton.LeftButton)
    assert first.pinned and "pinned" in lst.item(0).text()
    assert window.findChild(QPushButton, "runPin").text() == "Unpin"
    window.run_list.compare([first, second])
    assert window.run_list.compare_view.isVisible()
    qtbot.mouseClick(window.findChild(QPushButton, "runDelete"), Qt.MouseButton.LeftButton)
    assert runs_of(window) == [second] and lst.count() == 1
    assert window.run_list.compare_view is None   # a comparison of a deleted run closes
    assert window.run_list.shown is None and window.presenter.store is None


def test_past_the_budget_the_oldest_unpinned_runs_drop_their_frames(window, qtbot):
    generate(window, qtbot, steps=4, batch=2, seed=1)
    one = runs_of(window)[0].nbytes
    window.run_list.toggle_pin(runs_of(window)[0])
    generate(window, qtbot, steps=4, batch=2, seed=2)
    window.run_list.set_budget(int(2.5 * one))   # room for two runs' frames
    generate(window, qtbot, steps=4, batch=2, seed=3)
    pinned, oldest_unpinned, newest = runs_of(window)
    assert pinned.has_frames and newest.has_frames
    assert not oldest_unpinned.has_frames and oldest_unpinned.note == FRAMES_DROPPED
    assert oldest_unpinned.final is not None and oldest_unpinned.thumbnail is not None
    assert window.run_list.runs.nbytes <= int(2.5 * one)
    lst = window.findChild(QListWidget, "runList")
    assert FRAMES_DROPPED in lst.item(1).text()
    assert "3 runs" in window.run_list.panel.memory_label.text()
    click_item(window, qtbot, 1)   # its final samples show, and the views say its frames are gone
    assert window.presenter.store is None
    assert "frames were dropped" in window.preview_xt.title.text()
    assert not window.branch_action.isEnabled()


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_a_branch_with_the_parent_settings_is_the_parent_bit_for_bit(window, qtbot, eta):
    window.sampler_panel.eta_spin.setValue(eta)
    generate(window, qtbot, steps=6, batch=3, seed=4)
    parent = runs_of(window)[0]
    child = branch(window, qtbot, parent_settings(parent), at_step=2)
    assert child.info.record["branch"]["mode"] == "resume"
    assert np.array_equal(child.final, parent.final)
    x_t, x0_pred = child.floats.arrays()
    parent_x_t, parent_x0_pred = parent.floats.arrays()
    # its timeline: the parent's first 2 steps, then its own, which are the parent's from step 2 on
    assert child.shared_steps == 2 and window.timeline.count == 6 and window.run_list.shown is child
    assert np.array_equal(x_t, parent_x_t) and np.array_equal(x0_pred, parent_x0_pred)
    assert np.array_equal(child.store.frame(0).x_t_tiles, parent.store.frame(0).x_t_tiles)
    assert child.parent is parent and child.at_step == 2
    assert "branch of run 1 at step 2" in window.findChild(QListWidget, "runList").item(1).text()


def test_the_branch_dialog_changes_the_seed_for_the_steps_after_k(window, qtbot, monkeypatch):
    window.sampler_panel.eta_spin.setValue(1.0)
    generate(window, qtbot, steps=6, batch=2, seed=4)
    parent = runs_of(window)[0]

    def answer(dialog):
        assert dialog.seed_spin.value() == 4 and dialog.steps_spin.value() == 6
        dialog.seed_spin.setValue(70)
        return 1

    monkeypatch.setattr(BranchDialog, "exec", answer)
    window.timeline.set_step(2)   # x_t after 3 steps
    assert window.branch_action in window.timeline.slider.actions()   # the timeline's right-click menu offers it
    with qtbot.waitSignal(window.run_finished, timeout=30000):
        window.branch_action.trigger()
    child = runs_of(window)[-1]
    assert child.info.seeds == [70, 71] and child.at_step == 3
    x_t, _ = child.floats.arrays()
    parent_x_t, _ = parent.floats.arrays()
    assert np.array_equal(x_t[:4], parent_x_t[:4])   # the shared steps: x_T and the parent's first 3
    # its own steps are not branched again; the shared ones are the parent's
    window.timeline.set_step(4)
    assert not window.run_list.branch_from_here(parent_settings(parent))
    assert "is itself a branch" in window.error_banner.text.text()
    window.timeline.set_step(0)
    with qtbot.waitSignal(window.run_finished, timeout=30000):
        assert window.run_list.branch_from_here(parent_settings(parent))
    again = runs_of(window)[-1]
    assert again.parent is parent and again.at_step == 1 and np.array_equal(again.final, parent.final)
    assert not np.allclose(child.final, parent.final, atol=1e-4)


def test_a_branch_png_makes_its_pixels_again_headless_and_in_the_window(make_window, qtbot, tmp_path):
    from studio.cli import main as studio_main

    window, parent = file_model_run(make_window, qtbot, tmp_path, steps=5, seed=3)
    settings = parent_settings(parent).replace(seed=30, class_label=7)
    child = branch(window, qtbot, settings, at_step=2)
    png = tmp_path / "branch.png"
    window.presenter.focus_sample(1)
    assert window.exports.export_sample_png(path=png, index=1)
    assert studio_main(["sample", "--from-png", str(png), "--no-progress", "--out", str(tmp_path / "again")]) == 0
    assert np.array_equal(np.load(tmp_path / "again" / "samples.npy")[0], child.final[1])
    # and in the window: the opened PNG's Generate makes the parent's sample again for 2 steps, then the branch
    assert window.open_path(png)
    generate(window, qtbot)
    remade = runs_of(window)[-1]
    assert remade.info.record["branch"]["at_step"] == 2 and np.array_equal(remade.final[0], child.final[1])


def test_a_bad_branch_is_one_message_and_nothing_runs(window, qtbot):
    generate(window, qtbot, steps=3, batch=2)
    parent = runs_of(window)[0]
    window.timeline.set_step(2)   # the final step
    assert not window.run_list.branch_from_here(parent_settings(parent))
    assert "nothing is left to branch" in window.error_banner.text.text()
    window.timeline.set_step(0)
    multistep = parent_settings(parent).replace(sampler=sampler_settings("dpmpp_2m", steps=4))
    with qtbot.waitSignal(window.run_finished, timeout=30000) as finished:
        assert window.run_list.branch_from_here(multistep)
    assert finished.args[0].status != FINISHED
    assert "cannot start at step 1" in window.error_banner.text.text()
    assert len(runs_of(window)) == 1 and not window.controller.running


def test_the_run_list_file_brings_every_run_back(window, qtbot, make_window, tmp_path):
    window.sampler_panel.eta_spin.setValue(1.0)
    generate(window, qtbot, steps=5, batch=2, seed=4)
    generate(window, qtbot, steps=3, batch=3, seed=8)
    parent = runs_of(window)[0]
    window.run_list.show(parent)
    child = branch(window, qtbot, parent_settings(parent).replace(seed=50), at_step=2)
    window.run_list.rename(parent, "baseline")
    window.run_list.toggle_pin(parent)
    path = tmp_path / "runs.studioruns"
    assert window.run_list.save(path)
    other = make_window(tiny_digits())
    assert other.run_list.open(path)
    opened = runs_of(other)
    assert [r.name for r in opened] == ["baseline", "run 2", "run 3"] and opened[0].pinned
    assert opened[2].parent is opened[0] and opened[2].at_step == 2 and opened[2].shared_steps == 2
    for before, after in zip(runs_of(window), opened):
        assert np.array_equal(before.final, after.final)
        assert all(np.array_equal(a, b) for a, b in zip(before.floats.arrays(), after.floats.arrays()))
        assert after.info.record["seeds"] == before.info.record["seeds"]
        assert np.array_equal(after.store.frame(after.steps_done - 1).x_t_tiles,
                              before.store.frame(before.steps_done - 1).x_t_tiles)
    assert other.run_list.shown is opened[2] and other.timeline.count == len(child.timesteps)
    # an opened run branches as the one it was saved from: with its own settings, bit for bit
    other.run_list.show(opened[0])
    again = branch(other, qtbot, parent_settings(opened[0]), at_step=3)
    assert np.array_equal(again.final, parent.final)


def _damaged(path, tmp_path, case):
    import json
    import zipfile

    data = path.read_bytes()
    bad = tmp_path / f"{case}.studioruns"
    if case == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    else:
        with zipfile.ZipFile(path) as source, zipfile.ZipFile(bad, "w") as target:
            for info in source.infolist():
                content = source.read(info)
                if info.filename == "manifest.json":
                    manifest = json.loads(content)
                    manifest["version"] = 2
                    content = json.dumps(manifest).encode()
                target.writestr(info, content)
    return bad


@pytest.mark.parametrize("case, message", [("truncated", "truncated|damaged|not a"), ("newer", "newer studio"),
                                           ("other model", "another model|other model|sha256")])
def test_a_bad_run_list_file_is_one_message_and_the_list_stays(window, qtbot, make_window, tmp_path, case, message):
    import re

    generate(window, qtbot, steps=2, batch=2)
    path = tmp_path / "runs.studioruns"
    assert window.run_list.save(path)
    if case == "other model":
        target, bad = make_window(tiny_digits(name="another-digits")), path
    else:
        target, bad = window, _damaged(path, tmp_path, case)
    before = list(runs_of(target))
    assert not target.run_list.open(bad)
    assert re.search(message, target.error_banner.text.text()), target.error_banner.text.text()
    assert runs_of(target) == before


def test_a_png_of_a_branchs_shared_step_carries_its_parents_recipe_and_one_past_k_the_branchs(make_window, qtbot,
                                                                                                tmp_path):
    """A finished branch's timeline starts with its parent's k steps: a PNG of one of them is the parent's sample
    and carries the parent's recipe and step; a PNG of a later step carries the branch's recipe with the step
    counted in the branch's own steps, so opening it and generating shows the same pixels."""
    from studio.core.recipe import read_recipe

    window, parent = file_model_run(make_window, qtbot, tmp_path, steps=6, seed=4)
    window.timeline.set_step(1)   # the parent's own PNG of step 2
    assert window.exports.export_sample_png(path=tmp_path / "parent.png", index=1)
    child = branch(window, qtbot, parent_settings(parent).replace(seed=70), at_step=3)
    assert child.shared_steps == 3 and child.info.shared_steps == 3
    window.timeline.set_step(1)   # step 2: shared
    assert window.exports.export_sample_png(path=tmp_path / "shared.png", index=1)
    shared, of_parent = read_recipe(tmp_path / "shared.png"), read_recipe(tmp_path / "parent.png")
    assert shared == of_parent and shared["step"] == 2 and "branch" not in shared
    assert np.array_equal(*(np.asarray(Image.open(tmp_path / f"{name}.png")) for name in ("shared", "parent")))
    window.timeline.set_step(4)   # step 5: the branch's own second step
    assert window.exports.export_sample_png(path=tmp_path / "own.png", index=1)
    own = read_recipe(tmp_path / "own.png")
    assert own["step"] == 2 and own["branch"]["at_step"] == 3 and own["seed"] == 71
    pixels = np.asarray(Image.open(tmp_path / "own.png"))
    assert window.open_path(tmp_path / "own.png")
    generate(window, qtbot)   # the parent's sample for 3 steps, then the branch; the timeline goes to step 2
    assert window.timeline.current == 1
    assert window.exports.export_sample_png(path=tmp_path / "again.png", index=0)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "again.png")), pixels)
