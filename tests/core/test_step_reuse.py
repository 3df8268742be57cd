"""What a run makes once and reuses (the timestep batch handed to the network, padded and doubled labels, the
coefficient tables) never changes a result: a network that writes into its inputs, labels changed in place and
many runs of other settings in between all leave every sample as a fresh computation makes it."""

from __future__ import annotations

import pytest
import torch
from oracle_models import fake_denoiser

from studio.core.checkpoints import open_checkpoint
from studio.core.engine import Run, sample_final
from studio.core.errors import SettingsError
from studio.core.models.fixed_batch import FixedBatchDenoiser
from studio.core.models.networks.layers import ClassEmbedding
from studio.core.samplers import DDIMSettings, DDPMSettings
from studio.core.settings import CLASS_CYCLE, GuidanceSettings, RunSettings


class Recording:
    """A network that remembers the t and label values it was given (optionally scribbling over its t)."""

    def __init__(self, inner, scribble: bool = False):
        self.inner, self.scribble, self.ts, self.labels = inner, scribble, [], []

    def __call__(self, x, t, class_labels=None):
        self.ts.append(t.tolist())
        self.labels.append(None if class_labels is None else class_labels.tolist())
        out = self.inner(x, t, class_labels)
        if self.scribble:
            with torch.inference_mode(False):
                t.fill_(0)
        return out


def test_the_network_gets_each_t_as_a_long_batch_in_every_run():
    denoiser = fake_denoiser()
    network = denoiser.network = Recording(denoiser.network)
    settings = RunSettings(sampler=DDIMSettings(steps=5), batch_size=3)
    first = sample_final(denoiser, settings)
    assert torch.equal(first, sample_final(denoiser, settings))
    assert network.ts[:5] == [[t] * 3 for t in (800, 600, 400, 200, 0)] and network.ts[5:] == network.ts[:5]
    sample_final(denoiser, settings.replace(batch_size=2))
    assert network.ts[-1] == [0, 0]


def test_a_network_that_writes_into_its_timesteps_cannot_change_the_next_call():
    clean = fake_denoiser()
    scribbling = fake_denoiser()
    scribbling.network = Recording(scribbling.network, scribble=True)
    settings = RunSettings(sampler=DDPMSettings(steps=6), batch_size=2, seed=5)
    for _ in range(2):   # the second run would see the scribbled t of the first if it were kept
        assert torch.equal(sample_final(scribbling, settings), sample_final(clean, settings))
    assert scribbling.network.ts[6:] == scribbling.network.ts[:6]


def test_placed_labels_follow_labels_changed_in_place():
    inner = fake_denoiser(num_train_timesteps=1000, class_names=("a", "b", "c"), null_class=3)
    network = inner.network = Recording(inner.network)
    wrapped = FixedBatchDenoiser(inner, 4)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    x = torch.zeros(6, *inner.card.data_shape)
    with torch.inference_mode():
        wrapped.predict(x, 10, labels)
        wrapped.predict(x, 9, labels)
    assert network.labels == [[0, 1, 2, 0], [1, 2, 1, 1]] * 2
    labels[0] = 2
    with torch.inference_mode():
        wrapped.predict(x, 8, labels)
    assert network.labels[-2] == [2, 1, 2, 0]


def test_classifier_free_guidance_calls_the_network_on_conditional_then_null_labels():
    denoiser = fake_denoiser(class_names=("a", "b"), null_class=2)
    network = denoiser.network = Recording(denoiser.network)
    settings = RunSettings(sampler=DDPMSettings(steps=4), batch_size=2, class_label=1,
                           guidance=GuidanceSettings("classifier_free", 3.0))
    sample_final(denoiser, settings)
    assert network.labels == [[1, 1, 2, 2]] * 4


@pytest.mark.parametrize("bad", [[0, 11], [-1, 0]])
def test_the_class_embedding_refuses_labels_out_of_range(bad):
    embedding = ClassEmbedding(10, 4)
    good = torch.tensor([0, 10])
    assert embedding(good, 2, torch.device("cpu")).shape == (2, 4)
    with pytest.raises(SettingsError, match="class labels must be from 0 to 9, or 10 for no class"):
        embedding(torch.tensor(bad), 2, torch.device("cpu"))
    good[1] = 12   # on the CPU every call checks: the same tensor, changed since it was found good, is refused
    with pytest.raises(SettingsError, match="class labels must be from 0 to 9"):
        embedding(good, 2, torch.device("cpu"))


class LabelsOn:
    """The labels the embedding checks (``class_labels`` in ``ClassEmbedding._check_range``) as they would be on
    ``device``, counting the reads of their values (on a GPU each read waits for the device). They show the
    values of the tensor they were made from, as a copy to the GPU made at that call would."""

    def __init__(self, given: torch.Tensor, device: str):
        self.given, self.device, self.reads = given, torch.device(device), 0

    def numel(self):
        return self.given.numel()

    def min(self):
        self.reads += 1
        return self.given.min()

    def max(self):
        return self.given.max()

    def tolist(self):
        return self.given.tolist()


