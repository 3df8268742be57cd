"""Every sampler of the engine from the Sampler panel: its widgets follow its settings class, a run records the
panel's settings and shows its model calls, the schedule marks its (fractional, repeated) timesteps, a PNG made
by it opens to the same settings and the same pixels, and a setting the engine refuses changes nothing."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt

from gui_models import TinyDigitsEps, digits_card, tiny_digits, write_unet_checkpoint
from studio.core.checkpoints import open_checkpoint
from studio.core.choices import SAMPLER_NAMES, SPACINGS
from studio.core.engine import Run
from studio.core.errors import SettingsError
from studio.core.models.denoiser import NetworkDenoiser
from studio.core.preview import to_uint8_tiles
from studio.core.recipe import read_recipe, recipe_extras, recipe_for_sample, settings_from_recipe, write_png
from studio.core.samplers import SAMPLERS, sampler_settings
from studio.core.settings import RunSettings
from studio.gui.worker import FAILED, FINISHED
from window_driving import generate

NEW_SAMPLERS = [name for name in SAMPLER_NAMES if name not in ("ddim", "ddpm")]
STEPS = 4
# the widget each sampler-specific settings field is shown in
FIELD_WIDGETS = {"eta": "eta_spin", "sigma_kind": "ddim_noise_combo", "variance_type": "variance_combo",
                 "order": "order_spin", "karras": "karras_check"}


def choose(combo, data) -> None:
    index = combo.findData(data)
    assert index >= 0 and combo.model().item(index).isEnabled(), f"{data!r} is not offered"
    combo.setCurrentIndex(index)


def class_fields(name: str) -> set[str]:
    return {field.name for field in fields(SAMPLERS[name])}


def takes(name: str, **values) -> bool:
    try:
        sampler_settings(name, **values)
    except SettingsError:
        return False
    return True


def offered(combo) -> list:
    return [combo.itemData(i) for i in range(combo.count()) if combo.model().item(i).isEnabled()]


def assert_widgets_follow_the_class(panel, name: str) -> None:
    """A sampler-specific widget is enabled exactly when the class has its field; a greyed one says why; the
    spacings and clipping offered are those the class takes."""
    have = class_fields(name)
    for field, attribute in FIELD_WIDGETS.items():
        widget = getattr(panel, attribute)
        if field == "eta":   # eta also waits for sigma_kind "eta"
            assert widget.isEnabled() == (field in have and panel.ddim_noise_combo.currentData() == "eta")
        else:
            assert widget.isEnabled() == (field in have), f"{attribute} for {name}"
        if field not in have:
            assert "Not used by" in widget.toolTip(), f"{attribute} should say why it is greyed out"
    values = {"karras": panel.karras_check.isChecked()} if "karras" in have else {}
    assert offered(panel.spacing_combo) == [s for s in SPACINGS if takes(name, spacing=s, **values)]
    assert ("quad" in offered(panel.spacing_combo)) == (name in ("ddim", "ddpm"))
    assert ("clip" in offered(panel.clip_combo)) == takes(name, clip_sample=True)
    assert ("threshold" in offered(panel.clip_combo)) == takes(name, thresholding=True)
    for i in range(panel.spacing_combo.count()):
        if not panel.spacing_combo.model().item(i).isEnabled():
            assert "Not available for" in panel.spacing_combo.itemData(i, Qt.ItemDataRole.ToolTipRole)


def test_the_sampler_combo_says_what_each_sampler_is(make_window):
    window = make_window(tiny_digits())
    combo = window.sampler_panel.sampler_combo
    assert [combo.itemData(i) for i in range(combo.count())] == list(SAMPLER_NAMES)
    for i in range(combo.count()):
        tip = combo.itemData(i, Qt.ItemDataRole.ToolTipRole)
        assert "diffusers' " in tip and "model calls" in tip and "order" in tip, tip
        assert "deterministic" in tip or "stochastic" in tip, tip
    assert "39 model calls" in combo.itemData(SAMPLER_NAMES.index("heun"), Qt.ItemDataRole.ToolTipRole)
    assert "21 model calls" in combo.itemData(SAMPLER_NAMES.index("pndm"), Qt.ItemDataRole.ToolTipRole)


@pytest.mark.parametrize("name", NEW_SAMPLERS)
def test_each_new_sampler_runs_from_the_panel_with_its_settings(make_window, qtbot, name):
    window = make_window(tiny_digits())
    panel = window.sampler_panel
    choose(panel.sampler_combo, name)
    assert_widgets_follow_the_class(panel, name)
    panel.steps_spin.setValue(STEPS)
    have = class_fields(name)
    if "karras" in have:
        panel.karras_check.setChecked(True)
    if "order" in have:
        panel.order_spin.setValue(3)
    if "karras" not in have:
        choose(panel.spacing_combo, "trailing")
    if takes(name, thresholding=True):
        choose(panel.clip_combo, "threshold")
    elif takes(name, clip_sample=True):
        choose(panel.clip_combo, "clip")
        panel.clip_range_spin.setValue(2.5)
    assert_widgets_follow_the_class(panel, name)
    asked = panel.sampler_settings()
    assert type(asked) is SAMPLERS[name]
    generate(window, qtbot, batch=2, seed=3)

    record = window.presenter.info.record
    ran = record["settings"]["sampler"]
    assert ran["sampler"] == name and ran["steps"] == STEPS
    assert ran == asked.resolve(window.card).to_dict()   # the panel's settings, as the engine resolved them
    for field in have & {"karras", "order", "thresholding", "spacing"}:
        assert ran[field] == getattr(asked, field)
    if asked.clip_sample:
        assert (ran["clip_sample"], ran["clip_sample_range"]) == (True, 2.5)
    # NFE: the record's count in the status; the progress bar and timeline count the steps (one per Step)
    num_steps = len(record["timesteps"])
    assert record["model_calls"] == asked.model_calls(num_steps) == window.presenter.model_calls_done
    calls = f"{record['model_calls']} model calls"
    assert f"done: {num_steps} steps, {calls} in" in window.status_label.text()
    assert panel.calls_label.text() == f"= {calls}"
    assert window.progress_bar.maximum() == window.progress_bar.value() == num_steps
    assert window.timeline.slider.maximum() == num_steps - 1
    # the schedule marks the timesteps the run visited, fractional ones at their own t
    marks = window.plots_panel.timestep_marks.getData()[0]
    assert np.array_equal(marks, np.asarray(record["timesteps"], dtype=np.float64))
    assert np.array_equal(window.presenter.timesteps, marks)
    assert window.plots_panel.schedule_cursor.value() == pytest.approx(record["timesteps"][-1])


def test_heun_counts_two_calls_per_step_and_euler_karras_visits_fractional_timesteps(make_window, qtbot):
    window = make_window(tiny_digits())
    panel = window.sampler_panel
    choose(panel.sampler_combo, "heun")
    assert panel.steps_spin.minimum() == SAMPLERS["heun"].min_steps == 2
    panel.steps_spin.setValue(1)   # the spin does not take what the class refuses
    assert panel.steps_spin.value() == 2
    panel.karras_check.setChecked(True)
    generate(window, qtbot, steps=5, batch=1)
    record = window.presenter.info.record
    assert record["model_calls"] == 9 and "5 steps, 9 model calls" in window.status_label.text()
    assert window.presenter.step_calls.tolist() == [2, 2, 2, 2, 1]
    fractional = [t for t in record["timesteps"] if not float(t).is_integer()]
    assert fractional, "Karras timesteps fall between training timesteps"
    window.timeline.set_step(1)
    t = window.presenter.timesteps[1]
    assert f"step 2/5 · t {t:.2f} → " in window.timeline.label.text()
    assert "2 model calls" in window.timeline.label.text()
    # the mark sits on the curve drawn between the two training timesteps around it
    schedule, xs = window.denoiser.schedule, window.plots_panel.timestep_marks.getData()
    low = int(np.floor(t))
    expected = np.interp(t, [low, low + 1], schedule.alpha_bar[low:low + 2])
    assert xs[1][1] == pytest.approx(expected) and xs[0][1] == t
    # dragging the schedule cursor near a fractional t picks its step
    cursor = window.plots_panel.schedule_cursor
    cursor.setValue(float(window.presenter.timesteps[3]) + 0.3)
    cursor.sigDragged.emit(cursor)
    assert window.timeline.current == 3


def test_pndm_visits_t1_twice_and_its_steps_are_its_model_calls(make_window, qtbot):
    window = make_window(tiny_digits())
    panel = window.sampler_panel
    choose(panel.sampler_combo, "pndm")
    assert panel.spacing_combo.currentData() == "leading"   # PNDM's own default
    generate(window, qtbot, steps=4, batch=1)
    record = window.presenter.info.record
    t = record["timesteps"]
    assert len(t) == 5 and t[1] == t[2] and record["model_calls"] == 5
    assert window.progress_bar.maximum() == 5 and window.timeline.slider.maximum() == 4
    assert "done: 5 steps, 5 model calls" in window.status_label.text()
    marks = window.plots_panel.timestep_marks.getData()[0]
    assert marks.tolist() == [float(v) for v in t]   # the repeated timestep marked twice, at one place
    window.timeline.set_step(1)
    assert f"t {t[1]} → {t[2]} (a second call at this t redoes the step before)" in window.timeline.label.text()


def test_switching_sampler_keeps_the_users_steps_and_starts_others_from_the_class_defaults(make_window):
    window = make_window(tiny_digits())
    panel = window.sampler_panel
    assert panel.steps_spin.value() == 50 and panel.spacing_combo.currentData() == "leading"
    choose(panel.sampler_combo, "dpmpp_2m")   # ddim's defaults were not the user's: dpmpp_2m's own
    assert panel.steps_spin.value() == SAMPLERS["dpmpp_2m"]().steps == 20
    assert panel.spacing_combo.currentData() == SAMPLERS["dpmpp_2m"]().spacing == "linspace"
    panel.steps_spin.setValue(7)
    choose(panel.spacing_combo, "trailing")
    choose(panel.sampler_combo, "unipc")      # the user's 7 and trailing: kept
    assert panel.steps_spin.value() == 7 and panel.spacing_combo.currentData() == "trailing"
    # Karras sigmas make the multistep solvers' spacing moot: linspace, greyed out, and why
    panel.karras_check.setChecked(True)
    assert panel.spacing_combo.currentData() == "linspace" and not panel.spacing_combo.isEnabled()
    assert "karras" in panel.spacing_combo.toolTip()
    assert panel.sampler_settings().karras and panel.sampler_settings().spacing == "linspace"
    panel.karras_check.setChecked(False)      # the spacing the user chose comes back
    assert panel.spacing_combo.currentData() == "trailing" and panel.spacing_combo.isEnabled()
    # a spacing or clipping a sampler refuses gives way to one it takes, and comes back with a sampler that takes it
    choose(panel.sampler_combo, "ddim")
    choose(panel.spacing_combo, "quad")
    choose(panel.clip_combo, "clip")
    choose(panel.sampler_combo, "pndm")
    assert panel.spacing_combo.currentData() == "leading" and panel.clip_combo.currentData() == "model"
    assert panel.clip_combo.itemText(0) == "Model card: n/a"   # the card's clip_sample does not apply to pndm
    assert "has no x0 clip" in panel.clip_combo.itemData(0, Qt.ItemDataRole.ToolTipRole)
    choose(panel.sampler_combo, "ddim")
    assert panel.spacing_combo.currentData() == "quad" and panel.clip_combo.currentData() == "clip"
    panel.steps_spin.setValue(1)
    choose(panel.sampler_combo, "heun")       # 1 step is not heun's: its default
    assert panel.steps_spin.value() == SAMPLERS["heun"]().steps


@pytest.fixture(scope="module")
def file_model(tmp_path_factory):
    return write_unet_checkpoint(tmp_path_factory.mktemp("models") / "sampler-digits.safetensors",
                                 name="sampler-digits", random_seed=2)


RECIPES = {   # sampler settings the PNG is made with: each new sampler's own widgets set away from the defaults
    "heun": dict(steps=4, karras=True, clip_sample=True, clip_sample_range=1.5, spacing="trailing"),
    "dpmpp_2m_sde": dict(steps=5, karras=True, thresholding=True),
    "unipc": dict(steps=5, order=3, spacing="trailing", clip_sample=False),
    "pndm": dict(steps=4, spacing="linspace"),
    "euler_a": dict(steps=5, spacing="leading"),
}


def core_png(path, file_model, name: str, values: dict) -> tuple[np.ndarray, dict]:
    """Sample 1 of a batch of 3 made by the engine (not the window), saved as the window saves a sample's PNG;
    returns its float sample and recipe."""
    settings = RunSettings(sampler=sampler_settings(name, **values), seed=21, batch_size=3, class_label="cycle",
                           device="cpu", model_batch=16)
    denoiser = open_checkpoint(file_model)
    run = Run(denoiser, settings)
    for step in run:
        x = step.x_t
    record = {**run.record(), **recipe_extras(denoiser.card, str(file_model), 16)}
    recipe = recipe_for_sample(record, 1)
    write_png(path, to_uint8_tiles(x.numpy(), denoiser.card.value_range)[1][..., 0], recipe)
    return x.numpy()[1], recipe


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_a_png_made_by_a_new_sampler_opens_to_its_settings_and_makes_the_same_pixels(
        make_window, qtbot, file_model, tmp_path, name):
    values = RECIPES[name]
    png = tmp_path / f"{name}.png"
    sample, recipe = core_png(png, file_model, name, values)
    window = make_window(tiny_digits())
    panel = window.sampler_panel
    choose(panel.sampler_combo, "ddim")   # far from the recipe's settings
    panel.steps_spin.setValue(9)
    panel.order_spin.setValue(1)
    assert window.open_path(png) and window.error_banner.message() == ""
    assert window.card.name == "sampler-digits"
    expected, _ = settings_from_recipe(read_recipe(png))
    # the panel shows the recipe's sampler with its exact settings, and runs exactly them
    assert panel.sampler_combo.currentData() == name and panel.steps_spin.value() == values["steps"]
    shown = panel.sampler_settings()
    for field, value in values.items():
        assert getattr(shown, field) == value, field
    for field in ("karras", "order"):
        if field in class_fields(name):
            assert getattr(panel, FIELD_WIDGETS[field]).isEnabled()
    assert window.current_settings().sampler == expected.sampler
    assert (window.current_settings().seed, window.current_settings().batch_size) == (22, 1)
    assert_widgets_follow_the_class(panel, name)
    generate(window, qtbot)
    assert window.presenter.info.record["settings"]["sampler"] == recipe["settings"]["sampler"]
    assert window.presenter.info.record["model_calls"] == recipe["model_calls"]
    assert np.array_equal(window.presenter.floats.final[0], sample)   # bit for bit
    with Image.open(png) as picture:
        pixels = np.asarray(picture)
    shown_tiles = window.presenter.store.frame(window.presenter.store.latest_index).x_t_tiles
    assert np.array_equal(shown_tiles[0][..., 0], pixels)


def test_a_setting_the_engine_refuses_shows_one_message_and_keeps_the_window(make_window, qtbot):
    """PNDM cannot run a model that predicts x0: the run says so once, and the last run, the model and the
    panel's settings stay."""
    model = NetworkDenoiser(TinyDigitsEps(), digits_card("x0-digits", prediction_type="sample"))
    window = make_window(model)
    panel = window.sampler_panel
    choose(panel.sampler_combo, "euler")
    generate(window, qtbot, steps=STEPS, batch=2)
    store, picture = window.presenter.store, window.preview_xt.grid.grid_image().copy()
    choose(panel.sampler_combo, "pndm")
    before = window.current_settings()
    with qtbot.waitSignal(window.run_finished, timeout=20000) as finished:
        window.generate_button.click()
    assert finished.args[0].status == FAILED
    message = window.error_banner.message()
    assert message.count("sampler pndm needs a model with prediction_type") == 1, message
    assert window.status_label.text() == "the run failed"
    assert window.card.name == "x0-digits" and window.current_settings() == before
    assert window.presenter.store is store and np.array_equal(window.preview_xt.grid.grid_image(), picture)
    assert window.presenter.info.record["settings"]["sampler"]["sampler"] == "euler"
    assert window.generate_button.isEnabled()
    choose(panel.sampler_combo, "dpmpp_2m")   # a sampler the model takes runs again, and the banner goes
    assert generate(window, qtbot).status == FINISHED
    assert window.error_banner.message() == ""


def test_a_new_samplers_settings_come_back_in_a_new_window(make_window):
    window = make_window(tiny_digits())
    panel = window.sampler_panel
    choose(panel.sampler_combo, "unipc")
    panel.steps_spin.setValue(9)
    panel.order_spin.setValue(3)
    panel.karras_check.setChecked(True)
    choose(panel.clip_combo, "threshold")
    wanted = panel.sampler_settings()
    window.close()
    again = make_window(tiny_digits())
    assert again.current_settings().sampler == wanted
    assert again.sampler_panel.order_spin.isEnabled() and again.sampler_panel.karras_check.isChecked()
