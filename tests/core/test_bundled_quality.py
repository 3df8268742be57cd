"""The bundled demo models meet their quality goals (a smaller sample than `python -m studio.train.quality`).

digits: the fraction of class-conditional DDIM-50 samples that an SVC trained on real digits assigns to the
requested class is >= 90%. toy2d: the sliced Wasserstein distance of the MLP's samples to the true ring is within
TOY_SW_GOAL_RATIO x the distance between two independent true samples of the same size. The noise-aware
classifier steers the UNet's null class to the asked digit (classifier guidance).
"""

import pytest

from studio.core.bundled import bundled_by_name

pytest.importorskip("sklearn", reason="the digits measurement needs scikit-learn (pip install '.[train]')")

from studio.train import quality  # noqa: E402


def _bundled(name):
    model = bundled_by_name(name)
    if not model.path.is_file():
        pytest.skip(f"bundled model {model.filename} is absent from {model.path.parent} "
                    f"(train it with: python -m studio.train.recipes {name})")
    return model.path


def test_reference_classifier_is_a_trustworthy_judge():
    _, accuracy = quality.reference_digit_classifier()
    assert accuracy >= 0.97


def test_digits_unet_samples_the_requested_class():
    path = _bundled("digits")
    report = quality.measure_digits(path, samples_per_class=50, guidance_scale=quality.DIGITS_GUIDANCE_SCALE,
                                    seed=1000)
    assert report.fraction_correct >= quality.DIGITS_GOAL, report
    assert min(report.per_class) >= 0.6, report  # no class is left out


def test_digits_classifier_steers_the_unconditional_model():
    unet, classifier = _bundled("digits"), _bundled("digits-classifier")
    unguided = quality.measure_digits(unet, samples_per_class=20, guidance_scale=0.0, seed=2000,
                                      classifier_path=classifier, clipped_eps=True)
    guided = quality.measure_digits(unet, samples_per_class=20, guidance_scale=quality.GUIDED_SCALE, seed=2000,
                                    classifier_path=classifier, clipped_eps=True)
    assert unguided.fraction_correct <= 0.3, unguided   # the null class alone hits the asked class ~1 time in 10
    assert guided.fraction_correct >= quality.DIGITS_GOAL, guided


def test_toy2d_samples_match_the_ring():
    path = _bundled("toy2d")
    report = quality.measure_toy2d(path, samples=1000, seed=1000)
    assert report.ratio <= quality.TOY_SW_GOAL_RATIO, report