@pytest.mark.parametrize("device,reads", [("cuda", 1), ("cpu", 2)])
def test_on_a_gpu_labels_found_good_are_read_again_only_once_written_into(monkeypatch, device, reads):
    """The check kept per labels tensor exists only off the CPU (the CPU, the control, reads at every call):
    the engine hands the same labels tensor to every step, so a GPU run waits for one read of them, not one
    per step; a write into them is seen (the tensor's version counter), and they are checked again."""
    # no CUDA graph is being recorded (asked of "cuda" labels; a torch without CUDA cannot answer)
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: False)
    embedding = ClassEmbedding(10, 4)
    given = torch.tensor([0, 10])
    seen = LabelsOn(given, device)
    embedding._check_range(given, seen)
    embedding._check_range(given, seen)
    assert seen.reads == reads
    given[1] = 12   # the same tensor, changed since it was found good
    with pytest.raises(SettingsError, match="class labels must be from 0 to 9"):
        embedding._check_range(given, seen)
    assert seen.reads == reads + 1
    wider = ClassEmbedding(20, 4)   # another null class: labels found good for one embedding are not for all
    bad_for_narrow = torch.tensor([0, 15])
    wider._check_range(bad_for_narrow, LabelsOn(bad_for_narrow, device))
    with pytest.raises(SettingsError, match="class labels must be from 0 to 9"):
        embedding._check_range(bad_for_narrow, LabelsOn(bad_for_narrow, device))


@pytest.fixture
def no_kept_values(monkeypatch):
    """The control: everything a run keeps for reuse made afresh at every use (the timestep batches, the
    padded labels, the coefficient tables)."""
    from studio.core.models.denoiser import NetworkDenoiser
    from studio.core.samplers import coefficients

    timestep_batch = NetworkDenoiser._timestep_batch

    def fresh_timestep_batch(self, *args):
        self._timestep_batches.clear()
        return timestep_batch(self, *args)

    label_parts = FixedBatchDenoiser._label_parts

    def fresh_label_parts(self, *args):
        self._placed_labels.clear()
        return label_parts(self, *args)

    monkeypatch.setattr(NetworkDenoiser, "_timestep_batch", fresh_timestep_batch)
    monkeypatch.setattr(FixedBatchDenoiser, "_label_parts", fresh_label_parts)
    for name in ("_ddim", "_ddpm"):
        monkeypatch.setattr(coefficients, name, getattr(coefficients, name).__wrapped__)


def digits_runs(sampler):
    """Two runs of the same settings: the second can reuse whatever the first kept."""
    digits = open_checkpoint("digits")
    settings = RunSettings(sampler=sampler, batch_size=3, class_label=CLASS_CYCLE, model_batch=4, device="cpu")
    first = sample_final(digits, settings)
    kept = dict(digits._timestep_batches)
    for step in Run(digits, settings):   # iterated, where sample_final drains
        pass
    return digits, first, step.x_t, kept


@pytest.mark.parametrize("sampler", [DDIMSettings(steps=6), DDPMSettings(steps=5)])
def test_a_digits_run_gives_the_samples_of_one_that_keeps_nothing(sampler, request):
    digits, first, second, kept = digits_runs(sampler)
    assert kept and all(digits._timestep_batches[key][0] is made[0] for key, made in kept.items())  # reused
    assert torch.equal(second, first)
    request.getfixturevalue("no_kept_values")
    _, control_first, control_second, control_kept = digits_runs(sampler)
    assert len(control_kept) == 1   # the control really kept nothing (the last batch made stays till the next)
    assert torch.equal(control_first, first) and torch.equal(control_second, first)


def test_runs_of_other_settings_in_between_leave_a_run_as_it_was():
    """Many runs of other step counts and etas between two runs of the same settings (more than the tables
    kept) do not change its samples: tables are keyed by everything they depend on."""
    denoiser = fake_denoiser()
    ddpm = RunSettings(sampler=DDPMSettings(steps=6), batch_size=2, seed=3)
    ddim = RunSettings(sampler=DDIMSettings(steps=6, eta=0.5), batch_size=2, seed=3)
    first_ddpm, first_ddim = sample_final(denoiser, ddpm), sample_final(denoiser, ddim)
    for steps in range(1, 80):
        sample_final(denoiser, RunSettings(sampler=DDIMSettings(steps=1 + steps % 5, eta=steps / 80), seed=1))
    assert torch.equal(sample_final(denoiser, ddpm), first_ddpm)
    assert torch.equal(sample_final(denoiser, ddim), first_ddim)
    assert not torch.equal(sample_final(denoiser, ddim.replace(sampler=DDIMSettings(steps=6, eta=0.6))), first_ddim)
