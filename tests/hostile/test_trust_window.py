"""The window runs no file's code unless the user said yes to that very file: not on open (the question defaults
to no), not when it reopens the last model at start, not from a PNG's recipe; a payload never runs even with a
yes (the code check refuses it first). A recipe whose checkpoint changed opens only if the user confirms."""

from __future__ import annotations

import shutil

import pytest

import payload_archives as payloads
from studio.core.recipe import read_recipe
from studio.gui import persistence, trust_dialog
from test_trust import ORIGINAL, assert_untouched, change_bytes

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


@pytest.fixture
def answers(monkeypatch):
    """The trust question answered by the test: a list of the paths asked about; set .reply to answer."""
    class Answers(list):
        reply = False

    replies = Answers()

    def confirm(parent, path, sha256, verdict):
        replies.append(path)
        return replies.reply

    monkeypatch.setattr(trust_dialog, "confirm_code_trust", confirm)
    return replies


@pytest.fixture
def target(tmp_path):
    path = tmp_path / "victim.txt"
    path.write_bytes(ORIGINAL)
    return path


def test_a_declined_archive_is_not_loaded_and_the_model_stays(make_window, answers, tmp_path):
    window = make_window(open_default=True)
    before = window.card
    archive = payloads.benign_archive(tmp_path / "model.pt")
    assert not window.open_checkpoint(archive)
    assert answers == [str(archive)]
    assert window.card is before
    assert "did not trust" in window.error_banner.message()


def test_a_trusted_archive_is_remembered_by_its_bytes(make_window, answers, tmp_path):
    window = make_window()
    archive = payloads.benign_archive(tmp_path / "model.pt")
    answers.reply = True
    assert window.open_checkpoint(archive)
    assert window.card.format == "torchscript" and window.card.code_check.startswith("checked")
    assert window.card.sha256 in persistence.trusted_code()
    assert window.open_checkpoint(archive) and len(answers) == 1     # the same bytes: not asked again
    payloads.benign_archive(archive, scale=3.0)                      # other bytes under the same name
    answers.reply = False
    assert not window.open_checkpoint(archive) and len(answers) == 2


def test_a_payload_never_runs_even_when_trusted(make_window, answers, tmp_path, target):
    window = make_window(open_default=True)
    answers.reply = True
    for make in (payloads.payload_forward, payloads.payload_setstate):
        archive = make(tmp_path / f"{make.__name__}.safetensors", target)
        assert not window.open_checkpoint(archive)
        assert "from_file" in window.error_banner.message()
        assert_untouched(target)
    assert answers == []   # refused by the code check before the question


def test_the_last_model_is_never_reopened_as_code(make_window, answers, tmp_path, target):
    archive = payloads.benign_archive(tmp_path / "model.pt")
    persistence.remember_checkpoint(str(archive))
    window = make_window(restore_last=True, open_default=True)
    assert answers == []
    assert window.card.format == "studio"          # the bundled default instead
    assert "never reopens code" in window.error_banner.message()
    payload = payloads.payload_setstate(tmp_path / "evil.pt", target)
    persistence.remember_checkpoint(str(payload))
    make_window(restore_last=True, open_default=True)
    assert_untouched(target)


def test_a_recipe_with_a_changed_checkpoint_asks(make_window, monkeypatch, tmp_path, qtbot):
    from studio.core.bundled import bundled_by_name
    from window_driving import generate

    model = tmp_path / "my-digits.safetensors"
    shutil.copyfile(bundled_by_name("digits").path, model)
    window = make_window()
    assert window.open_checkpoint(model)
    generate(window, qtbot, steps=2, batch=1)
    png = tmp_path / "s.png"
    assert window.exports.export_sample_png(png)
    change_bytes(model)
    window.set_model(window.denoiser, source=None)   # forget the source: the PNG must open the file again
    asked = []
    monkeypatch.setattr(trust_dialog, "confirm_changed_checkpoint", lambda *a: asked.append(a) or False)
    other = make_window()
    assert not other.open_path(png)
    assert asked and "has changed" in other.error_banner.message()
    assert other.card is None
    monkeypatch.setattr(trust_dialog, "confirm_changed_checkpoint", lambda *a: True)
    assert other.open_path(png)
    assert other.card.sha256 != read_recipe(png)["model"]["sha256"]
