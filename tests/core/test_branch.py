"""Branching a run at step k (studio.core.branch): with the parent's own settings a branch makes the parent's
remaining steps bit for bit, for every sampler the engine has; a new seed changes only what comes after k; new
sampler settings start from the stored x_t at t_k; bad branch points are one clear error."""

from __future__ import annotations

import pytest
import torch

import checkpoint_makers as make
from studio.core.branch import BranchStart
from studio.core.checkpoints import open_checkpoint
from studio.core.choices import SAMPLER_NAMES
from studio.core.engine import Run
from studio.core.errors import SettingsError
from studio.core.samplers import sampler_settings
from studio.core.settings import GuidanceSettings, RunSettings

# every sampler, stochastic where it can be, so that the noise stream's place at step k matters
PARENTS = {
    "ddim": dict(steps=8, eta=0.6), "ddpm": dict(steps=9), "euler": dict(steps=7), "euler_a": dict(steps=7),
    "heun": dict(steps=5), "dpmpp_2m": dict(steps=8), "dpmpp_3m": dict(steps=8), "dpmpp_2m_sde": dict(steps=8),
    "unipc": dict(steps=8), "pndm": dict(steps=8),
}
assert set(PARENTS) == set(SAMPLER_NAMES)


@pytest.fixture(scope="module")
def denoiser(tmp_path_factory):
    return open_checkpoint(make.studio_file(tmp_path_factory.mktemp("branch"), *make.unet(num_classes=3)))


def parent_run(denoiser, name: str, **changes):
    settings = RunSettings(sampler=sampler_settings(name, **PARENTS[name]), seed=11, batch_size=3,
                           class_label="cycle", **changes)
    run = Run(denoiser, settings)
    steps = [(step.x_t.clone(), step.x0_pred.clone()) for step in run]
    return run, run.x_T.clone(), steps


def start_at(run, x_T, steps, k: int) -> BranchStart:
    x_k = x_T if k == 0 else steps[k - 1][0]
    return BranchStart.from_record(run.record(), k, x_k, x_T)


@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_a_branch_with_the_parents_settings_makes_its_remaining_steps_bit_for_bit(denoiser, name):
    run, x_T, steps = parent_run(denoiser, name)
    k = 3
    branch = Run(denoiser, run.settings, branch=start_at(run, x_T, steps, k))
    made = [(step.index, step.num_steps, step.x_t, step.x0_pred) for step in branch]
    remaining = len(steps) - k
    assert [(i, n) for i, n, _, _ in made] == [(i, remaining) for i in range(remaining)]
    assert branch.timesteps.tolist() == run.timesteps.tolist()[k:]
    for (_, _, x_t, x0_pred), (parent_x_t, parent_x0) in zip(made, steps[k:]):
        assert torch.equal(x_t, parent_x_t) and torch.equal(x0_pred, parent_x0)
    record = branch.record()["branch"]
    resumes = name in ("ddim", "ddpm")
    assert record["mode"] == ("resume" if resumes else "replay") and record["at_step"] == k
    assert record["replayed_model_calls"] == (0 if resumes else run.sampler.model_calls(len(steps)) -
                                              run.sampler.model_calls(remaining))
    assert record.get("replay_difference", 0.0) == 0.0
    assert branch.record()["model_calls"] == run.sampler.model_calls(remaining)


@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_noise_draws_say_where_each_samplers_stream_stands(denoiser, name):
    """The draws each sampler's first k steps make, as its noise_draws says (a branch's same-seed stream)."""
    settings = RunSettings(sampler=sampler_settings(name, **PARENTS[name]), seed=2, batch_size=2)
    run = Run(denoiser, settings)
    assert run.noise.draws == 1   # x_T
    for done, _ in enumerate(run, start=1):
        assert run.noise.draws == 1 + run.sampler.noise_draws(done, run.num_steps), done


@pytest.mark.parametrize("name", ["ddim", "ddpm", "euler_a", "dpmpp_2m_sde"])
def test_a_new_seed_changes_only_the_steps_after_k(denoiser, name):
    run, x_T, steps = parent_run(denoiser, name)
    k = 4
    start = start_at(run, x_T, steps, k)
    same = [step.x_t for step in Run(denoiser, run.settings, branch=start)]
    other = [step.x_t for step in Run(denoiser, run.settings.replace(seed=500), branch=start)]
    assert torch.equal(same[-1], steps[-1][0])
    assert not torch.equal(other[0], same[0])   # the first step after k already adds the new seed's noise
    # sample i of the new seed draws what sample i of a run with seed 500 draws at those steps: not the parent's
    assert (other[-1] - same[-1]).abs().max() > 1e-3


def test_a_branch_at_step_zero_is_the_parent_again(denoiser):
    run, x_T, steps = parent_run(denoiser, "ddpm")
    made = [step.x_t for step in Run(denoiser, run.settings, branch=start_at(run, x_T, steps, 0))]
    assert all(torch.equal(a, b[0]) for a, b in zip(made, steps)) and len(made) == len(steps)


