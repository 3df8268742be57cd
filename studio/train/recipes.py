"""The recipes of the bundled demo models: ``python -m studio.train.recipes [NAME ...]`` retrains them into
resources/ (training states go to build/train/). Each is one `studio train` command; RECIPES.md records them
with the wall time and quality measured when the shipped files were trained.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path

from ..core.bundled import bundled_by_name, resources_dir

STATE_DIR = Path("build") / "train"

# short name (studio.core.bundled) -> `studio train` arguments, less --output and --state.
# One thread: on a busy machine two threads spin-wait on each other and run slower than one; and the thread
# count is part of what makes CPU results bit-identical.
RECIPES: dict[str, list[str]] = {
    "digits": ["--data", "digits", "--arch", "unet", "--steps", "4000", "--batch-size", "128", "--lr", "5e-4",
               "--warmup", "200", "--ema-decay", "0.999", "--class-dropout", "0.1", "--seed", "0",
               "--checkpoint-every", "1000", "--threads", "1"],
    # class dropout 0.5, not 0.1: at 0.1 the null class (unconditional sampling) learns only a blurred ring;
    # at 0.5 it matches the noise floor (figures in RECIPES.md)
    "toy2d": ["--data", "toy2d", "--arch", "mlp", "--steps", "6000", "--batch-size", "512", "--lr", "1e-3",
              "--warmup", "200", "--ema-decay", "0.999", "--class-dropout", "0.5", "--seed", "0",
              "--checkpoint-every", "1000", "--threads", "1"],
    "digits-classifier": ["--data", "digits", "--arch", "classifier", "--steps", "3000", "--batch-size", "128",
                          "--lr", "1e-3", "--warmup", "200", "--ema-decay", "0.999", "--seed", "0",
                          "--checkpoint-every", "1000", "--threads", "1"],
    # 32x32 RGB: a narrow full-resolution level (16 channels) keeps a step cheap on one CPU thread; the width
    # sits at 16x16 and below (64 channels, attention at 8x8). 1.09 M parameters, 4.4 MB. v-prediction and the
    # cosine schedule: with epsilon and linear betas, 1500 steps gave grainy grey samples (23% the asked shape), as
    # x0 = (x_t - sqrt(1 - a) eps) / sqrt(a) blows eps's errors up at high noise (RECIPES.md)
    "shapes": ["--data", "shapes", "--arch", "unet", "--arch-config",
               '{"base_channels": 16, "channel_mult": [1, 2, 4, 4], "num_res_blocks": 1, '
               '"attention_resolutions": [8], "dropout": 0.0}',
               "--beta-schedule", "squaredcos_cap_v2", "--prediction-type", "v_prediction",
               "--steps", "5000", "--batch-size", "64", "--lr", "4e-4", "--warmup", "200", "--ema-decay", "0.999",
               "--class-dropout", "0.1", "--seed", "0", "--checkpoint-every", "500", "--threads", "1"],
}


def command(name: str) -> list[str]:
    model = bundled_by_name(name)
    output = resources_dir() / model.filename
    state = STATE_DIR / (Path(model.filename).stem + ".train.pt")
    return ["train", *RECIPES[name], "--output", str(output), "--state", str(state)]


def main(argv: list[str] | None = None) -> int:
    names = list(argv if argv is not None else sys.argv[1:]) or list(RECIPES)
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        print(f"error: unknown recipe(s) {', '.join(unknown)}; known: {', '.join(RECIPES)}", file=sys.stderr)
        return 2
    for name in names:
        args = command(name)
        print("studio " + shlex.join(args), flush=True)
        started = time.perf_counter()
        # each recipe in a fresh interpreter, so that retraining gives bit-identical files: CPU kernels are not
        # guaranteed to give the same rounding whatever ran before them in the process (see RECIPES.md)
        code = subprocess.run([sys.executable, "-m", "studio", *args]).returncode
        print(f"{name}: exit {code}, {time.perf_counter() - started:.0f} s wall", flush=True)
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
