"""The bundled demo models meet the quality figures docs/demo-models.md documents, within sampling noise.

The documented figures come from `python -m studio.train.quality` (seed 0: 1000 digits, 100 per class; 2000 toy2d
points; studio/train/RECIPES.md). The tests here sample fewer, on other seeds, and assert each figure within its
sampling noise at both sizes: a fraction p documented from n_doc samples and measured here from n is asserted within
3 standard errors of the difference of the two estimates, p - 3 sqrt(p (1 - p) (1/n + 1/n_doc)) (and as far above,
where that is below 1). A documented 100% of n_doc counts as p = 1 - 3/n_doc (the rule of three: the error rate
that 0 errors in n_doc leave possible at 95%). Each bound, with its n, is stated beside its figure in
docs/demo-models.md.
"""

import math

import pytest

from studio.core.bundled import bundled_by_name

pytest.importorskip("sklearn", reason="the digits measurement needs scikit-learn (pip install '.[train]')")

from studio.train import quality  # noqa: E402

DOC_DIGITS = 1000   # python -m studio.train.quality: 100 samples per class
DOC_TOY = 2000      # python -m studio.train.quality: --toy-samples 2000


def bounds(p: float, n: int, n_doc: int) -> tuple[float, float]:
    """The fraction a sample of n may show, given p documented from n_doc: within 3 standard errors of the
    difference of two independent binomial estimates."""
    spread = 3 * math.sqrt(p * (1 - p) * (1 / n + 1 / n_doc))
    return p - spread, min(1.0, p + spread)


def rule_of_three(n_doc: int) -> float:
    """A documented 100% of n_doc samples, as the lowest rate it leaves possible (95%)."""
    return 1 - 3 / n_doc


def _bundled(name):
    model = bundled_by_name(name)
    if not model.path.is_file():
        pytest.skip(f"bundled model {model.filename} is absent from {model.path.parent} "
                    f"(train it with: python -m studio.train.recipes {name})")
    return model.path


def test_the_bounds_follow_the_documented_figures():
    """The bounds the tests below assert (docs/demo-models.md states them)."""
    assert bounds(0.989, 500, DOC_DIGITS)[0] == pytest.approx(0.9719, abs=1e-4)
    assert bounds(rule_of_three(DOC_DIGITS), 100, DOC_DIGITS)[0] == pytest.approx(0.9798, abs=1e-4)  # 2 misses
    assert bounds(0.975, 200, DOC_DIGITS)[0] == pytest.approx(0.9387, abs=1e-4)
    assert bounds(0.116, 100, DOC_DIGITS) == pytest.approx((0.0152, 0.2168), abs=1e-4)
    assert bounds(0.997, 1000, DOC_TOY)[0] == pytest.approx(0.9907, abs=1e-4)


def test_reference_classifier_is_a_trustworthy_judge():
    _, accuracy = quality.reference_digit_classifier()
    assert accuracy == pytest.approx(0.993, abs=1e-3)   # documented: 99.3% on the held-out 25% (a fixed split)


def test_digits_unet_samples_the_requested_class():
    """Documented: 98.9% (1000 samples, seed 0). Here 500 (seed 1000): bound 97.19% (measured 97.4%)."""
    path = _bundled("digits")
    report = quality.measure_digits(path, samples_per_class=50, guidance_scale=quality.DIGITS_GUIDANCE_SCALE,
                                    seed=1000)
    low, high = bounds(0.989, 500, DOC_DIGITS)
    assert low <= report.fraction_correct <= high, report
    assert min(report.per_class) >= 0.6, report  # no class is left out


def test_digits_unet_with_classifier_free_guidance_3_samples_the_requested_class():
    """Documented: 100% with CFG 3 and use_clipped_model_output (1000 samples). Here 100 (seed 1000): at most two
    misses (bound 97.98%)."""
    report = quality.measure_digits(_bundled("digits"), samples_per_class=10, guidance_scale=quality.GUIDED_SCALE,
                                    seed=1000, clipped_eps=True)
    assert report.guidance == "classifier_free" and report.guidance_scale == 3.0
    assert report.fraction_correct >= bounds(rule_of_three(DOC_DIGITS), 100, DOC_DIGITS)[0], report


def test_digits_classifier_steers_the_unconditional_model():
    """Documented (null class + digits-classifier guidance, scale 3, same DDIM): 97.5%, and 11.6% for the null
    class alone (1000 samples each). Here 200 guided (bound 93.87%) and, the control, 100 unguided on the first
    100 of the same seeds (bounds 1.52% to 21.68%)."""
    unet, classifier = _bundled("digits"), _bundled("digits-classifier")
    unguided = quality.measure_digits(unet, samples_per_class=10, guidance_scale=0.0, seed=2000,
                                      classifier_path=classifier, clipped_eps=True)
    guided = quality.measure_digits(unet, samples_per_class=20, guidance_scale=quality.GUIDED_SCALE, seed=2000,
                                    classifier_path=classifier, clipped_eps=True)
    low, high = bounds(0.116, 100, DOC_DIGITS)
    assert low <= unguided.fraction_correct <= high, unguided  # the null class alone: about chance (1 in 10)
    low, high = bounds(0.975, 200, DOC_DIGITS)
    assert low <= guided.fraction_correct <= high, guided


def test_toy2d_samples_match_the_ring():
    """Documented (2000 points, seed 0): sliced W1 ratio to the true-vs-true floor 1.01; 99.7% of class-conditional
    samples nearest their requested Gaussian. Here 1000 (seed 1000)."""
    path = _bundled("toy2d")
    report = quality.measure_toy2d(path, samples=1000, seed=1000)
    # The ratio is itself noisy: with true samples in place of the model's, at 1000 points, it was 1.02 on average
    # with standard deviation 0.26 (200 draws of every seed; 1st and 99th percentiles 0.62 and 2.01), so 3 of
    # them above 1.01 would be 1.79. The goal, 1.5, is the tighter bound (about 1.9 standard deviations above).
    assert report.ratio <= quality.TOY_SW_GOAL_RATIO, report
    low, high = bounds(0.997, 1000, DOC_TOY)
    assert low <= report.conditional_fraction_nearest <= high, report   # bound 99.07%
