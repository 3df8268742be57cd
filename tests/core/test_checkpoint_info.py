"""`studio info CHECKPOINT`: the card on stdout and exit 0; for a bad file exit 2 and exactly one stderr line
starting ``error:`` that names the file, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import checkpoint_makers as make
from studio.cli import main
from studio.core.checkpoints import read_card


def test_info_prints_the_card(tmp_path, capsys):
    network, card = make.unet(num_classes=3)
    path = make.studio_file(tmp_path, network, card)
    assert main(["info", str(path)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    rows = dict(line.split(None, 1) for line in out.splitlines())
    assert rows["name"] == "tiny-unet" and rows["format"] == "studio"
    assert rows["sha256"] == read_card(path).sha256
    assert rows["data_shape"] == "1 x 8 x 8" and rows["num_train_timesteps"] == "50"
    assert rows["class_names"] == "3: c0, c1, c2" and rows["null_class"] == "3"


def test_info_json_is_the_card(tmp_path, capsys):
    network, card = make.mlp()
    path = make.state_dict_file(tmp_path, network, card)
    assert main(["info", "--json", str(path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == read_card(path).to_dict()
    assert printed["prediction_type"] == "v_prediction" and printed["format"] == "state_dict"


def test_info_on_a_classifier(tmp_path, capsys):
    path = make.studio_file(tmp_path, *make.classifier(), "cls.safetensors")
    assert main(["info", str(path)]) == 0
    assert "role                 classifier" in capsys.readouterr().out


def test_info_card_only_skips_the_weights(tmp_path, capsys):
    network, card = make.unet()
    path = make.studio_file(tmp_path, network, card)
    assert main(["info", "--card-only", str(path)]) == 0
    assert "tiny-unet" in capsys.readouterr().out
    # weights that no longer fit the card's architecture: only the full open notices
    arch = {"name": "unet", "config": dict(card.architecture["config"], base_channels=16)}
    bad = make.studio_file_with_card(tmp_path, {**make.card_dict(card), "architecture": arch}, network, "b.safetensors")
    assert main(["info", "--card-only", str(bad)]) == 0
    capsys.readouterr()
    assert main(["info", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}: weights do not fit")


@pytest.mark.parametrize("make_bad", [
    lambda d: d / "missing.safetensors",
    lambda d: (d / "empty.pt").write_bytes(b"") and d / "empty.pt",
    lambda d: (d / "image.pt").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40)) and d / "image.pt",
    lambda d: d,  # a folder with no config
])
def test_info_on_a_bad_file(tmp_path, capsys, make_bad):
    bad = make_bad(tmp_path)
    assert main(["info", str(bad)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith(f"error: {bad}: ")
    assert "Traceback" not in err


def test_info_as_a_process(tmp_path):
    (tmp_path / "model.pt").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    bad = subprocess.run([sys.executable, "-m", "studio", "info", str(tmp_path / "model.pt")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stdout == ""
    expected = f"error: {tmp_path / 'model.pt'}: is a PNG image, not a checkpoint (despite its .pt name)"
    assert bad.stderr.splitlines() == [expected]
    good = make.studio_file(tmp_path, *make.mlp())
    ok = subprocess.run([sys.executable, "-m", "studio", "info", str(good)], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stderr == "" and "tiny-mlp" in ok.stdout
