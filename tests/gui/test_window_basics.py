"""The window a person opens: named, accessible widgets; an empty state that says what to do; only the options
that apply are enabled, each with a tooltip."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QWidget

from gui_models import tiny_digits, tiny_vector
from studio.core.bundled import DEFAULT_MODEL, bundled_by_name

WIDGET_NAMES = ["generateButton", "cancelButton", "samplerCombo", "stepsSpin", "etaSpin", "seedSpin", "batchSpin",
                "classCombo", "timelineSlider", "playButton", "previewXt", "previewX0", "schedulePlot", "progressBar",
                "networkCombo", "frameBudgetSpin"]
ACTION_NAMES = ["openCheckpointAction", "exportImageAction", "exportGridAction", "exportGifAction",
                "exportSamplesAction", "exportNpzAction"]


def test_promised_widgets_and_actions_exist_with_accessible_names(make_window):
    window = make_window(tiny_digits())
    for name in WIDGET_NAMES:
        widget = window.findChild(QWidget, name)
        assert widget is not None, f"no widget named {name}"
        assert widget.accessibleName(), f"{name} has no accessible name"
    for name in ACTION_NAMES:
        assert window.findChild(QAction, name) is not None, f"no action named {name}"
    assert {d.objectName() for d in (window.model_dock, window.sampler_dock, window.seed_dock, window.plots_dock)} \
        == {"modelDock", "samplerDock", "seedDock", "plotsDock"}


def test_empty_window_says_how_to_open_a_model_and_cannot_generate(make_window):
    window = make_window()
    assert window.centre_stack.currentWidget() is window.empty_state
    assert "Open a checkpoint" in window.empty_state.text()
    assert not window.generate_button.isEnabled()
    assert not window.findChild(QAction, "exportGridAction").isEnabled()


def test_loading_a_model_shows_its_card_and_enables_generate(make_window, qtbot):
    window = make_window()
    with qtbot.waitSignal(window.model_changed):
        window.set_model(tiny_digits())
    assert window.centre_stack.currentWidget() is window.preview_splitter
    assert window.generate_button.isEnabled() and not window.cancel_button.isEnabled()
    card = window.model_panel.card_labels
    assert card["name"].text() == "tiny-digits"
    assert "1 x 8 x 8" in card["data"].text()
    assert "linear" in card["schedule"].text() and "T = 100" in card["schedule"].text()
    assert card["classes"].text().startswith("10:")
    assert window.sampler_panel.steps_spin.maximum() == 100
    assert "tiny-digits" in window.windowTitle()


def test_only_options_that_apply_are_enabled_and_all_have_tooltips(make_window):
    window = make_window(tiny_digits())
    panel = window.sampler_panel
    panel.sampler_combo.setCurrentIndex(panel.sampler_combo.findData("ddim"))
    assert panel.eta_spin.isEnabled() and not panel.variance_combo.isEnabled()
    panel.sampler_combo.setCurrentIndex(panel.sampler_combo.findData("ddpm"))
    assert not panel.eta_spin.isEnabled() and panel.variance_combo.isEnabled()
    # learned variance needs a model that learned it
    learned = panel.variance_combo.findData("learned")
    assert not panel.variance_combo.model().item(learned).isEnabled()
    assert not panel.clip_range_spin.isEnabled()
    panel.clip_combo.setCurrentIndex(panel.clip_combo.findData("clip"))
    assert panel.clip_range_spin.isEnabled()
    # guidance needs a class; with "no class" it is off
    panel.class_combo.setCurrentIndex(panel.class_combo.findData(None))
    assert not panel.guidance_combo.isEnabled() and not panel.guidance_scale_spin.isEnabled()
    assert "choose a class" in panel.guidance_combo.toolTip()
    panel.class_combo.setCurrentIndex(panel.class_combo.findData(3))
    assert panel.guidance_combo.isEnabled()
    panel.guidance_combo.setCurrentIndex(panel.guidance_combo.findData("classifier_free"))
    assert panel.guidance_scale_spin.isEnabled()
    assert window.current_settings().guidance.kind == "classifier_free"
    for widget in (panel.sampler_combo, panel.steps_spin, panel.eta_spin, panel.ddim_noise_combo,
                   panel.spacing_combo, panel.variance_combo,
                   panel.clip_combo, panel.clip_range_spin, panel.guidance_combo, panel.guidance_scale_spin,
                   panel.class_combo, window.seed_panel.seed_spin, window.seed_panel.batch_spin):
        assert len(widget.toolTip()) > 20, f"{widget.objectName()} needs a plain-words tooltip"


def test_unconditional_model_has_no_class_or_guidance(make_window):
    window = make_window(tiny_vector())
    panel = window.sampler_panel
    assert not panel.class_combo.isEnabled() and not panel.guidance_combo.isEnabled()
    assert window.current_settings().class_label is None


def test_window_opens_the_bundled_digits_model_and_one_click_generates(make_window, qtbot):
    if not bundled_by_name(DEFAULT_MODEL).path.is_file():
        pytest.skip("the bundled digits checkpoint is not in resources/ (train it with `studio train`)")
    window = make_window(open_default=True)
    assert window.card is not None and window.card.name.startswith("digits")
    assert window.model_panel.model_list.currentItem().text().startswith("digits")
    window.sampler_panel.steps_spin.setValue(10)
    window.seed_panel.batch_spin.setValue(4)
    with qtbot.waitSignal(window.run_finished, timeout=60000) as finished:
        qtbot.mouseClick(window.generate_button, Qt.MouseButton.LeftButton)
    assert finished.args[0].status == "finished"
    assert window.preview_x0.grid.grid_image().std() > 10   # digits, not a flat picture


def test_the_network_combo_offers_every_speed_mode_and_says_what_each_costs(make_window):
    from PySide6.QtWidgets import QComboBox

    from studio.core.choices import NETWORK_MODES

    window = make_window(tiny_digits())
    combo = window.findChild(QComboBox, "networkCombo")
    assert [combo.itemData(i) for i in range(combo.count())] == list(NETWORK_MODES)
    assert combo.currentData() == "auto" and combo.isEnabled()   # the default: the fastest mode that pays
    tips = [combo.itemData(i, Qt.ItemDataRole.ToolTipRole) for i in range(combo.count())]
    assert all(tips) and "tens of seconds" in tips[NETWORK_MODES.index("compiled")]
    assert "pays for itself" in tips[0] and "bit for bit" in tips[NETWORK_MODES.index("plain")]
    assert "falls back to plain" in combo.toolTip()
    combo.setCurrentIndex(combo.findData("compiled"))
    assert window.current_settings().network == "compiled"


def test_every_choice_the_panels_offer_is_studio_core_choices(make_window, qtbot):
    from PySide6.QtWidgets import QComboBox

    from studio.core import choices
    from studio.gui.panels.model_panel import available_devices
    from studio.gui.trajectory_dialog import TrajectoryDialog

    def offered(combo: QComboBox, first: int = 0) -> list:
        return [combo.itemData(i) for i in range(first, combo.count())]

    window = make_window(tiny_digits())
    panel = window.sampler_panel
    assert offered(panel.sampler_combo) == list(choices.SAMPLER_NAMES)
    assert offered(panel.spacing_combo) == list(choices.SPACINGS)
    assert offered(panel.variance_combo, first=1) == list(choices.VARIANCE_TYPES)   # after "as the model card"
    assert offered(panel.ddim_noise_combo) == list(choices.DDIM_SIGMAS)
    assert offered(panel.guidance_combo) == list(choices.GUIDANCE_KINDS)
    assert offered(panel.network_combo) == list(choices.NETWORK_MODES)
    assert f"more than {choices.tolerance_text()}" in panel.network_combo.toolTip()
    assert panel.steps_spin.value() == choices.DEFAULT_DDIM_STEPS
    for combo in (panel.spacing_combo, panel.network_combo):
        assert all(combo.itemData(i, Qt.ItemDataRole.ToolTipRole) for i in range(combo.count()))
    model_panel = window.model_panel
    devices = [model_panel.device_combo.itemText(i) for i in range(model_panel.device_combo.count())]
    assert devices == available_devices() and set(devices) <= set(choices.DEVICES) and devices[:2] == ["auto", "cpu"]
    assert [model_panel.dtype_combo.itemText(i) for i in range(model_panel.dtype_combo.count())] == \
        list(choices.DTYPES)
    dialog = TrajectoryDialog(window, sample=0, sample_text="this sample")
    qtbot.addWidget(dialog)
    assert offered(dialog.source_combo) == list(choices.ANIMATION_SOURCES)
