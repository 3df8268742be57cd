"""Classifier guidance in the sampler panel: offered when a noise-aware classifier fits the model (same images,
classes and T), loaded only when a run needs it, called by the run; otherwise greyed out with the reason. And
DDIM's sigma-hat noise."""

from __future__ import annotations

import numpy as np
import pytest

from gui_models import tiny_digits, tiny_vector, write_classifier_checkpoint, write_unet_checkpoint
from studio.core.bundled import bundled_by_name
from studio.core.checkpoints import LoadedClassifier
from studio.core.recipe import read_recipe
from window_driving import generate


def classifier_item(window):
    combo = window.sampler_panel.guidance_combo
    return combo.model().item(combo.findData("classifier"))


def choose(combo, data) -> None:
    index = combo.findData(data)
    assert index >= 0 and combo.model().item(index).isEnabled(), f"{data!r} is not offered"
    combo.setCurrentIndex(index)


@pytest.fixture
def guided_window(make_window, tmp_path):
    """A window on a small UNet (T = 100, 10 classes) told about a classifier that fits it."""
    model = write_unet_checkpoint(tmp_path / "unet.safetensors", random_seed=1)
    classifier = write_classifier_checkpoint(tmp_path / "classifier.safetensors")
    window = make_window()
    window.classifiers.add_source(str(classifier))
    assert window.open_checkpoint(model)
    return window, classifier


def test_a_classifier_guided_run_calls_the_classifier_and_its_png_remembers_it(guided_window, qtbot, monkeypatch,
                                                                                tmp_path):
    window, classifier = guided_window
    panel = window.sampler_panel
    calls = []
    original = LoadedClassifier.log_prob

    def counted(self, x_t, t, labels):
        calls.append((x_t.shape[0], labels.tolist()))
        return original(self, x_t, t, labels)

    monkeypatch.setattr(LoadedClassifier, "log_prob", counted)
    choose(panel.class_combo, 3)
    generate(window, qtbot, steps=5, batch=2, seed=1)
    unguided = window.presenter.floats.final.copy()
    assert calls == []

    choose(panel.guidance_combo, "classifier")
    assert panel.guidance_scale_spin.isEnabled()
    panel.guidance_scale_spin.setValue(4.0)
    generate(window, qtbot)
    assert len(calls) == 5                                    # one gradient per step
    assert calls[0] == (2, [3, 3])                            # on the run's two rows, class 3
    record = window.presenter.info.record
    assert record["settings"]["guidance"] == {"kind": "classifier", "scale": 4.0}
    assert record["classifier"]["checkpoint"] == str(classifier.resolve())
    assert not np.array_equal(window.presenter.floats.final, unguided)   # the classifier steered the samples

    png = tmp_path / "guided.png"
    assert window.exports.export_sample_png(png)
    assert read_recipe(png)["classifier"]["name"] == "file-classifier"
    choose(panel.guidance_combo, "none")
    assert window.open_path(png)
    assert window.current_settings().guidance.kind == "classifier"


def test_classifier_guidance_is_greyed_out_with_the_reason_when_no_classifier_fits(make_window, tmp_path):
    window = make_window()
    window.classifiers.sources = [str(write_classifier_checkpoint(tmp_path / "c.safetensors",
                                                                  num_train_timesteps=50))]
    window.set_model(tiny_digits())   # T = 100
    assert not classifier_item(window).isEnabled()
    tooltip = window.sampler_panel.guidance_combo.toolTip()
    assert "Classifier guidance is not available now" in tooltip and "T = 50" in tooltip
    assert "T = 50" in classifier_item(window).toolTip()
    window.set_model(tiny_vector())
    assert not classifier_item(window).isEnabled()
    assert "image models" in window.sampler_panel.guidance_combo.toolTip()
    window.classifiers.sources = []
    window.set_model(tiny_digits())
    assert "no noise-aware classifier is installed" in window.sampler_panel.guidance_combo.toolTip()


def test_classifier_guidance_needs_a_class(guided_window):
    window, _ = guided_window
    panel = window.sampler_panel
    choose(panel.class_combo, None)   # no class: nothing to guide towards
    assert not classifier_item(window).isEnabled()
    assert "choose a class first" in classifier_item(window).toolTip()
    choose(panel.class_combo, 7)
    assert classifier_item(window).isEnabled()


def test_the_bundled_digits_model_is_offered_the_bundled_classifier(make_window):
    if not (bundled_by_name("digits").path.is_file() and bundled_by_name("digits-classifier").path.is_file()):
        pytest.skip("the bundled digits model and classifier are not in resources/")
    window = make_window()
    assert window.open_checkpoint("digits")
    assert classifier_item(window).isEnabled()
    assert window.classifiers.for_model(window.card)[0] == "digits-classifier"


def test_ddim_sigma_hat_noise_is_a_choice_and_reaches_the_run(make_window, qtbot):
    window = make_window(tiny_digits())
    panel = window.sampler_panel
    choose(panel.sampler_combo, "ddim")
    assert panel.ddim_noise_combo.isEnabled() and panel.eta_spin.isEnabled()
    choose(panel.ddim_noise_combo, "sigma_hat")
    assert not panel.eta_spin.isEnabled()                # sigma-hat does not depend on eta
    generate(window, qtbot, steps=4, batch=2)
    assert window.presenter.info.record["settings"]["sampler"]["sigma_kind"] == "sigma_hat"
    choose(panel.sampler_combo, "ddpm")
    assert not panel.ddim_noise_combo.isEnabled() and panel.variance_combo.isEnabled()
