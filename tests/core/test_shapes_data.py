"""The generated shapes dataset (studio.train.shapes): deterministic, the right shapes, dtype and range, classes
that an independent classifier tells apart, and `studio train --data shapes` end to end into a loadable
checkpoint whose card says 3 x 32 x 32 and names the classes."""

import json

import numpy as np
import pytest
import torch

from studio.cli import main as studio_main
from studio.core.checkpoints import open_checkpoint
from studio.core.errors import SettingsError
from studio.core.models.networks import build_network
from studio.train import recipes
from studio.train.data import BUILTIN_DATASETS, load_data
from studio.train.shapes import SHAPES_CLASS_NAMES, generate_shapes

TINY_UNET = {"base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "attention_resolutions": [16],
             "norm_groups": 4}


def test_same_seed_same_pictures_other_seed_other_pictures():
    a, labels_a = generate_shapes(60, seed=5)
    b, labels_b = generate_shapes(60, seed=5)
    c, _ = generate_shapes(60, seed=6)
    assert np.array_equal(a, b) and np.array_equal(labels_a, labels_b)
    assert not np.array_equal(a, c)
    # a prefix of a larger draw is not promised, but the labels cycle through the classes
    assert labels_a.tolist() == [i % len(SHAPES_CLASS_NAMES) for i in range(60)]


def test_pictures_are_rgb_32x32_float32_in_range_with_soft_edges():
    images, labels = generate_shapes(120, seed=0)
    assert images.shape == (120, 3, 32, 32) and images.dtype == np.float32
    assert labels.shape == (120,) and labels.dtype == np.int64
    assert images.min() >= -1.0 and images.max() <= 1.0
    assert np.isfinite(images).all()
    # colourful: the channels differ, not a grey picture copied three times
    assert np.abs(images[:, 0] - images[:, 1]).mean() > 0.05
    # the shape is bright (HSV value >= 0.75) on a darker background, so every picture has both
    brightest = images.max(axis=1)
    assert ((brightest > 0.45).mean(axis=(1, 2)) > 0.02).all()
    # anti-aliased: values between the shape's and the background's occur (pixels the outline crosses)
    assert len(np.unique(np.round(images[0], 3))) > 100


def test_given_labels_and_other_sizes():
    images, labels = generate_shapes(6, seed=1, size=16, labels=np.array([5, 4, 3, 2, 1, 0]))
    assert images.shape == (6, 3, 16, 16) and labels.tolist() == [5, 4, 3, 2, 1, 0]
    with pytest.raises(ValueError):
        generate_shapes(2, labels=np.array([0, 6]))


def test_a_circle_and_a_square_differ_where_the_square_has_corners():
    """Same placement, colour and background (same seed); only the label differs: the pictures agree away from the
    shape and differ at the corners, where the square covers what the circle leaves."""
    circle, _ = generate_shapes(1, seed=9, labels=np.array([0]))
    square, _ = generate_shapes(1, seed=9, labels=np.array([1]))
    differs = np.abs(circle - square).max(axis=1)[0] > 0.05
    assert 0 < differs.sum() < 32 * 32 / 2


def test_an_independent_classifier_tells_the_classes_apart():
    """The judge of the quality measurement, trained briefly on a small sample, already scores well on held-out
    generator pictures (trained fully: ~0.99, the figure in docs/demo-models.md)."""
    from studio.train.shape_judge import train_judge

    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # a small network: one thread is faster (the tests after this one get theirs back)
    try:
        judge = train_judge(train_size=1200, test_size=300, steps=120)
    finally:
        torch.set_num_threads(threads)
    assert judge.accuracy >= 0.8


def test_load_data_refuses_a_size_the_generator_cannot_draw():
    assert "shapes" in BUILTIN_DATASETS
    with pytest.raises(SettingsError):
        load_data("shapes", image_size=30)


def test_studio_train_data_shapes_writes_a_loadable_checkpoint(tmp_path, capsys):
    """The one test that draws the whole dataset (12 000 pictures, a few seconds)."""
    output = tmp_path / "shapes.safetensors"
    code = studio_main(["train", "--data", "shapes", "--arch-config", json.dumps(TINY_UNET), "--steps", "2",
                        "--batch-size", "4", "--warmup", "1", "--threads", "1", "--no-progress",
                        "--output", str(output)])
    assert code == 0
    assert "2 steps" in capsys.readouterr().out
    denoiser = open_checkpoint(output)
    card = denoiser.card
    assert card.data_shape == (3, 32, 32) and card.class_names == SHAPES_CLASS_NAMES and card.null_class == 6
    assert card.name == "shapes-unet" and "generated shapes (12000 RGB pictures" in card.description
    prediction = denoiser.predict(torch.randn(2, 3, 32, 32), 500, torch.tensor([1, 6]))
    assert prediction.eps.shape == (2, 3, 32, 32) and torch.isfinite(prediction.eps).all()


def test_shapes_recipe_builds_a_network_under_10_mb():
    args = recipes.RECIPES["shapes"]
    assert args[args.index("--data") + 1] == "shapes" and args[args.index("--threads") + 1] == "1"
    config = {"image_size": 32, "in_channels": 3, "num_classes": 6, **json.loads(args[args.index("--arch-config") + 1])}
    network = build_network({"name": "unet", "config": config})
    assert sum(p.numel() for p in network.parameters()) * 4 < 10_000_000
    command = recipes.command("shapes")
    assert command[-3].endswith("shapes-unet.safetensors") and command[-1].endswith("shapes-unet.train.pt")
