"""The training loop: DDPM objective (or noise-aware cross-entropy for a classifier), AdamW with warm-up,
gradient clipping, EMA of the weights, class dropout to the null class, periodic checkpoints and exact resume.

Reproducibility: the network's initial weights and dropout come from torch's global generator seeded with
``seed`` (inside ``fork_rng``, so the caller's random state is left alone); batches, timesteps, noise and class
dropout come from a second generator seeded ``seed + 1``. Both states go into the training state, so a resumed
run draws exactly what the uninterrupted run would have drawn.
"""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..core.checkpoints.studio_format import save_studio_checkpoint
from ..core.checks import require_int
from ..core.errors import NumericalError, SettingsError
from ..core.models.card import ModelCard
from ..core.models.networks import build_network
from .data import TrainData
from .diffusion import TrainingSchedule, classifier_loss, denoiser_loss
from .recipe import TrainRecipe
from .state import TrainState, save_state


@dataclass(frozen=True)
class TrainResult:
    output: Path
    state_path: Path
    steps: int
    seconds: float           # wall time
    cpu_seconds: float       # CPU time of this process (all threads): comparable across busy and idle machines
    parameter_count: int
    last_loss: float


def model_card(recipe: TrainRecipe, data: TrainData, architecture: dict) -> ModelCard:
    """The card the checkpoint carries: what the data is, the schedule it was trained with, the network."""
    arch = architecture["name"]
    conditional = recipe.class_count(data) > 0
    classifier = arch == "classifier"
    what = "noise-aware classifier" if classifier else (
        "class-conditional" if conditional else "unconditional") + f" {arch} denoiser"
    return ModelCard(
        name=recipe.name or f"{data.name}-{arch}",
        role="classifier" if classifier else "denoiser",
        data_kind=data.data_kind,
        data_shape=data.data_shape,
        value_range=data.value_range,
        class_names=data.class_names if (conditional or classifier) else (),
        null_class=len(data.class_names) if (conditional and not classifier) else None,
        num_train_timesteps=recipe.num_train_timesteps,
        beta_schedule=recipe.beta_schedule,
        beta_start=recipe.beta_start,
        beta_end=recipe.beta_end,
        prediction_type=recipe.prediction_type,
        variance_type="learned_range" if recipe.learn_sigma and not classifier else "fixed_small",
        clip_sample=data.data_kind == "image",
        format="studio",
        architecture=architecture,
        description=(f"{what} trained by `studio train` on {data.description}: {recipe.steps} steps, "
                     f"batch {recipe.batch_size}, lr {recipe.lr:g}, EMA {recipe.ema_decay:g}, seed {recipe.seed}"),
    )