def test_new_sampler_settings_start_at_t_k_with_their_own_timesteps_below_it(denoiser):
    run, x_T, steps = parent_run(denoiser, "ddpm")   # 9 steps over 50 training steps
    k = 2
    t_k = int(run.timesteps[k])
    ddim = sampler_settings("ddim", steps=20, eta=0.0)
    branch = Run(denoiser, run.settings.replace(sampler=ddim), branch=start_at(run, x_T, steps, k))
    own = ddim.timestep_list(50)
    assert branch.timesteps.tolist() == [t_k] + [int(t) for t in own if t < t_k]
    assert branch.record()["branch"]["mode"] == "restart"
    made = list(branch)
    assert made[0].t == t_k and made[-1].t_prev == -1 and torch.isfinite(made[-1].x_t).all()
    # DDIM eta 0 from the same x_t: deterministic, so a new seed changes nothing
    again = [s.x_t for s in Run(denoiser, run.settings.replace(sampler=ddim, seed=99),
                                branch=start_at(run, x_T, steps, k))]
    assert torch.equal(again[-1], made[-1].x_t)


def test_changing_eta_of_a_ddim_parent_restarts_on_the_parents_remaining_timesteps(denoiser):
    run, x_T, steps = parent_run(denoiser, "ddim")
    branch = Run(denoiser, run.settings.replace(sampler=run.settings.sampler.replace(eta=0.0)),
                 branch=start_at(run, x_T, steps, 5))
    assert branch.timesteps.tolist() == run.timesteps.tolist()[5:]
    assert branch.record()["branch"]["mode"] == "restart"
    assert not torch.equal(list(branch)[-1].x_t, steps[-1][0])


def test_guidance_and_class_change_from_step_k_under_a_replayed_history(denoiser):
    run, x_T, steps = parent_run(denoiser, "dpmpp_2m")
    k = 4
    guided = run.settings.replace(class_label=2, guidance=GuidanceSettings(kind="classifier_free", scale=3.0))
    made = [s.x_t for s in Run(denoiser, guided, branch=start_at(run, x_T, steps, k))]
    assert len(made) == len(steps) - k
    assert not torch.equal(made[-1], steps[-1][0])
    # the same change in a DDPM parent resumes from the stored x_t (no replay)
    ddpm, ddpm_T, ddpm_steps = parent_run(denoiser, "ddpm")
    branch = Run(denoiser, ddpm.settings.replace(class_label=0), branch=start_at(ddpm, ddpm_T, ddpm_steps, k))
    assert branch.record()["branch"]["mode"] == "resume" and branch.class_labels == [0, 0, 0]


def test_bad_branch_points_are_one_clear_error(denoiser):
    run, x_T, steps = parent_run(denoiser, "ddim")
    last = len(steps)
    with pytest.raises(SettingsError, match=f"step {last} is the parent run's last"):
        Run(denoiser, run.settings, branch=BranchStart.from_record(run.record(), last, steps[-1][0], x_T))
    with pytest.raises(SettingsError, match="from 0 to"):
        Run(denoiser, run.settings, branch=BranchStart.from_record(run.record(), -1, x_T, x_T))
    with pytest.raises(SettingsError, match="keeps its parent's 3 samples"):
        Run(denoiser, run.settings.replace(batch_size=2), branch=start_at(run, x_T, steps, 2))
    with pytest.raises(SettingsError, match="x_t has shape"):
        Run(denoiser, run.settings, branch=BranchStart.from_record(run.record(), 2, x_T[:2], x_T))
    with pytest.raises(SettingsError, match="cannot start at step 2"):
        Run(denoiser, run.settings.replace(sampler=sampler_settings("unipc", steps=8)),
            branch=start_at(run, x_T, steps, 2))
    euler, euler_T, euler_steps = parent_run(denoiser, "euler")   # linspace: fractional timesteps
    with pytest.raises(SettingsError, match="fractional timestep"):
        Run(denoiser, euler.settings.replace(sampler=sampler_settings("ddim", steps=5)),
            branch=start_at(euler, euler_T, euler_steps, 2))


def test_a_cancelled_replay_stops_within_one_model_call(denoiser):
    run, x_T, steps = parent_run(denoiser, "heun")
    calls = []
    handle = denoiser.module.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        branch = Run(denoiser, run.settings, branch=start_at(run, x_T, steps, 2))
        assert calls == []   # nothing runs before the first step is asked for
        next(branch)
        branch.close()
        made = len(calls)
        with pytest.raises(StopIteration):
            next(branch)
        assert len(calls) == made == 2 * 2 + 2   # the replay's two Heun steps, then one step of the branch
    finally:
        handle.remove()
