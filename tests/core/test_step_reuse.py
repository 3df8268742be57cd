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


def test_padded_labels_follow_labels_changed_in_place():
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
    good[1] = 12   # the same tensor, changed since it was found good
    with pytest.raises(SettingsError, match="class labels must be from 0 to 9"):
        embedding(good, 2, torch.device("cpu"))


def test_a_digits_run_gives_the_same_samples_iterated_or_drained():
    digits = open_checkpoint("digits")
    settings = RunSettings(sampler=DDIMSettings(steps=6), batch_size=3, class_label=CLASS_CYCLE, model_batch=4,
                           device="cpu")
    first = sample_final(digits, settings)
    for step in Run(digits, settings):
        pass
    assert torch.equal(step.x_t, first)


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
