"""A TorchScript archive is code: no command loads one without --trust-code, none runs a payload at all (the
code check refuses it, trusted or not), and a card is read from the zip without loading anything. Bundled
names and recipes open exactly the checkpoint the user meant.

Each payload is proven live by a control (torch.jit.load really writes its target), so "the target is
untouched" means the studio did not run it, not that the payload was inert."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import pytest
import torch

import payload_archives as payloads
from cli_running import run_studio
from hostile_cli import one_error_line as one_error
from studio.core.recipe import read_recipe, write_png

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

ORIGINAL = b"the user's own file\n"


@pytest.fixture
def target(tmp_path):
    path = tmp_path / "victim.txt"
    path.write_bytes(ORIGINAL)
    return path


def assert_untouched(target) -> None:
    assert target.read_bytes() == ORIGINAL, "the payload ran"


@pytest.fixture(params=["forward", "setstate"])
def payload(request, tmp_path, target):
    """A payload archive named innocent.safetensors (the format is told by content), and the control: loading
    it with torch itself does write the target (on a copy, so the test's own target stays as it was)."""
    make = payloads.payload_forward if request.param == "forward" else payloads.payload_setstate
    path = make(tmp_path / "innocent.safetensors", target)
    control_target = tmp_path / "control.txt"
    control_target.write_bytes(ORIGINAL)
    control = make(tmp_path / "control.pt", control_target)
    module = torch.jit.load(str(control))
    if request.param == "forward":
        module(torch.zeros(1, 2), torch.zeros(1, dtype=torch.long))
    assert control_target.read_bytes() != ORIGINAL, "the payload is not live: the test would prove nothing"
    return path


@pytest.mark.parametrize("argv", [["info"], ["info", "--card-only"], ["info", "--trust-code"],
                                  ["sample", "--out", "{out}", "--steps", "2", "-c"],
                                  ["sample", "--out", "{out}", "--steps", "2", "--trust-code", "-c"]])
def test_no_command_runs_a_payload(payload, target, tmp_path, argv):
    args = [a.replace("{out}", str(tmp_path / "out")) for a in argv]
    code, out, err = run_studio(*args, payload)
    if args[:2] == ["info", "--card-only"]:   # the card is read from the zip; its code check is shown
        assert code == 0, err
        assert "refused" in out and "torch.from_file" in out
    else:
        one_error(code, err, str(payload))
        assert "from_file" in err
    assert_untouched(target)


def test_a_benign_archive_loads_only_with_trust(tmp_path):
    path = payloads.benign_archive(tmp_path / "model.safetensors")
    line = one_error(*run_studio("info", path)[::2], "TorchScript archive named .safetensors", "--trust-code")
    assert "contains code" in line and "Nothing was run" in line
    code, out, err = run_studio("info", "--card-only", path)
    assert code == 0, err
    assert "code_check" in out and "checked" in out
    code, out, err = run_studio("info", "--trust-code", path)
    assert code == 0, err and "torchscript" in out
    code, _, err = run_studio("sample", "-c", path, "--trust-code", "--steps", "2", "--out", tmp_path / "o")
    assert code == 0, err
    assert json.loads((tmp_path / "o" / "run.json").read_text())["model"]["format"] == "torchscript"


def test_card_only_never_loads_the_archive(tmp_path, monkeypatch):
    path = payloads.benign_archive(tmp_path / "model.pt")

    def no_load(*args, **kwargs):
        raise AssertionError("torch.jit.load was called to read a card")

    monkeypatch.setattr(torch.jit, "load", no_load)
    code, out, err = run_studio("info", "--card-only", path)
    assert code == 0, err
    from studio.core.checkpoints import read_card

    card = read_card(path)
    assert card.format == "torchscript" and card.code_check.startswith("checked")
    assert card.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


# --- bundled names ------------------------------------------------------------------------------------------------
def test_a_bundled_name_is_never_a_file_in_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "digits").write_bytes(b"not the bundled model")
    one_error(*run_studio("info", "--card-only", "digits")[::2], "ambiguous", "./digits", "bundled:digits")
    code, out, err = run_studio("info", "--card-only", "bundled:digits")
    assert code == 0 and "digits-unet" in out, err
    one_error(*run_studio("info", "./digits")[::2], "digits", "not a checkpoint")
    # the default model is the bundled one, whatever the folder holds
    code, _, err = run_studio("sample", "--steps", "2", "--num-samples", "1", "--out", tmp_path / "o")
    assert code == 0, err
    record = json.loads((tmp_path / "o" / "run.json").read_text())
    assert record["model"]["name"] == "digits-unet" and record["checkpoint"] == "digits"


