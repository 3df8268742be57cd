"""What several sections share within one bench run: a scratch folder, the models, one recorded trajectory."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

from . import models
from .sizes import Sizes


class Workspace:
    def __init__(self, folder: Path, sizes: Sizes, device: str = "cpu"):
        self.folder = Path(folder)
        self.sizes = sizes
        self.device = device

    @functools.cached_property
    def digits(self):
        return models.digits()

    @functools.cached_property
    def diffusers_folder(self) -> Path:
        return models.save_diffusers_unet(self.folder / "unet", self.sizes)

    @functools.cached_property
    def trajectory(self) -> dict:
        """The long DDPM run of the digits model (``Sizes.memory_steps`` steps at ``Sizes.memory_batch``), made in
        a fresh process so its peak memory is its own (section 4); its x_t frames are what section 5 exports."""
        frames = self.folder / "trajectory.npz"
        command = [sys.executable, "-m", "studio.bench.memory_child", "--steps", str(self.sizes.memory_steps),
                   "--batch", str(self.sizes.memory_batch), "--repeated-runs", str(self.sizes.repeated_runs),
                   "--repeated-steps", str(self.sizes.ddpm_steps), "--frames", str(frames)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"the memory run failed: {done.stderr.strip().splitlines()[-1:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result["frames"] = str(frames)
        return result