class Trainer:
    """One training run over ``data`` from ``start_step`` (0, or the resumed state's step); ``train`` drives it
    step by step to ``recipe.steps``."""

    def __init__(self, recipe: TrainRecipe, data: TrainData, device: torch.device | str = "cpu",
                 resume: TrainState | None = None):
        self.recipe = recipe
        self.data = data
        self.device = torch.device(device)
        self.architecture = recipe.architecture(data)
        self.card = model_card(recipe, data, self.architecture)
        torch.manual_seed(recipe.seed)
        self.model = build_network(self.architecture).to(self.device)
        self.ema = copy.deepcopy(self.model).requires_grad_(False).eval()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
        self.generator = torch.Generator().manual_seed(recipe.seed + 1)
        self.schedule = TrainingSchedule(recipe.schedule_config().schedule(), self.device)
        self.samples = data.samples.to(self.device)
        self.labels = data.labels.to(self.device) if data.labels is not None else None
        self.num_classes = recipe.class_count(data)
        self.start_step = 0
        if resume is not None:
            self.model.load_state_dict(resume.model)
            self.ema.load_state_dict(resume.ema)
            self.optimizer.load_state_dict(resume.optimizer)
            torch.set_rng_state(resume.torch_rng)
            self.generator.set_state(resume.data_rng)
            self.start_step = resume.step

    @property
    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def state(self, step: int) -> TrainState:
        return TrainState(self.recipe.to_dict(), self.data.fingerprint(), step, self.model.state_dict(),
                          self.ema.state_dict(), self.optimizer.state_dict(), torch.get_rng_state(),
                          self.generator.get_state())

    def train_step(self, step: int) -> float:
        recipe, gen = self.recipe, self.generator
        lr = recipe.lr * min(1.0, (step + 1) / recipe.warmup) if recipe.warmup else recipe.lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        index = torch.randint(0, len(self.data), (recipe.batch_size,), generator=gen)
        t = torch.randint(0, recipe.num_train_timesteps, (recipe.batch_size,), generator=gen)
        noise = torch.randn((recipe.batch_size, *self.data.data_shape), generator=gen)
        index, t, noise = index.to(self.device), t.to(self.device), noise.to(self.device)
        x0 = self.samples[index]
        self.model.train()
        if recipe.trains_classifier:
            loss = classifier_loss(self.model, self.schedule, x0, t, noise, self.labels[index])
        else:
            labels = None
            if self.num_classes:
                labels = self.labels[index]
                if recipe.class_dropout > 0:  # the null class teaches the unconditional model CFG needs
                    drop = (torch.rand(recipe.batch_size, generator=gen) < recipe.class_dropout).to(self.device)
                    labels = torch.where(drop, torch.full_like(labels, self.num_classes), labels)
            loss = denoiser_loss(self.model, self.schedule, x0, t, noise, labels, recipe.prediction_type,
                                 recipe.learn_sigma, discrete=self.data.data_kind == "image")
        value = float(loss.detach())
        if not torch.isfinite(loss):
            raise NumericalError(f"training diverged: the loss is {value} at step {step + 1}; try a lower --lr",
                                 index=step)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if recipe.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), recipe.grad_clip)
        self.optimizer.step()
        # EMA with a short warm-up so early checkpoints are not dominated by the random initialisation
        decay = min(recipe.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for ema_p, p in zip(self.ema.parameters(), self.model.parameters()):
                ema_p.lerp_(p, 1.0 - decay)
            for ema_b, b in zip(self.ema.buffers(), self.model.buffers()):
                ema_b.copy_(b)
        return value

    def save(self, step: int, output: Path, state_path: Path) -> None:
        save_studio_checkpoint(output, self.ema, self.card)
        save_state(state_path, self.state(step))


def train(recipe: TrainRecipe, data: TrainData, output: str | Path, state_path: str | Path,
          checkpoint_every: int = 0, resume: TrainState | None = None, device: str = "cpu",
          progress: bool = True) -> TrainResult:
    """Train to ``recipe.steps``, writing the EMA checkpoint to ``output`` and the training state to
    ``state_path`` every ``checkpoint_every`` steps (0: only at the end) and at the end."""
    from tqdm import tqdm

    output, state_path = Path(output), Path(state_path)
    require_int("--checkpoint-every", checkpoint_every, 0)
    started, cpu_started = time.perf_counter(), time.process_time()
    loss = float("nan")
    with torch.random.fork_rng(devices=[]):
        trainer = Trainer(recipe, data, device, resume)
        if trainer.start_step > recipe.steps:
            raise SettingsError(f"--steps {recipe.steps} is below the {trainer.start_step} steps the resumed "
                                "state has already done")
        bar = tqdm(total=recipe.steps, initial=trainer.start_step, desc=trainer.card.name, file=sys.stderr,
                   disable=not progress, dynamic_ncols=True, unit="step")
        smoothed = None
        try:
            for step in range(trainer.start_step, recipe.steps):
                loss = trainer.train_step(step)
                smoothed = loss if smoothed is None else 0.98 * smoothed + 0.02 * loss
                bar.update(1)
                if (step + 1) % 25 == 0:
                    bar.set_postfix(loss=f"{smoothed:.4f}", refresh=False)
                done = step + 1
                if checkpoint_every and done % checkpoint_every == 0 and done < recipe.steps:
                    trainer.save(done, output, state_path)
        finally:
            bar.close()
        trainer.save(recipe.steps, output, state_path)
    return TrainResult(output, state_path, recipe.steps, time.perf_counter() - started,
                       time.process_time() - cpu_started, trainer.parameter_count, loss)
