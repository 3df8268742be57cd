"""`studio sample --branch-from RUN_DIR --at-step K`: a branch with the parent's own settings ends on the parent's
samples bit for bit (DDIM with eta 1, a replayed sampler); a branch's PNG carries its parent's recipe and K, and
--from-png makes the same pixels; run.json names the parent; bad input is one error line and nothing written."""

from __future__ import annotations

import json
import re
import shutil
import zipfile

import checkpoint_makers as make
import numpy as np
import pytest
from cli_running import run_studio
from PIL import Image

from studio.core.recipe import read_recipe

PARENT_FLAGS = ("--steps", 6, "--eta", 1.0, "--num-samples", 5, "--batch", 2, "--seed", 11, "--no-progress")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("branch-models")
    return {"conditional": make.studio_file(folder, *make.unet(num_classes=3), "conditional.safetensors"),
            "other": make.studio_file(folder, *make.unet(num_classes=3, seed=5), "other.safetensors")}


def _sample(*flags) -> None:
    code, _, err = run_studio("sample", *flags)
    assert code == 0, err


@pytest.fixture(scope="module")
def parent(models, tmp_path_factory):
    """A DDIM eta 1 run of 5 samples in batches of 2 (the last one partial), classes cycling, with its steps."""
    out = tmp_path_factory.mktemp("parent")
    _sample("--checkpoint", models["conditional"], *PARENT_FLAGS, "--trajectory", "--out", out)
    return out


def test_a_branch_with_the_parent_settings_ends_on_the_parent_samples(parent, tmp_path):
    out = tmp_path / "branch"
    code, printed, err = run_studio("sample", "--branch-from", parent, "--at-step", 3, "--no-progress", "--trajectory",
                                    "--out", out)
    assert code == 0, err
    assert "wrote 5 samples" in printed
    assert np.array_equal(np.load(out / "samples.npy"), np.load(parent / "samples.npy"))
    record, parent_record = (json.loads((folder / "run.json").read_text()) for folder in (out, parent))
    assert record["branch"]["at_step"] == 3 and record["branch"]["mode"] == "resume"
    assert record["branch"]["parent"] == {"run": str(parent.resolve()), "sha256": parent_record["model"]["sha256"]}
    assert record["seeds"] == parent_record["seeds"] and record["class_labels"] == parent_record["class_labels"]
    assert record["timesteps"] == parent_record["timesteps"][3:]
    with np.load(out / "trajectory.npz") as branch_steps, np.load(parent / "trajectory.npz") as parent_steps:
        assert np.array_equal(branch_steps["x_t"], parent_steps["x_t"][3:])   # starts on the parent's x_t at step 3
        assert np.array_equal(branch_steps["x0_pred"], parent_steps["x0_pred"][3:])


@pytest.fixture(scope="module")
def ddpm_branch(parent, tmp_path_factory):
    """The parent branched at step 2 to DDPM with another seed, its steps kept."""
    out = tmp_path_factory.mktemp("ddpm-branch")
    _sample("--branch-from", parent, "--at-step", 2, "--sampler", "ddpm", "--steps", 10, "--seed", 40,
            "--no-progress", "--trajectory", "--out", out)
    return out


def test_a_branch_under_new_settings_changes_only_what_follows_step_k(parent, ddpm_branch):
    record = json.loads((ddpm_branch / "run.json").read_text())
    assert record["branch"]["mode"] == "restart"
    parent_record = json.loads((parent / "run.json").read_text())
    t_k = parent_record["timesteps"][2]
    assert record["timesteps"][0] == t_k and all(t < t_k for t in record["timesteps"][1:])
    assert record["seeds"] == [40 + i for i in range(5)] and record["class_labels"] == parent_record["class_labels"]
    with np.load(ddpm_branch / "trajectory.npz") as branch_steps, np.load(parent / "trajectory.npz") as parent_steps:
        assert np.array_equal(branch_steps["x_t"][0], parent_steps["x_t"][2])
    assert not np.allclose(np.load(ddpm_branch / "samples.npy"), np.load(parent / "samples.npy"), atol=1e-3)


@pytest.mark.parametrize("sample", [1, 4])   # in a full batch, and the last partial batch
def test_a_branch_png_makes_its_pixels_again_from_its_recipe(parent, ddpm_branch, tmp_path, sample):
    png = ddpm_branch / f"sample_{sample:05d}.png"
    recipe = read_recipe(png)
    assert recipe["branch"]["at_step"] == 2 and recipe["branch"]["parent_run"] == str(parent.resolve())
    assert recipe["branch"]["parent_recipe"] == read_recipe(parent / f"sample_{sample:05d}.png")
    again = tmp_path / "again"
    _sample("--from-png", png, "--no-progress", "--out", again)
    assert np.array_equal(np.load(again / "samples.npy")[0], np.load(ddpm_branch / "samples.npy")[sample])
    assert np.array_equal(np.asarray(Image.open(again / "sample_00000.png")), np.asarray(Image.open(png)))
    assert "branched at step 2 of a DDIM 6-step run" in Image.open(png).text["Description"]


