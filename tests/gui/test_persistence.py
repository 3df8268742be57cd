"""Settings, window layout, the last checkpoint and recent files survive a restart."""

from __future__ import annotations

from gui_models import tiny_digits, write_unet_checkpoint
from studio.gui import persistence


def test_run_settings_and_layout_come_back_in_a_new_window(make_window, qtbot):
    window = make_window(tiny_digits())
    panel = window.sampler_panel
    panel.sampler_combo.setCurrentIndex(panel.sampler_combo.findData("ddpm"))
    panel.steps_spin.setValue(37)
    panel.spacing_combo.setCurrentIndex(panel.spacing_combo.findData("trailing"))
    panel.class_combo.setCurrentIndex(panel.class_combo.findData(4))
    panel.network_combo.setCurrentIndex(panel.network_combo.findData("compiled_channels_last"))
    window.seed_panel.seed_spin.setValue(1234)
    window.seed_panel.batch_spin.setValue(9)
    window.seed_panel.budget_spin.setValue(96)
    window.plots_panel.set_curve_key("log_snr")
    window.plots_dock.hide()
    window.close()

    again = make_window(tiny_digits())
    settings = again.current_settings()
    assert settings.sampler.name == "ddpm" and settings.sampler.steps == 37
    assert settings.sampler.spacing == "trailing"
    assert settings.class_label == 4 and settings.seed == 1234 and settings.batch_size == 9
    assert settings.network == "compiled_channels_last"
    assert again.seed_panel.budget_spin.value() == 96 and again.presenter.budget_bytes == 96 * 2**20
    assert persistence.read_text("run/frame_budget_mib") == "96"
    assert again.plots_panel.curve_key() == "log_snr"
    assert again.plots_dock.isHidden()
    again.reset_layout_action.trigger()
    assert not again.plots_dock.isHidden()


def test_a_damaged_settings_entry_is_ignored(make_window):
    persistence.write_text("run/settings", "{not json")
    persistence.write_json("model/recent", "not a list")
    window = make_window(tiny_digits())
    assert window.current_settings().sampler.steps == 50
    assert persistence.recent_checkpoints() == []


def test_studio_reopens_the_last_checkpoint(make_window, tmp_path):
    path = write_unet_checkpoint(tmp_path / "last.safetensors", name="the-last-one")
    first = make_window()
    assert first.open_checkpoint(path)
    first.close()
    again = make_window(None, restore_last=True)
    assert again.card is not None and again.card.name == "the-last-one"
    assert str(path) in again.model_panel.sources()
