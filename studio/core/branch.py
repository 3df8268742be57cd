"""Branching a run at step k: take its x_t after k steps and finish under new settings.

A branch keeps the parent's batch, x_T and per-sample seeds (``seed - parent seed`` is each sample's place). What
it does with step k depends on whether its sampler settings are the parent's own (a continuation) or new:

- resume: a continuation on a sampler whose whole state is x_t (DDIM, DDPM). The sampler runs over the parent's
  timestep list from step k with the stored x_t: the coefficients are the parent's, so with the parent's guidance,
  class and seed the remaining steps are the parent's, bit for bit.
- replay: a continuation on a sampler with a history (the multistep solvers' past predictions; the sigma-space
  solvers, whose x_t is their x divided by a scale that does not divide back exactly). The parent's first k steps
  are made again from its x_T under its own guidance and class (k steps of model calls), then the run goes on
  under the branch's. The replayed x_t is compared with the stored one (``replay_difference``).
- restart: new sampler settings (another sampler, steps, spacing or eta). The sampler must take an explicit
  timestep list (``resumes_from_x_t``); it runs over t_k followed by its own timesteps below t_k, from the stored
  x_t. A multistep solver cannot start mid-way on its own rule, and says so.

Noise: with the parent's seed, each sample's stream goes on where the parent's stood after step k (its x_T draw
and the draws its first k steps made, ``SamplerSettings.noise_draws``); with a new seed, sample i draws from
seed + i afresh, from the first step after k on.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

from .errors import SettingsError
from .noise import SampleNoise
from .samplers import SamplerSettings, Step
from .settings import RunSettings

@dataclass(frozen=True)
class BranchStart:
    """Where a branch starts: the parent's settings as it ran (its record's, sampler resolved), its seeds, the
    step ``at_step`` (0: from x_T; at most the parent's steps - 1), the parent's x_t after that step and its x_T
    (batch, *data_shape), and ``parent``: what the branch's record says of its parent (a recipe, a folder)."""

    parent_settings: RunSettings
    parent_seeds: tuple[int, ...]
    at_step: int
    x_t: torch.Tensor
    x_T: torch.Tensor
    parent: dict | None = None

    @classmethod
    def from_record(cls, record: dict, at_step: int, x_t, x_T, parent: dict | None = None) -> "BranchStart":
        """From a parent's run record (``Run.record()`` or run.json) and its stored frames."""
        try:
            settings = RunSettings.from_dict(record["settings"])
            seeds = tuple(int(s) for s in record["seeds"])
        except (KeyError, TypeError, ValueError) as exc:
            raise SettingsError(f"the parent run's record is damaged ({exc})") from None
        return cls(settings, seeds, int(at_step), torch.as_tensor(np.asarray(x_t, dtype=np.float32)),
                   torch.as_tensor(np.asarray(x_T, dtype=np.float32)), parent)


@dataclass(frozen=True)
class BranchPlan:
    """What a branch runs: ``mode`` (see the module docstring), the branch's own ``timesteps`` (what it shows),
    the list the sampler's generator walks (``generator_timesteps``) and the steps of it already taken
    (``skip``: resumed from, or replayed), and the parent's resolved sampler and its step count."""

    mode: str
    timesteps: np.ndarray
    generator_timesteps: np.ndarray
    skip: int
    parent_sampler: SamplerSettings
    parent_steps: int


def plan_branch(start: BranchStart, sampler: SamplerSettings, card, schedule, batch: int) -> BranchPlan:
    """The plan of a branch with resolved ``sampler`` settings; SettingsError names what does not fit."""
    parent_sampler = start.parent_settings.sampler.resolve(card)   # as recorded: resolving again changes nothing
    parent_list = parent_sampler.timestep_list(card.num_train_timesteps, schedule)
    steps, k = len(parent_list), start.at_step
    if not isinstance(k, int) or isinstance(k, bool) or k < 0:
        raise SettingsError(f"the step to branch from must be an integer from 0 to {steps - 1}, got {k!r}")
    if k >= steps:
        raise SettingsError(f"step {k} is the parent run's last (it has {steps} steps): nothing is left to branch "
                            f"from there; pick a step from 0 to {steps - 1}")
    expected = (len(start.parent_seeds), *card.data_shape)
    for name, value in (("x_t", start.x_t), ("x_T", start.x_T)):
        if tuple(value.shape) != expected:
            raise SettingsError(f"the parent's {name} has shape {tuple(value.shape)}; this model and the parent's "
                                f"{len(start.parent_seeds)} samples need {expected}")
    if batch != len(start.parent_seeds):
        raise SettingsError(f"a branch keeps its parent's {len(start.parent_seeds)} samples, not {batch}")
    if sampler == parent_sampler:
        mode = "resume" if parent_sampler.resumes_from_x_t else "replay"
        return BranchPlan(mode, parent_list[k:], parent_list, k, parent_sampler, steps)
    if not sampler.resumes_from_x_t:
        raise SettingsError(f"sampler {sampler.name} cannot start at step {k} under settings other than the "
                            "parent's: it follows its own timestep rule from the start and keeps a history; "
                            "branch to ddim or ddpm, or keep the parent's sampler settings")
    t_k = float(parent_list[k])
    if not t_k.is_integer():
        raise SettingsError(f"step {k} of the parent sits at the fractional timestep {t_k:g}; ddim and ddpm "
                            "start only from an integer timestep: keep the parent's sampler settings")
    own = sampler.timestep_list(card.num_train_timesteps, schedule)
    timesteps = np.asarray([int(t_k)] + [int(t) for t in own if t < t_k], dtype=np.int64)
    return BranchPlan("restart", timesteps, timesteps, 0, parent_sampler, steps)


class _Switch:
    """A predict or a noise source that the replay hands over from the parent's to the branch's."""

    def __init__(self, current):
        self.current = current

    def __call__(self, *args, **kwargs):
        return self.current(*args, **kwargs)

    def draw(self) -> torch.Tensor:
        return self.current.draw()


class BranchSteps:
    """The branch's Steps, numbered from 0 over its own steps; ``replay_difference`` (replay mode, once the
    replay is done): the largest difference between the replayed x_t at step k and the stored one."""

    def __init__(self, plan: BranchPlan, sampler: SamplerSettings, schedule, start: BranchStart, *,
                 predict, parent_predict, noise, parent_noise, device):
        self.plan = plan
        self.replay_difference: float | None = None
        self._sampler, self._schedule, self._start = sampler, schedule, start
        self._predict, self._parent_predict = predict, parent_predict
        self._noise, self._parent_noise = noise, parent_noise
        self._device = device
        self._steps = self._generate()

    def __iter__(self):
        return self

    def __next__(self) -> Step:
        return next(self._steps)

    def close(self) -> None:
        self._steps.close()

    def _generate(self) -> Iterator[Step]:
        plan, sampler = self.plan, self._sampler
        x_k = self._start.x_t.to(self._device, torch.float32)
        if plan.mode == "resume":
            inner = sampler.run(self._predict, self._schedule, plan.generator_timesteps, x_k, self._noise,
                                start=plan.skip)
        elif plan.mode == "restart":
            inner = sampler.run(self._predict, self._schedule, plan.generator_timesteps, x_k, self._noise)
        else:
            predict, noise = _Switch(self._parent_predict), _Switch(self._parent_noise)
            x_T = self._start.x_T.to(self._device, torch.float32)
            inner = sampler.run(predict, self._schedule, plan.generator_timesteps, x_T, noise)
            try:
                replayed = x_T
                for _ in range(plan.skip):
                    replayed = next(inner).x_t
                self.replay_difference = float((replayed.float() - x_k).abs().max()) if plan.skip else 0.0
                predict.current, noise.current = self._predict, self._noise
                yield from self._renumbered(inner)
            finally:
                inner.close()
            return
        try:
            yield from self._renumbered(inner)
        finally:
            inner.close()

    def _renumbered(self, inner) -> Iterator[Step]:
        count, offset = len(self.plan.timesteps), self.plan.generator_timesteps.shape[0] - len(self.plan.timesteps)
        for step in inner:
            yield dataclasses.replace(step, index=step.index - offset, num_steps=count)


def branch_seeds(start: BranchStart, seed: int) -> list[int]:
    """The branch's per-sample seeds: each sample keeps its place (parent seed - parent's run seed)."""
    base = start.parent_settings.seed
    return [seed + (s - base) for s in start.parent_seeds]


def branch_noise(start: BranchStart, plan: BranchPlan, seeds: Sequence[int], shape, device, on_device: bool):
    """(the noise the branch's own steps draw from, the noise the replay draws from: None outside a replay)."""
    same_seed = list(seeds) == list(start.parent_seeds)
    parent_stream = None
    if same_seed or plan.mode == "replay":
        parent_stream = SampleNoise(start.parent_seeds, shape, device, on_device=on_device)
        parent_stream.draw()   # x_T's draw
        if plan.mode != "replay":   # the replay's own steps make the rest of the parent's draws
            for _ in range(plan.parent_sampler.noise_draws(start.at_step, plan.parent_steps)):
                parent_stream.draw()
    if same_seed:
        return parent_stream, parent_stream
    return SampleNoise(seeds, shape, device, on_device=on_device), parent_stream
