"""Per-step costs made once (issue #7): the timestep batch a denoiser hands its network, a run's padded labels and
classifier-free guidance's doubled labels are built once and reused; the class embedding's range check still
refuses bad labels. None of it changes a number (tests/core/test_oracle_diffusers.py checks the bits)."""

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
    """A network that remembers the t and label tensors it was given."""

    def __init__(self, inner):
        self.inner, self.ts, self.labels = inner, [], []

    def __call__(self, x, t, class_labels=None):
        self.ts.append(t)
        self.labels.append(class_labels)
        return self.inner(x, t, class_labels)


def test_the_timestep_batch_is_made_once_per_t_batch_and_device():
    denoiser = fake_denoiser()
    network = denoiser.network = Recording(denoiser.network)
    settings = RunSettings(sampler=DDIMSettings(steps=5), batch_size=3)
    first = sample_final(denoiser, settings)
    second = sample_final(denoiser, settings)
    assert torch.equal(first, second)
    assert [int(t[0]) for t in network.ts[:5]] == [800, 600, 400, 200, 0]
    assert all(a is b for a, b in zip(network.ts[:5], network.ts[5:]))   # the second run reused them
    assert all(t.shape == (3,) and t.dtype == torch.long and not t.is_inference() for t in network.ts)
    sample_final(denoiser, settings.replace(batch_size=2))
    assert network.ts[-1].shape == (2,)


def test_a_timestep_batch_written_into_is_made_again():
    denoiser = fake_denoiser()
    x = torch.zeros(2, *denoiser.card.data_shape)
    t_batch = denoiser._timestep_batch(7, 2, x.device)
    assert denoiser._timestep_batch(7, 2, x.device) is t_batch
    t_batch.fill_(3)
    again = denoiser._timestep_batch(7, 2, x.device)
    assert again is not t_batch and again.tolist() == [7, 7]


def test_padded_labels_are_made_once_per_run_and_follow_changes():
    inner = fake_denoiser(num_train_timesteps=1000, class_names=("a", "b", "c"), null_class=3)
    network = inner.network = Recording(inner.network)
    wrapped = FixedBatchDenoiser(inner, 4)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    x = torch.zeros(6, *inner.card.data_shape)
    with torch.inference_mode():
        wrapped.predict(x, 10, labels)
        wrapped.predict(x, 9, labels)
    first, second = network.labels[:2], network.labels[2:4]
    assert all(a is b for a, b in zip(first, second))
    assert [p.tolist() for p in first] == [[0, 1, 2, 0], [1, 2, 1, 1]]
    labels[0] = 2
    with torch.inference_mode():
        wrapped.predict(x, 8, labels)
    assert network.labels[-2].tolist() == [2, 1, 2, 0]


def test_classifier_free_guidance_passes_one_labels_tensor_for_every_step():
    denoiser = fake_denoiser(class_names=("a", "b"), null_class=2)
    network = denoiser.network = Recording(denoiser.network)
    settings = RunSettings(sampler=DDPMSettings(steps=4), batch_size=2, class_label=1,
                           guidance=GuidanceSettings("classifier_free", 3.0))
    sample_final(denoiser, settings)
    assert len(network.labels) == 4 and all(labels is network.labels[0] for labels in network.labels)
    assert network.labels[0].tolist() == [1, 1, 2, 2]


@pytest.mark.parametrize("bad", [[0, 11], [-1, 0]])
def test_the_class_embedding_still_refuses_labels_out_of_range(bad):
    embedding = ClassEmbedding(10, 4)
    good = torch.tensor([0, 10])
    assert embedding(good, 2, torch.device("cpu")).shape == (2, 4)
    with pytest.raises(SettingsError, match="class labels must be from 0 to 9, or 10 for no class"):
        embedding(torch.tensor(bad), 2, torch.device("cpu"))
    good[1] = 12   # the same tensor, changed since it was found good
    with pytest.raises(SettingsError, match="class labels must be from 0 to 9"):
        embedding(good, 2, torch.device("cpu"))


def test_a_digits_run_is_unchanged_by_the_caches():
    digits = open_checkpoint("digits")
    settings = RunSettings(sampler=DDIMSettings(steps=6), batch_size=3, class_label=CLASS_CYCLE, model_batch=4,
                           device="cpu")
    first = sample_final(digits, settings)
    run = Run(digits, settings)
    for step in run:
        pass
    assert torch.equal(step.x_t, first)


def test_coefficient_tables_are_made_once_per_schedule_and_timesteps():
    from studio.core.samplers import coefficients

    denoiser = fake_denoiser()
    schedule = denoiser.schedule
    timesteps = DDPMSettings(steps=5).timestep_list(schedule.num_train_timesteps)
    first = coefficients.ddpm_coefficients(schedule, timesteps)
    assert coefficients.ddpm_coefficients(schedule, list(timesteps)) is first   # the same table, kept
    assert first == coefficients._ddpm_coefficients(schedule, timesteps)        # equal to one made afresh
    other = DDPMSettings(steps=4).timestep_list(schedule.num_train_timesteps)
    assert coefficients.ddpm_coefficients(schedule, other)["coef_x0"] != first["coef_x0"][:4]
    zero = coefficients.ddim_coefficients(schedule, timesteps, 0.0, 1.0)
    one = coefficients.ddim_coefficients(schedule, timesteps, 1.0, 1.0)
    assert zero is not one and zero["sigma"] != one["sigma"]                    # eta is part of the key
    assert coefficients.ddim_coefficients(schedule, timesteps, 0.0, 1.0) is zero
    assert one == coefficients._ddim_coefficients(schedule, timesteps, 1.0, 1.0)


def test_coefficient_tables_kept_per_schedule_are_bounded():
    from studio.core.samplers import coefficients

    schedule = fake_denoiser().schedule
    for steps in range(1, coefficients._TABLES_KEPT + 10):
        coefficients.ddpm_coefficients(schedule, DDPMSettings(steps=steps).timestep_list(schedule.num_train_timesteps))
    assert len(schedule.__dict__["_coefficient_tables"]) <= coefficients._TABLES_KEPT


def test_runs_sharing_kept_tables_make_the_same_samples():
    denoiser = fake_denoiser()
    settings = RunSettings(sampler=DDPMSettings(steps=6), batch_size=2, seed=3)
    first = sample_final(denoiser, settings)
    denoiser.schedule.__dict__.pop("_coefficient_tables")
    again = sample_final(denoiser, settings)   # tables made afresh
    assert torch.equal(first, sample_final(denoiser, settings)) and torch.equal(first, again)
