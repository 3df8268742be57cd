"""Splitting ``studio sample`` across processes started by torchrun.

    torchrun --nproc_per_node 2 -m studio sample --num-samples 64 --out out

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; with WORLD_SIZE > 1 each process joins one torch.distributed
group (gloo on the CPU, NCCL on CUDA, each process on GPU LOCAL_RANK). Process r takes one contiguous block
of whole batches (of the ceil(N / B) batches, the first ceil(batches / W), the next, ...), so each batch, and each
sample's row in its model calls, is the one a single process makes; it samples them, writes the
PNGs of its own samples and a shard (``OUT/.shards/rank_00000.npz``: indices, samples, class labels,
trajectory and run record); after a barrier, rank 0 merges the shards in sample order into the same files a
single process writes, then removes them. Sample i always uses seed S + i, so the merged files equal a
single-process run's. The shards travel through the output folder, so several machines need a shared one.
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from studio.core.errors import SettingsError

SHARD_FOLDER = ".shards"


@dataclass(frozen=True)
class ProcessLayout:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls, environ: dict | None = None) -> "ProcessLayout":
        """The layout torchrun describes in RANK / WORLD_SIZE / LOCAL_RANK (one process when they are unset)."""
        env = os.environ if environ is None else environ
        if "WORLD_SIZE" not in env:
            return cls()
        try:
            world_size = int(env["WORLD_SIZE"])
            rank = int(env.get("RANK", "0"))
            local_rank = int(env.get("LOCAL_RANK", str(rank)))
        except ValueError:
            raise SettingsError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (as torchrun sets them)") from None
        if world_size < 1 or not 0 <= rank < world_size or local_rank < 0:
            raise SettingsError(f"inconsistent process layout: RANK={rank}, WORLD_SIZE={world_size}")
        return cls(rank, world_size, local_rank)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, num_samples: int, batch: int = 1) -> range:
        """The sample indices this process makes: one contiguous block of whole batches, rank 0 first, so that
        each batch is the one a single process makes (its samples in the same rows of the same model calls)."""
        batches = -(-num_samples // batch)
        per_process = -(-batches // self.world_size) * batch
        start = min(num_samples, self.rank * per_process)
        return range(start, min(num_samples, start + per_process))

    def device(self, requested: str) -> str:
        """Each process on its own GPU (LOCAL_RANK) when the run goes to CUDA; otherwise as requested."""
        if not self.distributed or requested not in ("auto", "cuda"):
            return requested
        import torch

        if torch.cuda.is_available():
            return f"cuda:{self.local_rank}"
        if requested == "cuda":
            raise SettingsError("device 'cuda' is not available on this machine (no CUDA GPU); use auto or cpu")
        return requested

    def describe(self, backend: str) -> dict:
        """The run.json entry that says how the work was split (absent in a single-process run)."""
        return {"world_size": self.world_size, "backend": backend, "split": "contiguous blocks of sample indices"}


@contextmanager
def process_group(layout: ProcessLayout, device: str) -> Iterator[str | None]:
    """Join the torch.distributed group for the run's lifetime; yields the backend (None for one process)."""
    if not layout.distributed:
        yield None
        return
    import torch
    import torch.distributed as dist

    backend = "nccl" if device.startswith("cuda") else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(layout.local_rank)
    dist.init_process_group(backend=backend, rank=layout.rank, world_size=layout.world_size)
    try:
        yield backend
    finally:
        dist.destroy_process_group()


def barrier(layout: ProcessLayout) -> None:
    if layout.distributed:
        import torch.distributed as dist

        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[layout.local_rank])
        else:
            dist.barrier()


def shard_path(out: Path, rank: int) -> Path:
    return Path(out) / SHARD_FOLDER / f"rank_{rank:05d}.npz"


def write_shard(out: Path, rank: int, part) -> Path:
    """This process's part of the run (a ``SampledPart``) as one .npz, written atomically."""
    from studio.core.export import write_npz

    path = shard_path(out, rank)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"indices": np.asarray(part.indices, dtype=np.int64), "samples": part.samples,
              "record": np.array(json.dumps(part.record))}
    if part.class_labels is not None:
        arrays["class_labels"] = np.asarray(part.class_labels, dtype=np.int64)
    if part.x_t is not None:
        arrays["x_t"], arrays["x0_pred"] = part.x_t, part.x0_pred
    return write_npz(path, **arrays)


def read_shards(out: Path, world_size: int) -> list[dict]:
    """Every process's shard, in rank order."""
    shards = []
    for rank in range(world_size):
        with np.load(shard_path(out, rank), allow_pickle=False) as data:
            shard = {key: data[key] for key in data.files}
        shard["record"] = json.loads(str(shard["record"]))
        shards.append(shard)
    return shards


def remove_shards(out: Path) -> None:
    shutil.rmtree(Path(out) / SHARD_FOLDER, ignore_errors=True)
