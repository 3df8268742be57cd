"""The independent judge of the shapes model: a small CNN trained on fresh pictures from the shapes generator.

It never sees the diffusion model or its training set: it learns from ``JUDGE_TRAIN_SIZE`` pictures drawn with
seed ``JUDGE_TRAIN_SEED`` (the training set of the diffusion model is seed 0) and is scored on ``JUDGE_TEST_SIZE``
more drawn with ``JUDGE_TEST_SEED``. The network: three 3x3 conv stages (16, 32, 64 channels, each two convs then
2x2 max-pooling), global average pooling, a linear layer to the 6 classes; ~70 k parameters. Adam, cross-entropy,
with a light augmentation (Gaussian noise of std up to 0.1, a random 1-pixel box blur on half the batch) so that
the small imperfections of generated pictures do not throw it. Deterministic on the CPU for a given thread count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .shapes import SHAPES_CLASS_NAMES, generate_shapes

JUDGE_TRAIN_SEED = 1
JUDGE_TEST_SEED = 2
JUDGE_TRAIN_SIZE = 6_000
JUDGE_TEST_SIZE = 3_000
JUDGE_STEPS = 600
JUDGE_BATCH = 64


class ShapeJudge(nn.Module):
    def __init__(self, classes: int = len(SHAPES_CLASS_NAMES)):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for width in (16, 32, 64):
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                       nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2)]
            channels = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images).mean(dim=(2, 3)))


@dataclass
class Judge:
    network: ShapeJudge
    accuracy: float          # on JUDGE_TEST_SIZE (or the asked number of) held-out generator pictures

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch: int = 500) -> np.ndarray:
        self.network.eval()
        images = images.float().clamp(-1, 1)
        return torch.cat([self.network(images[i:i + batch]).argmax(dim=1)
                          for i in range(0, images.shape[0], batch)]).numpy()


def _augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    count = images.shape[0]
    blurred = F.avg_pool2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    blur = (torch.rand(count, generator=generator) < 0.5).reshape(-1, 1, 1, 1)
    images = torch.where(blur, blurred, images)
    noise_std = 0.1 * torch.rand(count, generator=generator).reshape(-1, 1, 1, 1)
    return images + noise_std * torch.randn(images.shape, generator=generator)


def train_judge(train_size: int = JUDGE_TRAIN_SIZE, test_size: int = JUDGE_TEST_SIZE, steps: int = JUDGE_STEPS,
                seed: int = 0) -> Judge:
    """Train the judge on fresh generator pictures and score it on held-out ones (own seeds, see above)."""
    x_train, y_train = (torch.from_numpy(a) for a in generate_shapes(train_size, JUDGE_TRAIN_SEED))
    x_test, y_test = generate_shapes(test_size, JUDGE_TEST_SEED)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = ShapeJudge()
    generator = torch.Generator().manual_seed(seed + 1)
    optimizer = torch.optim.Adam(network.parameters(), lr=2e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps, pct_start=0.2)
    network.train()
    for _ in range(steps):
        index = torch.randint(0, train_size, (JUDGE_BATCH,), generator=generator)
        loss = F.cross_entropy(network(_augment(x_train[index], generator)), y_train[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    judge = Judge(network, 0.0)
    judge.accuracy = float(np.mean(judge.predict(torch.from_numpy(x_test)) == y_test))
    return judge