# --- recipes -------------------------------------------------------------------------------------------------------
@pytest.fixture
def recipe_png(tmp_path):
    """A sample PNG made from a copy of the bundled digits model: (png, the copy)."""
    from studio.core.bundled import bundled_by_name

    model = tmp_path / "my-digits.safetensors"
    shutil.copyfile(bundled_by_name("digits").path, model)
    code, _, err = run_studio("sample", "-c", model, "--steps", "2", "--num-samples", "1", "--out", tmp_path / "o")
    assert code == 0, err
    return tmp_path / "o" / "sample_00000.png", model


def change_bytes(model) -> None:
    """Rewrite a studio checkpoint with another description: a valid file whose sha256 is not the old one."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(model), "pt") as handle:
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
        metadata = handle.metadata()
    card = json.loads(metadata["studio.card"])
    card["description"] = "retrained since"
    save_file(tensors, str(model), metadata={**metadata, "studio.card": json.dumps(card)})


def test_a_recipe_refuses_a_changed_checkpoint(recipe_png, tmp_path):
    png, model = recipe_png
    change_bytes(model)   # other bytes, same path: a swapped or retrained file
    out = tmp_path / "again"
    one_error(*run_studio("sample", "--from-png", png, "--out", out)[::2], "not the checkpoint the recipe was made "
              "with", "--allow-changed-checkpoint")
    assert not out.exists()
    code, _, err = run_studio("sample", "--from-png", png, "--allow-changed-checkpoint", "--out", out)
    assert code == 0 and "note:" in err and "differ" in err


def test_a_recipe_cannot_open_code_without_trust(recipe_png, tmp_path, target):
    png, _ = recipe_png
    recipe = read_recipe(png)
    for make in (payloads.payload_forward, payloads.benign_archive):
        archive = make(tmp_path / "model.pt", target) if make is payloads.payload_forward else make(tmp_path / "b.pt")
        recipe.update(checkpoint=str(archive))
        recipe["model"]["sha256"] = hashlib.sha256(archive.read_bytes()).hexdigest()
        forged = write_png(tmp_path / "forged.png", __import__("numpy").zeros((8, 8), "uint8"), recipe)
        code, _, err = run_studio("sample", "--from-png", forged, "--out", tmp_path / "o2")
        one_error(code, err, str(archive))
        assert_untouched(target)


@pytest.mark.parametrize("field, value, needle", [
    ("checkpoint", 123, "checkpoint must be"), ("model", ["x"], "model must be"),
    ("model_batch", "abc", "model_batch must be"), ("version", "1", "version must be an integer"),
])
def test_a_damaged_recipe_is_one_line(recipe_png, tmp_path, field, value, needle):
    png, _ = recipe_png
    recipe = read_recipe(png)
    recipe[field] = value
    forged = write_png(tmp_path / "forged.png", __import__("numpy").zeros((8, 8), "uint8"), recipe) \
        if field not in ("model",) else _raw_png(tmp_path / "forged.png", recipe)
    one_error(*run_studio("sample", "--from-png", forged, "--out", tmp_path / "o2")[::2], needle)


def test_a_deeply_nested_recipe_is_one_line(tmp_path):
    text = "[" * 100_000 + "]" * 100_000
    one_error(*run_studio("sample", "--from-png", _raw_png(tmp_path / "deep.png", text),
                          "--out", tmp_path / "o")[::2], "nested too deeply")


def _raw_png(path, recipe) -> os.PathLike:
    """A PNG whose recipe chunk holds exactly ``recipe`` (JSON text or an object), bypassing write_png."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_itxt("sampling-studio", recipe if isinstance(recipe, str) else json.dumps(recipe))
    Image.new("L", (8, 8)).save(path, pnginfo=info)
    return path


class FailsOnBatches(torch.nn.Module):
    """Answers the batch-of-one probe, then fails at the first model call on more rows."""

    def forward(self, x, t):
        if x.shape[0] > 1:
            raise RuntimeError("this network takes one row at a time")
        return x * 0.5


def test_a_network_that_fails_while_sampling_is_one_line(tmp_path):
    path = tmp_path / "fails.pt"
    card = {"name": "fails", "data_kind": "vector", "data_shape": [2], "num_train_timesteps": 10}
    torch.jit.save(torch.jit.script(FailsOnBatches()), str(path), _extra_files={"studio_card.json": json.dumps(card)})
    one_error(*run_studio("sample", "-c", path, "--trust-code", "--steps", "2", "--batch", "4",
                          "--model-batch", "0", "--no-progress", "--out", tmp_path / "o")[::2], "scripted network failed")
