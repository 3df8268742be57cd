"""The study metrics against closed forms, and each at zero (or its floor) for identical inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from studio.core.errors import SettingsError
from studio.core.metrics import (class_share, frechet_distance, frechet_from_moments, mixture_log_likelihood,
                                 rms_distance, sliced_wasserstein)
from studio.core.metrics.distances import SLICE_SEED


def test_frechet_distance_of_two_gaussians_is_the_closed_form():
    # diagonal covariances: |m1 - m2|^2 + sum (s1 - s2)^2 (standard deviations)
    mean_a, mean_b = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    std_a, std_b = np.array([1.0, 0.5, 2.0]), np.array([3.0, 0.5, 1.0])
    expected = ((mean_a - mean_b) ** 2).sum() + ((std_a - std_b) ** 2).sum()
    assert frechet_from_moments(mean_a, np.diag(std_a**2), mean_b, np.diag(std_b**2)) == pytest.approx(expected)
    # a rotated pair (the same rotation of both) keeps the distance: the root is of a non-diagonal product
    angle = 0.7
    rotation = np.array([[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0], [0, 0, 1]])
    rotated = frechet_from_moments(rotation @ mean_a, rotation @ np.diag(std_a**2) @ rotation.T,
                                   rotation @ mean_b, rotation @ np.diag(std_b**2) @ rotation.T)
    assert rotated == pytest.approx(expected)


def test_frechet_distance_of_samples_converges_to_the_closed_form():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((20000, 2))
    b = rng.standard_normal((20000, 2)) * [2.0, 1.0] + [1.0, 0.0]
    assert frechet_distance(a, b).value == pytest.approx(1.0 + 1.0, abs=0.06)   # |1|^2 + (2 - 1)^2


def test_sliced_wasserstein_of_shifted_samples_is_the_mean_squared_projection_of_the_shift():
    rng = np.random.default_rng(1)
    samples = rng.standard_normal((500, 4))
    shift = np.array([1.0, -2.0, 0.5, 0.0])
    measured = sliced_wasserstein(samples + shift, samples, slices=64)
    directions = np.random.default_rng(SLICE_SEED).standard_normal((4, 64))
    directions /= np.linalg.norm(directions, axis=0, keepdims=True)
    assert measured.value == pytest.approx(math.sqrt(((shift @ directions) ** 2).mean()), rel=1e-12)
    # over many directions E[(theta . v)^2] = |v|^2 / D
    many = sliced_wasserstein(samples + shift, samples, slices=20000).value
    assert many == pytest.approx(np.linalg.norm(shift) / 2.0, rel=0.02)


def test_sliced_wasserstein_matches_sets_of_different_sizes_by_quantile():
    line = np.linspace(0, 1, 1001)[:, None]
    assert sliced_wasserstein(line[::10], line, slices=4).value < 0.01
    assert sliced_wasserstein(line[::10] + 3.0, line, slices=1).value == pytest.approx(3.0, abs=0.01)


def test_mixture_log_likelihood_is_the_gaussian_density():
    x = np.array([[0.0, 0.0], [1.0, 2.0]])
    standard = mixture_log_likelihood(x, [1.0], [[0.0, 0.0]], [np.eye(2)])
    assert standard.value == pytest.approx(np.mean([-math.log(2 * math.pi), -math.log(2 * math.pi) - 2.5]))
    # two components: log(w1 N1 + w2 N2) at a point, by hand
    point = np.array([[0.5, 0.0]])
    density = sum(w * math.exp(-0.5 * ((0.5 - m) ** 2 / v) - 0.5 * math.log(v)) / (2 * math.pi)
                  for w, m, v in ((0.25, -1.0, 0.5), (0.75, 2.0, 2.0)))
    mixed = mixture_log_likelihood(point, [1, 3], [[-1.0, 0.0], [2.0, 0.0]], [np.diag([0.5, 1.0]), np.diag([2.0, 1.0])])
    assert mixed.value == pytest.approx(math.log(density))


def test_class_share_and_its_binomial_error():
    measured = class_share([1, 2, 3, 3], [1, 2, 3, 0])
    assert measured.value == 0.75 and measured.standard_error == pytest.approx(math.sqrt(0.75 * 0.25 / 4))
    with pytest.raises(SettingsError, match="one requested class per sample"):
        class_share([1, 2], [1])


def test_rms_distance_pairs_rows():
    a = np.zeros((2, 3))
    b = np.array([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0]])
    assert rms_distance(a, b).value == pytest.approx(math.sqrt(25 / 2))
    with pytest.raises(SettingsError, match="pairs rows"):
        rms_distance(a, b[:1].repeat(3, 0))


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 40), st.integers(1, 5), st.integers(0, 2**31 - 1))
def test_every_distance_is_zero_for_identical_inputs(count, width, seed):
    rows = np.random.default_rng(seed).standard_normal((count, width))
    assert sliced_wasserstein(rows, rows).value == 0.0
    assert rms_distance(rows, rows).value == 0.0
    assert frechet_distance(rows, rows).value == pytest.approx(0.0, abs=1e-9)
    assert class_share(np.arange(count), np.arange(count)).value == 1.0


def test_mismatched_widths_are_refused_with_the_sizes():
    with pytest.raises(SettingsError, match="3 values each but the reference has 2"):
        sliced_wasserstein(np.zeros((4, 3)), np.zeros((4, 2)))
