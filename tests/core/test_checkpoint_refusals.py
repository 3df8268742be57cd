"""Bad input: each case raises one CheckpointError whose one-line message names the file and what is wrong,
and a pickle carrying code is refused without running it (its marker file never appears)."""

from __future__ import annotations

import json
import os
import pickle
import re

import pytest
import torch

import checkpoint_makers as make
from studio.core.checkpoints import identify, open_checkpoint, open_classifier, read_card
from studio.core.errors import CheckpointError

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


def refused(source, *fragments, opener=open_checkpoint) -> str:
    """The message of the CheckpointError ``opener(source)`` raises; it names ``source`` and every fragment."""
    with pytest.raises(CheckpointError) as info:
        opener(source)
    message = str(info.value)
    assert "\n" not in message, message
    assert os.fspath(source) in message or os.path.basename(os.fspath(source)) in message, message
    for fragment in fragments:
        assert re.search(fragment, message, re.I), f"{fragment!r} not in {message!r}"
    return message


# --- the file itself ---------------------------------------------------------------------------------------------
def test_missing_path(tmp_path):
    refused(tmp_path / "nowhere.safetensors", "no such file or folder")
    refused(tmp_path / "nowhere.safetensors", "no such file", opener=read_card)


def test_empty_file(tmp_path):
    (tmp_path / "empty.pt").write_bytes(b"")
    refused(tmp_path / "empty.pt", "empty")


def test_png_renamed_pt(tmp_path):
    from PIL import Image

    Image.new("RGB", (4, 4)).save(tmp_path / "picture.png")
    (tmp_path / "picture.png").rename(tmp_path / "model.pt")
    refused(tmp_path / "model.pt", "PNG image, not a checkpoint", r"\.pt")


def test_unknown_bytes(tmp_path):
    (tmp_path / "notes.bin").write_bytes(b"just some text, not weights")
    refused(tmp_path / "notes.bin", "not a checkpoint the studio can read")


@pytest.mark.parametrize("keep", [4, 100, 0.5, -20])
def test_truncated_safetensors(tmp_path, keep):
    path = make.studio_file(tmp_path, *make.unet())
    data = path.read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else (keep if keep > 0 else len(data) + keep)
    (tmp_path / "cut.safetensors").write_bytes(data[:cut])
    refused(tmp_path / "cut.safetensors", "truncated")


def test_corrupted_safetensors_header(tmp_path):
    path = make.studio_file(tmp_path, *make.unet())
    data = bytearray(path.read_bytes())
    data[8:24] = b"#" * 16  # the start of the JSON header
    path.write_bytes(bytes(data))
    refused(path, "safetensors header is not valid JSON")


def test_safetensors_without_card(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, tmp_path / "plain.safetensors")
    refused(tmp_path / "plain.safetensors", "without a studio model card", "plain.json")


def test_zip_that_is_not_pytorch(tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "archive.pt", "w") as archive:
        archive.writestr("readme.txt", "hello")
    refused(tmp_path / "archive.pt", "zip archive but not a PyTorch one")


def test_truncated_pytorch_archive(tmp_path):
    network, card = make.unet()
    path = make.state_dict_file(tmp_path, network, card)
    path.write_bytes(path.read_bytes()[:3000])
    refused(path, "truncated or corrupted")


# --- the card ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("change, fragments", [
    ({"num_train_timesteps": 0}, ["num_train_timesteps", ">= 1", "0"]),
    ({"beta_start": -0.1}, ["beta_start", r"\(0, 1\)"]),
    ({"trained_betas": [-0.1] + [0.01] * 49}, ["beta\\[0\\]", r"\(0, 1\)"]),
    ({"beta_end": 1e-5}, ["beta_end", "below beta_start"]),
    ({"data_shape": "8x8"}, ["data_shape", "list of integers"]),
    ({"data_shape": [1, 0, 8]}, ["data_shape", "positive"]),
    ({"value_range": [1, -1]}, ["value_range", "low < high"]),
    ({"prediction_type": "noise"}, ["prediction_type", "epsilon"]),
    ({"variance_type": "huge"}, ["variance_type"]),
    ({"clip_sample": "yes"}, ["clip_sample", "true or false"]),
    ({"card_version": 99}, ["version 99", "newer"]),
    ({"num_train_timestep": 10}, ["unknown field num_train_timestep", "did you mean num_train_timesteps"]),
])
def test_nonsensical_card_fields(tmp_path, change, fragments):
    network, card = make.unet()
    path = make.studio_file_with_card(tmp_path, {**make.card_dict(card), **change}, network)
    refused(path, "model card", *fragments)
    refused(path, "model card", *fragments, opener=read_card)


@pytest.mark.parametrize("field", ["name", "data_kind", "data_shape", "architecture"])
def test_card_missing_fields(tmp_path, field):
    network, card = make.unet()
    data = make.card_dict(card)
    del data[field]
    refused(make.studio_file_with_card(tmp_path, data, network), "model card is missing", field)