def test_a_replayed_sampler_branches_too(models, tmp_path):
    """Euler has no x_t-only state here: the branch replays the parent's first k steps, then goes on; with the
    parent's settings it ends on the parent's samples, and a branch PNG with a new class makes its pixels again."""
    parent = tmp_path / "euler"
    _sample("--checkpoint", models["conditional"], "--sampler", "euler", "--steps", 4, "--num-samples", 2,
            "--no-progress", "--trajectory", "--out", parent)
    same = tmp_path / "same"
    _sample("--branch-from", parent, "--at-step", 2, "--no-progress", "--out", same)
    assert np.array_equal(np.load(same / "samples.npy"), np.load(parent / "samples.npy"))
    branch = json.loads((same / "run.json").read_text())["branch"]
    assert branch["mode"] == "replay" and branch["replayed_model_calls"] == 2 and branch["replay_difference"] < 1e-5
    other = tmp_path / "other-class"   # a new class from step 2 on: the replay keeps the parent's
    _sample("--branch-from", parent, "--at-step", 2, "--class", 0, "--no-progress", "--out", other)
    again = tmp_path / "again"
    _sample("--from-png", other / "sample_00001.png", "--no-progress", "--out", again)
    assert np.array_equal(np.load(again / "samples.npy")[0], np.load(other / "samples.npy")[1])


def _without_trajectory(parent, tmp_path):
    folder = tmp_path / "no-steps"
    shutil.copytree(parent, folder)
    (folder / "trajectory.npz").unlink()
    return folder


def _truncated(parent, tmp_path):
    folder = tmp_path / "truncated"
    shutil.copytree(parent, folder)
    data = (folder / "trajectory.npz").read_bytes()
    (folder / "trajectory.npz").write_bytes(data[: len(data) // 2])
    return folder


def _other_shape(parent, tmp_path):
    folder = tmp_path / "other-shape"
    shutil.copytree(parent, folder)
    with zipfile.ZipFile(folder / "trajectory.npz", "w") as archive, archive.open("x_t.npy", "w") as handle:
        np.save(handle, np.zeros((7, 5, 1, 4, 4), np.float32))
    return folder


def _damaged_json(parent, tmp_path):
    folder = tmp_path / "damaged-json"
    shutil.copytree(parent, folder)
    (folder / "run.json").write_text('{"settings": ')
    return folder


BAD_BRANCHES = {
    "final step": (["--at-step", 6], "has 6 steps and step 6 is its end"),
    "negative step": (["--at-step", -1], "pick --at-step from 0 to 5"),
    "no step": ([], "--branch-from needs --at-step"),
    "another batch": (["--at-step", 2, "--batch", 4], "a branch keeps its parent's samples and batches"),
    "another model": (["--at-step", 2, "--checkpoint", "{other}"], "was made with another model"),
    "no trajectory": (["--at-step", 2, "--branch-from", "{no_steps}"], "has no trajectory.npz"),
    "truncated trajectory": (["--at-step", 2, "--branch-from", "{truncated}"], "truncated|damaged"),
    "frames of another shape": (["--at-step", 2, "--branch-from", "{other_shape}"], r"has shape \(7, 5, 1, 4, 4\)"),
    "damaged run.json": (["--at-step", 2, "--branch-from", "{damaged_json}"], "run.json is damaged"),
    "no such folder": (["--at-step", 2, "--branch-from", "{missing}"], "no such folder"),
    "with --from-png": (["--at-step", 2, "--from-png", "{png}"], "do not go together"),
}


@pytest.mark.parametrize("case", sorted(BAD_BRANCHES))
def test_a_bad_branch_is_one_error_line_and_nothing_written(models, parent, tmp_path, case):
    flags, message = BAD_BRANCHES[case]
    places = {"other": models["other"], "no_steps": _without_trajectory(parent, tmp_path) if "{no_steps}" in flags
              else None, "truncated": _truncated(parent, tmp_path) if "{truncated}" in flags else None,
              "other_shape": _other_shape(parent, tmp_path) if "{other_shape}" in flags else None,
              "damaged_json": _damaged_json(parent, tmp_path) if "{damaged_json}" in flags else None,
              "missing": tmp_path / "missing", "png": parent / "sample_00000.png"}
    flags = [str(f).format(**places) for f in flags]
    if "--branch-from" not in flags:
        flags = ["--branch-from", str(parent), *flags]
    code, stdout, stderr = run_studio("sample", *flags, "--no-progress", "--out", tmp_path / "out")
    lines = stderr.strip().splitlines()
    assert code == 2 and stdout == ""
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert re.search(message, lines[0]), lines[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_at_step_alone_is_refused(tmp_path):
    code, _, stderr = run_studio("sample", "--at-step", 2, "--out", tmp_path / "out")
    assert code == 2 and stderr.strip() == "error: --at-step goes with --branch-from RUN_DIR"
