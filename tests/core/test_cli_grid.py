"""`studio grid`: a grid of final samples over two settings on the same noise; each cell equals its settings run
alone (bit for bit from its PNG's recipe, within float rounding from plain flags); files a user can read; every
bad axis one error line before any sampling."""

from __future__ import annotations

import json

import checkpoint_makers as make
import numpy as np
import pytest
from cli_running import run_studio
from PIL import Image

from studio.core.recipe import read_recipe

ACROSS_BATCHES = 1e-5   # docs/engine.md: the same sample in calls of another shape (float rounding only)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make.studio_file(tmp_path_factory.mktemp("grid-model"), *make.unet(num_classes=3), "model.safetensors")


@pytest.fixture(scope="module")
def grid(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("grid")
    code, printed, err = run_studio("grid", "--x", "sampler=ddim,euler", "--y", "steps=3,5", "--checkpoint", checkpoint,
                                    "--num-samples", 2, "--class", 1, "--seed", 7, "--no-progress", "--out", out)
    assert code == 0, err
    return out, printed


def test_a_grid_writes_every_cell_its_picture_and_the_json(grid):
    out, printed = grid
    assert "wrote 4 cells" in printed
    summary = json.loads((out / "grid.json").read_text())
    assert summary["x"] == {"setting": "sampler", "values": ["ddim", "euler"]}
    assert summary["y"] == {"setting": "steps", "values": [3, 5]}
    cells = {(cell["sampler"], cell["steps"]): cell for cell in summary["cells"]}
    assert set(cells) == {("ddim", 3), ("euler", 3), ("ddim", 5), ("euler", 5)}
    for (sampler, steps), cell in cells.items():
        assert cell["record"]["settings"]["sampler"]["sampler"] == sampler
        assert cell["model_calls"] == steps
        assert np.load(out / cell["samples"]).shape == (2, 1, 8, 8)
        assert read_recipe(out / cell["png"])["settings"]["batch_size"] == 2
    picture = np.asarray(Image.open(out / "grid.png").convert("RGB"))
    # two rows and two columns of cells (8x8 tiles of two samples, blown up) under and beside their labels
    assert picture.shape[0] > 2 * 64 and picture.shape[1] > 2 * 64
    assert (picture < 128).any() and (picture == 255).any()   # dark digits' pixels and labels on white
    # the rows shared model calls (the cells of one length side by side): the records say where each sat
    assert {cell["record"]["row_offset"] for cell in cells.values()} == {0, 2}


def test_each_cell_is_its_settings_run_alone(grid, checkpoint, tmp_path):
    out, _ = grid
    summary = json.loads((out / "grid.json").read_text())
    cell = next(c for c in summary["cells"] if (c["sampler"], c["steps"]) == ("euler", 5))
    wanted = np.load(out / cell["samples"])
    code, _, err = run_studio("sample", "--checkpoint", checkpoint, "--sampler", "euler", "--steps", 5,
                              "--num-samples", 2, "--class", 1, "--seed", 7, "--no-progress", "--out", tmp_path / "alone")
    assert code == 0, err
    alone = np.load(tmp_path / "alone" / "samples.npy")
    assert np.abs(alone - wanted).max() <= ACROSS_BATCHES
    # and its PNG's recipe makes it again in the rows it was made in: the same bits
    code, _, err = run_studio("sample", "--from-png", out / cell["png"], "--no-progress", "--out", tmp_path / "again")
    assert code == 0, err
    assert np.array_equal(np.load(tmp_path / "again" / "samples.npy"), wanted)


def test_a_grid_of_single_samples_gives_each_cell_its_own_recipe(checkpoint, tmp_path):
    code, _, err = run_studio("grid", "--x", "eta=0,1", "--y", "seed=3,4", "--sampler", "ddim", "--steps", 4,
                              "--checkpoint", checkpoint, "--class", 2, "--no-progress", "--out", tmp_path / "g")
    assert code == 0, err
    summary = json.loads((tmp_path / "g" / "grid.json").read_text())
    cell = next(c for c in summary["cells"] if (c["eta"], c["seed"]) == (1.0, 4))
    recipe = read_recipe(tmp_path / "g" / cell["png"])
    assert recipe["seed"] == 4 and recipe["settings"]["sampler"]["eta"] == 1.0
    code, _, err = run_studio("sample", "--from-png", tmp_path / "g" / cell["png"], "--no-progress",
                              "--out", tmp_path / "again")
    assert code == 0, err
    assert np.array_equal(np.load(tmp_path / "again" / "samples.npy"), np.load(tmp_path / "g" / cell["samples"]))
    seeds = {c["seed"]: np.load(tmp_path / "g" / c["samples"]) for c in summary["cells"] if c["eta"] == 0.0}
    assert not np.array_equal(seeds[3], seeds[4])   # a control: the seed axis changes the noise


def test_a_vector_model_grid_draws_each_cell_as_dots(tmp_path):
    checkpoint = make.studio_file(tmp_path, *make.mlp(), "vector.safetensors")
    code, _, err = run_studio("grid", "--x", "steps=2,4", "--y", "sampler=ddim,heun", "--checkpoint", checkpoint,
                              "--num-samples", 16, "--no-progress", "--out", tmp_path / "g")
    assert code == 0, err
    summary = json.loads((tmp_path / "g" / "grid.json").read_text())
    assert all(c["png"] is None and np.load(tmp_path / "g" / c["samples"]).shape == (16, 2) for c in summary["cells"])
    picture = np.asarray(Image.open(tmp_path / "g" / "grid.png").convert("RGB"))
    assert (np.abs(picture.astype(int) - (31, 119, 180)).sum(axis=-1) < 10).sum() > 4 * 16   # the dots


@pytest.mark.parametrize("argv, message", [
    (("--x", "colour=red,blue"), "--x takes SETTING=A,B,... with SETTING one of sampler, steps"),
    (("--x", "steps="), "--x steps= has no values"),
    (("--x", "steps=3,a"), "--x steps= takes int values"),
    (("--x", "steps=3,3"), "--x steps= repeats a value"),
    (("--x", "sampler=ddim,heun"), "--x and --y both vary sampler"),
    (("--x", "steps=3,5000"), "cell steps=5000, sampler=ddim: "),
    (("--x", "class=1,7"), "cell class=7"),
])
def test_a_bad_axis_is_one_error_line_before_any_sampling(checkpoint, tmp_path, argv, message):
    base = {"--x": "steps=3,5", "--y": "sampler=ddim"}
    base.update(dict(zip(argv[::2], argv[1::2])))
    args = [part for pair in base.items() for part in pair]
    code, _, err = run_studio("grid", *args, "--checkpoint", checkpoint, "--no-progress", "--out", tmp_path / "out")
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert not (tmp_path / "out").exists()


def test_the_readmes_grid_command_runs_as_written(tmp_path, monkeypatch):
    """The README's `studio grid ...` (bundled digits, class 3), word for word, into a scratch folder."""
    import re
    import shlex
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    command = re.search(r"`(studio grid [^`]+)`", readme).group(1)
    monkeypatch.chdir(tmp_path)
    code, printed, err = run_studio(*shlex.split(command)[1:], "--no-progress")
    assert code == 0, err
    summary = json.loads((tmp_path / "grid-out" / "grid.json").read_text())
    assert len(summary["cells"]) == 9 and summary["model"] == "digits-unet"
    assert {c["record"]["class_labels"][0] for c in summary["cells"]} == {3}
