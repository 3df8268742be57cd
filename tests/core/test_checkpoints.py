"""Round trips of the studio's own formats (studio .safetensors, state dict + JSON card, TorchScript archive):
the opened denoiser answers exactly what the original network answers, under the card that was saved, and
the fields describing the file are measured from it."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys

import pytest
import torch

import checkpoint_makers as make
from studio.core import bundled
from studio.core.checkpoints import (ModelHolder, card_lines, identify, open_checkpoint, open_classifier, read_card,
                                     studio_format)
from studio.core.errors import CheckpointError
from studio.core.models.card import ModelCard

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

MEASURED = ("format", "path", "file_size", "sha256", "parameter_count", "dtype", "assumed")


def same_card(opened: ModelCard, original: ModelCard) -> bool:
    strip = lambda card: {k: v for k, v in card.to_dict().items() if k not in MEASURED}  # noqa: E731
    return strip(opened) == strip(original)


def assert_same_network(denoiser, network, labels=None, atol=0.0):
    """raw output equal at several timesteps, and predict() maps it by the card's prediction type."""
    gen = torch.Generator().manual_seed(5)
    card = denoiser.card
    x = torch.randn((3, *card.data_shape), generator=gen)
    with torch.no_grad():
        for t in (0, card.num_train_timesteps // 2, card.num_train_timesteps - 1):
            t_batch = torch.full((3,), t, dtype=torch.long)
            want = network(x, t_batch, labels)
            assert want.abs().max() > 1e-3  # a non-trivial answer, so equality means the weights were loaded
            torch.testing.assert_close(denoiser.raw(x, t_batch, labels), want, rtol=0, atol=atol)
            eps, x0 = eps_and_x0(want[:, :card.channels], x, float(card.schedule().alpha_bar[t]),
                                 card.prediction_type)
            got = denoiser.predict(x, t, labels)  # float32 arithmetic; dividing by sqrt(1 - a) near t = 0 amplifies
            torch.testing.assert_close(got.eps, eps, rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(got.x0, x0, rtol=1e-4, atol=1e-4)


def eps_and_x0(out, x, alpha_bar, prediction_type):
    """x_t = sqrt(a) x0 + sqrt(1 - a) eps; v = sqrt(a) eps - sqrt(1 - a) x0."""
    s, s1 = math.sqrt(alpha_bar), math.sqrt(1 - alpha_bar)
    if prediction_type == "epsilon":
        return out, (x - s1 * out) / s
    if prediction_type == "sample":
        return (x - s * out) / s1, out
    return s * out + s1 * x, s * x - s1 * out


def assert_measured(card: ModelCard, file, state: dict, fmt: str):
    assert card.format == fmt
    assert card.file_size == file.stat().st_size
    assert card.sha256 == hashlib.sha256(file.read_bytes()).hexdigest()
    assert card.parameter_count == sum(v.numel() for v in state.values())
    assert card.dtype == "float32"


# --- studio .safetensors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("num_classes, learn_sigma", [(0, False), (3, False), (2, True)])
def test_studio_file_round_trip_unet(tmp_path, num_classes, learn_sigma):
    network, card = make.unet(num_classes=num_classes, learn_sigma=learn_sigma)
    path = make.studio_file(tmp_path, network, card)
    assert identify(path) == "studio"
    denoiser = open_checkpoint(path)
    assert same_card(denoiser.card, card)
    assert denoiser.card.path == str(path.resolve())
    assert_measured(denoiser.card, path, network.state_dict(), "studio")
    labels = torch.tensor([0, num_classes - 1, num_classes]) if num_classes else None  # incl. the null class
    assert_same_network(denoiser, network, labels)
    if learn_sigma:
        x = torch.randn(2, 1, 8, 8)
        raw = network(x, torch.full((2,), 7), torch.tensor([0, 1]))
        torch.testing.assert_close(denoiser.predict(x, 7, torch.tensor([0, 1])).var_values, raw[:, 1:], rtol=0, atol=0)


def test_studio_file_round_trip_mlp_v_prediction(tmp_path):
    network, card = make.mlp()
    path = make.studio_file(tmp_path, network, card, "toy.safetensors")
    denoiser = open_checkpoint(path)
    assert denoiser.card.prediction_type == "v_prediction" and denoiser.card.value_range == (-4.0, 4.0)
    assert same_card(denoiser.card, card)
    assert_same_network(denoiser, network)


def test_read_card_reads_only_the_header(tmp_path, monkeypatch):
    network, card = make.unet()
    path = make.studio_file(tmp_path, network, card)
    monkeypatch.setattr(studio_format, "load_tensors", lambda p: pytest.fail("read_card loaded the tensors"))
    read = read_card(path)
    assert same_card(read, card)
    assert_measured(read, path, network.state_dict(), "studio")


def test_card_in_the_file_never_decides_the_measured_fields(tmp_path):
    network, card = make.unet()
    lying = card.replace(sha256="0" * 64, file_size=1, path="/elsewhere", parameter_count=3, dtype="float16")
    path = make.studio_file(tmp_path, network, lying)
    assert_measured(open_checkpoint(path).card, path, network.state_dict(), "studio")


# --- classifier --------------------------------------------------------------------------------------------------
def test_classifier_round_trip(tmp_path):
    network, card = make.classifier()
    path = make.studio_file(tmp_path, network, card, "cls.safetensors")
    opened = open_classifier(path)
    assert opened.card.role == "classifier" and opened.card.class_names == ("a", "b", "c")
    x, t, labels = torch.randn(4, 1, 8, 8), torch.tensor([0, 10, 30, 49]), torch.tensor([0, 1, 2, 1])
    with torch.no_grad():
        torch.testing.assert_close(opened.log_prob(x, t, labels), network.log_prob(x, t, labels), rtol=0, atol=0)
    assert opened.to("cpu") is opened
    with pytest.raises(CheckpointError, match="classifier.*not a denoiser"):
        open_checkpoint(path)


def test_denoiser_is_not_a_classifier(tmp_path):
    path = make.studio_file(tmp_path, *make.unet())
    with pytest.raises(CheckpointError, match="not a noise-aware classifier"):
        open_classifier(path)


# --- state dict + JSON card --------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".pt", ".pth", ".ckpt", ".bin"])
def test_state_dict_round_trip(tmp_path, suffix):
    network, card = make.unet(num_classes=2)
    path = make.state_dict_file(tmp_path, network, card, f"weights{suffix}")
    assert identify(path) == "state_dict"
    denoiser = open_checkpoint(path)
    assert same_card(denoiser.card, card)
    assert_measured(denoiser.card, path, network.state_dict(), "state_dict")
    assert_same_network(denoiser, network, torch.tensor([1, 0, 2]))


def test_state_dict_legacy_pickle_and_nested_checkpoint(tmp_path):
    network, card = make.mlp()
    path = make.state_dict_file(tmp_path, network, card, "legacy.pt")
    torch.save({"state_dict": network.state_dict(), "epoch": 3}, path, _use_new_zipfile_serialization=False)
    assert identify(path) == "state_dict"
    assert_same_network(open_checkpoint(path), network)


def test_plain_safetensors_with_card_beside_is_a_state_dict(tmp_path):
    from safetensors.torch import save_file

    network, card = make.mlp()
    json_path = make.state_dict_file(tmp_path, network, card, "plain.pt").with_suffix(".json")
    path = tmp_path / "plain.safetensors"
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, path)
    assert json_path.is_file() and identify(path) == "state_dict"
    assert_same_network(open_checkpoint(path), network)


def test_state_dict_card_lists_left_out_fields_as_assumed(tmp_path):
    network, card = make.mlp()
    path = make.state_dict_file(tmp_path, network, card)
    minimal = {"name": "m", "data_kind": "vector", "data_shape": [2], "architecture": card.architecture,
               "beta_schedule": "squaredcos_cap_v2"}
    path.with_suffix(".json").write_text(json.dumps(minimal))
    opened = read_card(path)
    assert "beta_schedule" not in opened.assumed
    left_out = {"num_train_timesteps", "prediction_type", "variance_type", "clip_sample", "value_range"}
    assert left_out <= set(opened.assumed)
    defaults = ModelCard(name="d")
    assert all(getattr(opened, field) == getattr(defaults, field) for field in left_out)
    assert any(line.endswith("(assumed)") and line.startswith("prediction_type") for line in card_lines(opened))


# --- TorchScript -------------------------------------------------------------------------------------------------
def test_torchscript_round_trip_with_labels(tmp_path):
    module = make.randomise(make.ScriptedImageModel(channels=2, num_classes=4))
    card = {"name": "scripted", "data_kind": "image", "data_shape": [2, 6, 6], "prediction_type": "sample",
            "class_names": ["w", "x", "y", "z"], "num_train_timesteps": 200}
    path = make.torchscript_file(tmp_path, module, card)
    assert identify(path) == "torchscript"
    denoiser = open_checkpoint(path, trust_code=True)
    assert denoiser.card.prediction_type == "sample" and denoiser.card.class_names == ("w", "x", "y", "z")
    assert_measured(denoiser.card, path, module.state_dict(), "torchscript")
    assert_same_network(denoiser, module, torch.tensor([0, 3, 1]), atol=1e-6)


def test_torchscript_round_trip_x_t_only(tmp_path):
    module = make.randomise(make.ScriptedVectorModel())
    path = make.torchscript_file(tmp_path, module, {"name": "vec", "data_kind": "vector", "data_shape": [3],
                                                     "num_train_timesteps": 100})
    denoiser = open_checkpoint(path, trust_code=True)
    assert denoiser.card.data_shape == (3,) and not denoiser.card.conditional
    assert_same_network(denoiser, lambda x, t, y: module(x, t), atol=1e-6)


# --- bundled names, identify, holder -----------------------------------------------------------------------------
def test_bundled_short_name_opens_the_bundled_file(tmp_path, monkeypatch):
    monkeypatch.setattr(bundled, "resources_dir", lambda: tmp_path)
    monkeypatch.chdir(tmp_path)
    network, card = make.mlp()
    make.studio_file(tmp_path, network, card, bundled.bundled_by_name("toy2d").filename)
    assert identify("toy2d") == "studio"
    assert_same_network(open_checkpoint("toy2d"), network)
    with pytest.raises(CheckpointError, match="bundled model 'digits' is not installed") as info:
        open_checkpoint("digits")
    assert "digits-unet.safetensors" in str(info.value)


def test_holder_keeps_the_previous_model_when_a_new_one_fails(tmp_path):
    network, card = make.unet()
    good = make.studio_file(tmp_path, network, card)
    bad = [tmp_path / "missing.pt", tmp_path / "empty.pt", tmp_path / "half.safetensors"]
    bad[1].write_bytes(b"")
    bad[2].write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    holder = ModelHolder()
    first = holder.open(good)
    for path in bad:
        with pytest.raises(CheckpointError, match=str(path.name)):
            holder.open(path)
        assert holder.denoiser is first and holder.card.name == "tiny-unet"
    assert_same_network(holder.denoiser, network)
    second = holder.open(make.studio_file(tmp_path, *make.mlp(), "other.safetensors"))
    assert holder.denoiser is second and holder.card.name == "tiny-mlp"


def test_importing_checkpoints_does_not_import_diffusers():
    code = ("import sys, studio.core.checkpoints, studio.commands.info\n"
            "print('diffusers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