def test_card_metadata_not_json(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "m.safetensors"
    save_file({"w": torch.zeros(1)}, path, metadata={"format": "sampling-studio", "studio.card": "{name: x"})
    refused(path, "model card is not valid JSON")


def test_card_naming_an_unknown_architecture(tmp_path):
    network, card = make.unet()
    data = {**make.card_dict(card), "architecture": {"name": "transformer", "config": {}}}
    refused(make.studio_file_with_card(tmp_path, data, network), "cannot build architecture 'transformer'", "unknown")


def test_card_classes_disagree_with_network(tmp_path):
    network, card = make.unet(num_classes=3)
    data = {**make.card_dict(card), "class_names": ["a", "b"], "null_class": None}
    refused(make.studio_file_with_card(tmp_path, data, network), "2 class_names", "num_classes = 3")


# --- the weights -------------------------------------------------------------------------------------------------
def test_studio_weights_do_not_fit_the_architecture(tmp_path):
    network, card = make.unet()
    config = dict(card.architecture["config"], base_channels=16)
    data = {**make.card_dict(card), "architecture": {"name": "unet", "config": config}}
    refused(make.studio_file_with_card(tmp_path, data, network), "weights do not fit", "shape")


def test_state_dict_weights_do_not_fit_the_card(tmp_path):
    network, card = make.mlp()
    path = make.state_dict_file(tmp_path, network, card)
    data = json.loads(path.with_suffix(".json").read_text())
    data["architecture"]["config"]["hidden"] = 32
    path.with_suffix(".json").write_text(json.dumps(data))
    refused(path, "weights do not fit", r"\[16", r"\[32")


def test_state_dict_missing_a_tensor(tmp_path):
    network, card = make.mlp()
    path = make.state_dict_file(tmp_path, network, card)
    state = network.state_dict()
    state.pop("input.weight")
    torch.save(state, path)
    refused(path, "weights do not fit", "input.weight", "lacks")


def test_state_dict_without_card(tmp_path):
    network, _ = make.mlp()
    torch.save(network.state_dict(), tmp_path / "lonely.pt")
    refused(tmp_path / "lonely.pt", "model card beside it", "lonely.json")


def test_state_dict_card_not_json(tmp_path):
    network, card = make.mlp()
    path = make.state_dict_file(tmp_path, network, card)
    path.with_suffix(".json").write_text("{ not json")
    refused(path.with_suffix(".json"), "not valid JSON", opener=lambda _: open_checkpoint(path))


def test_pickle_of_no_tensors(tmp_path):
    network, card = make.mlp()
    path = make.state_dict_file(tmp_path, network, card)
    torch.save({"epoch": 3, "note": "no weights here"}, path)
    refused(path, "holds no state dict")


# --- pickles that carry code -------------------------------------------------------------------------------------
class _Payload:
    """Unpickling this would run ``exec`` and create the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


class _ShellPayload(_Payload):
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _prove_payload_works(marker):
    """The payload does run when unpickled without the weights-only loader, so its absence below means something."""
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.exists()
    marker.unlink()


@pytest.mark.parametrize("how", ["torch.save", "legacy torch.save", "pickle protocol 2", "pickle protocol 4",
                                 "os.system"])
def test_pickle_carrying_code_is_refused_and_never_runs(tmp_path, how):
    marker = tmp_path / "MARKER"
    _prove_payload_works(marker)
    network, card = make.mlp()
    path = make.state_dict_file(tmp_path, network, card, "evil.pt")
    state = {**network.state_dict(), "extra": _Payload(marker)}
    if how == "torch.save":
        torch.save(state, path)
    elif how == "legacy torch.save":
        torch.save(state, path, _use_new_zipfile_serialization=False)
    elif how == "os.system":
        torch.save({**network.state_dict(), "extra": _ShellPayload(marker)}, path)
    else:
        path.write_bytes(pickle.dumps(state, protocol=int(how[-1])))
    assert identify(path) == "state_dict"
    name = "system" if how == "os.system" else "exec"
    for opener in (open_checkpoint, read_card, open_classifier):
        refused(path, "refused", f"asks for [\\w.]*{name}", "runs nothing", opener=opener)
    assert not marker.exists()


# --- TorchScript (trusted: these check what loading finds; tests/hostile covers trust itself) ---------------------
def trusted(path):
    return open_checkpoint(path, trust_code=True)


def test_torchscript_without_card(tmp_path):
    path = make.torchscript_file(tmp_path, make.ScriptedVectorModel(), None)
    refused(path, "no extra file studio_card.json", "_extra_files")


def test_torchscript_card_disagrees_with_the_model(tmp_path):
    card = {"name": "vec", "data_kind": "vector", "data_shape": [5]}
    path = make.torchscript_file(tmp_path, make.ScriptedVectorModel(), card)
    refused(path, "does not run on the card's data shape 5", "mat1 and mat2", opener=trusted)


def test_torchscript_conditional_card_but_no_label_input(tmp_path):
    card = {"name": "vec", "data_kind": "vector", "data_shape": [3], "class_names": ["a", "b"]}
    refused(make.torchscript_file(tmp_path, make.ScriptedVectorModel(), card), "takes only \\(x, t\\)", opener=trusted)


def test_torchscript_learned_variance_card_but_c_channels(tmp_path):
    card = {"name": "vec", "data_kind": "vector", "data_shape": [3], "variance_type": "learned_range"}
    refused(make.torchscript_file(tmp_path, make.ScriptedVectorModel(), card), r"needs \(1, 6\)", opener=trusted)


# --- folders (no diffusers import needed to refuse these) ----------------------------------------------------------
def test_folder_with_no_config(tmp_path):
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "diffusion_pytorch_model.safetensors").write_bytes(b"x")
    refused(tmp_path / "weights", "no model_index.json", "config.json")


def test_config_naming_an_unknown_class(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"_class_name": "UNet2DConditionModel", "sample_size": 8}))
    refused(tmp_path, "UNet2DConditionModel", "UNet2DModel only", opener=read_card)


def test_pipeline_naming_an_unknown_unet_class(tmp_path):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline",
                                                           "unet": ["diffusers", "UNet2DConditionModel"]}))
    refused(tmp_path, "model_index.json", "UNet2DConditionModel")


def test_config_not_json(tmp_path):
    (tmp_path / "config.json").write_text("{")
    refused(tmp_path, "config.json is not valid JSON")
