"""Settings that belong to one model (x0 clipping and its range, variance, class, guidance) never leak into
another (issue 18): each model gets back what was chosen for it, a model without any shows its model card's,
across model switches, reopened PNGs and restarts; what does not fit the model opened is said in the status bar.
Seed, steps, sampler and batch stay global."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gui_models import tiny_digits, write_unet_checkpoint
from studio.core.bundled import bundled_models
from studio.core.recipe import read_recipe, write_png
from studio.core.samplers import DDIMSettings
from studio.core.settings import CLASS_CYCLE, GuidanceSettings, RunSettings
from studio.gui import persistence
from studio.gui.classifiers import bundled_classifier_sources
from window_driving import generate

# the bundled models the window opens as models (a classifier only guides one); "shapes" joins when it ships
OPENABLE = [model.name for model in bundled_models() if model.name not in bundled_classifier_sources()]


def choose(combo, data) -> None:
    """Pick the entry whose data is ``data``, as a user does (the combo's signals go out)."""
    index = combo.findData(data)
    assert index >= 0, f"{combo.objectName()} has no {data!r}"
    combo.setCurrentIndex(index)


def set_own_settings(window) -> dict:
    """Choose every model-specific setting the open model takes, away from its model card's; returns them."""
    panel, card = window.sampler_panel, window.card
    choose(panel.clip_combo, "clip")
    panel.clip_range_spin.setValue(0.5)
    choose(panel.variance_combo, "fixed_large")
    chosen = {"clip": "clip", "clip_range": 0.5, "variance": "fixed_large", "class": None, "guidance": "none"}
    if card.conditional:
        label = min(5, len(card.class_names) - 1)
        choose(panel.class_combo, label)
        chosen["class"] = label
        if card.null_class is not None:
            choose(panel.guidance_combo, "classifier_free")
            panel.guidance_scale_spin.setValue(2.5)
            chosen["guidance"] = "classifier_free"
    return chosen


def shown_settings(window) -> dict:
    panel = window.sampler_panel
    return {"clip": panel.clip_combo.currentData(), "clip_range": panel.clip_range_spin.value(),
            "variance": panel.variance_combo.currentData(), "class": window.current_settings().class_label,
            "guidance": window.current_settings().guidance.kind}


def as_the_model_card(window) -> dict:
    """What a model shows when nothing was chosen for it."""
    return {"clip": "model", "clip_range": 1.0, "variance": None,
            "class": CLASS_CYCLE if window.card.conditional else None, "guidance": "none"}


def set_global_settings(window) -> None:
    window.sampler_panel.steps_spin.setValue(7)
    window.seed_panel.seed_spin.setValue(1234)
    window.seed_panel.batch_spin.setValue(3)


def assert_global_settings_kept(window) -> None:
    settings = window.current_settings()
    assert (settings.sampler.name, settings.sampler.steps, settings.seed, settings.batch_size) == ("ddim", 7, 1234, 3)


@pytest.mark.parametrize("first, second", list(itertools.permutations(OPENABLE, 2)))
def test_a_models_own_settings_do_not_leak_into_another_bundled_model(make_window, first, second):
    window = make_window()
    assert window.open_checkpoint(first), window.error_banner.message()
    chosen = set_own_settings(window)
    set_global_settings(window)
    assert shown_settings(window) == chosen

    assert window.open_checkpoint(second), window.error_banner.message()
    assert shown_settings(window) == as_the_model_card(window)
    sampler = window.current_settings().sampler
    assert sampler.clip_sample is None and not sampler.thresholding   # the run follows the model card
    assert_global_settings_kept(window)

    assert window.open_checkpoint(first)                       # the first model gets its own back
    assert shown_settings(window) == chosen
    assert_global_settings_kept(window)
    window.close()

    again = make_window(None, restore_last=True)               # and after a restart
    assert again.card.name == window.card.name
    assert shown_settings(again) == chosen
    assert_global_settings_kept(again)
    assert again.open_checkpoint(second)
    assert shown_settings(again) == as_the_model_card(again)


def test_settings_chosen_for_the_second_model_come_back_with_it_too(make_window):
    if len(OPENABLE) < 2:
        pytest.skip("needs two bundled models")
    first, second = OPENABLE[:2]
    window = make_window()
    assert window.open_checkpoint(first)
    mine = set_own_settings(window)
    assert window.open_checkpoint(second)
    choose(window.sampler_panel.clip_combo, "off")
    theirs = shown_settings(window)
    assert window.open_checkpoint(first) and shown_settings(window) == mine
    assert window.open_checkpoint(second) and shown_settings(window) == theirs


def test_a_digits_png_does_not_clip_toy2d_after_a_restart(make_window, qtbot, tmp_path):
    """The issue's steps: open a digits PNG (clip to ±1, class 5, batch 1), quit, start `studio toy2d`."""
    if not {"digits", "toy2d"} <= set(OPENABLE):
        pytest.skip("needs the bundled digits and toy2d models")
    maker = make_window()
    assert maker.open_checkpoint("digits")
    choose(maker.sampler_panel.clip_combo, "clip")
    maker.sampler_panel.clip_range_spin.setValue(1.0)
    choose(maker.sampler_panel.class_combo, 5)
    generate(maker, qtbot, steps=3, batch=1, seed=2)
    png = tmp_path / "digit.png"
    assert maker.exports.export_sample_png(png)
    recipe = read_recipe(png)
    assert recipe["settings"]["sampler"]["clip_sample"] is True and recipe["settings"]["class_label"] == 5
    maker.close()

    opened = make_window(None, str(png))                       # `studio digit.png`, then quit
    assert opened.card.name == maker.card.name
    assert shown_settings(opened)["clip"] == "clip" and opened.current_settings().class_label == 5
    opened.close()

    toy = make_window(None, "toy2d")                           # `studio toy2d`
    assert toy.card.data_kind == "vector"
    assert shown_settings(toy) == as_the_model_card(toy)
    assert "±1.00" not in toy.sampler_panel.clip_combo.currentText()
    outcome = generate(toy, qtbot, steps=10, batch=64)
    assert outcome.steps_done == 10
    record = toy.presenter.info.record["settings"]
    # the run recorded the model card's rule (toy2d: no clipping), not the digits PNG's clip to ±1
    assert record["sampler"]["clip_sample"] == toy.card.clip_sample and record["class_label"] == CLASS_CYCLE
    final = toy.presenter.store.frame(9).x_t_values
    assert not np.allclose(final, -1.0) and np.abs(final).max() > 1.0   # not pinned to (-1, -1)

    assert toy.open_checkpoint("digits")                       # digits keeps what its PNG set
    assert shown_settings(toy)["clip"] == "clip" and toy.current_settings().class_label == 5


def test_a_settings_file_from_before_per_model_settings_gives_them_to_the_last_model_only(make_window):
    if not {"digits", "toy2d"} <= set(OPENABLE):
        pytest.skip("needs the bundled digits and toy2d models")
    old = RunSettings(sampler=DDIMSettings(steps=9, clip_sample=True, clip_sample_range=1.0), seed=77, batch_size=1,
                      class_label=5, guidance=GuidanceSettings("classifier_free", 2.0))
    persistence.write_json("run/settings", old.to_dict())
    persistence.write_text("model/last", "digits")
    window = make_window(None, "toy2d")
    assert shown_settings(window) == as_the_model_card(window)
    settings = window.current_settings()
    assert (settings.sampler.steps, settings.seed, settings.batch_size) == (9, 77, 1)   # the global ones stay
    assert window.open_checkpoint("digits")
    shown = shown_settings(window)
    assert (shown["clip"], shown["class"], shown["guidance"]) == ("clip", 5, "classifier_free")


def test_a_remembered_setting_that_does_not_fit_the_model_is_said_in_the_status_bar(make_window):
    persistence.write_json("run/model_settings", {"memory:tiny-digits": {
        "clip": "clip", "clip_range": 0.25, "variance_type": "learned", "class_label": 12,
        "guidance": {"kind": "none", "scale": 3.0}}})
    window = make_window(tiny_digits())
    status = window.status_label.text()
    assert "class 12" in status and "variance learned" in status, status
    shown = shown_settings(window)
    assert (shown["clip"], shown["clip_range"], shown["class"], shown["variance"]) == ("clip", 0.25, CLASS_CYCLE, None)


def test_a_recipe_that_does_not_fit_the_model_is_said_in_the_status_bar(make_window, qtbot, tmp_path):
    checkpoint = write_unet_checkpoint(tmp_path / "ten-classes.safetensors", random_seed=1)
    window = make_window()
    assert window.open_checkpoint(checkpoint)
    generate(window, qtbot, steps=3, batch=1)
    png = tmp_path / "sample.png"
    assert window.exports.export_sample_png(png)
    recipe = read_recipe(png)
    recipe["settings"]["class_label"] = recipe["class_label"] = 12   # a class this model does not have
    odd = tmp_path / "class-12.png"
    write_png(odd, np.zeros((8, 8), np.uint8), recipe)
    assert window.open_path(odd)
    status = window.status_label.text()
    assert "class 12 is not available" in status and "press Generate" in status, status


def test_a_run_remembers_the_models_settings_even_without_a_clean_quit(make_window, qtbot):
    window = make_window(tiny_digits())
    choose(window.sampler_panel.class_combo, 3)
    generate(window, qtbot, steps=2, batch=1)
    remembered = persistence.read_json("run/model_settings")
    assert list(remembered) == ["memory:tiny-digits"] and remembered["memory:tiny-digits"]["class_label"] == 3
