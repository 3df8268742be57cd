"""`studio train`: train a studio network and write a studio checkpoint (.safetensors with its model card).

    studio train --data digits --output digits.safetensors                 # class-conditional UNet
    studio train --data shapes --output shapes.safetensors                 # 32x32 RGB shapes, 6 classes
    studio train --data toy2d --output toy.safetensors                     # MLP on the 8-Gaussian ring
    studio train --data digits --arch classifier --output clf.safetensors  # noise-aware classifier
    studio train --data ~/pictures --image-size 32 --output mine.safetensors
    studio train --resume mine.train.pt --steps 20000 --output mine.safetensors

Options left unset take the recipe's defaults (recipe.py); on --resume they take the saved run's values, and
setting one to something else is an error (only --steps, the total, may grow).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ..core.checks import require_int
from ..core.errors import SettingsError

# recipe field -> (flag, type, help); None defaults mean "the recipe's default" (or the resumed run's value)
_RECIPE_FLAGS = {
    "arch": ("--arch", str, "network: unet (images), mlp (vectors) or classifier (noise-aware, images); "
                            "default: unet for images, mlp for toy2d"),
    "image_size": ("--image-size", int, "side of the square training images (folder and shapes default 32, "
                                        "digits 8)"),
    "color": ("--color", str, "folder images: auto (default), gray or rgb"),
    "steps": ("--steps", int, "total optimisation steps (default 2000)"),
    "batch_size": ("--batch-size", int, "batch size (default 128)"),
    "lr": ("--lr", float, "AdamW learning rate (default 2e-4)"),
    "warmup": ("--warmup", int, "linear learning-rate warm-up steps (default 200)"),
    "weight_decay": ("--weight-decay", float, "AdamW weight decay (default 0)"),
    "grad_clip": ("--grad-clip", float, "clip the gradient norm to this (default 1; 0 = off)"),
    "ema_decay": ("--ema-decay", float, "decay of the weights' exponential moving average; the saved model is "
                                        "the EMA (default 0.999)"),
    "class_dropout": ("--class-dropout", float, "probability of replacing a label with the null class, so "
                                                "classifier-free guidance works (default 0.1)"),
    "seed": ("--seed", int, "seed of initial weights, batches and noise (default 0)"),
    "num_train_timesteps": ("--num-train-timesteps", int, "T (default 1000)"),
    "beta_schedule": ("--beta-schedule", str, "linear (default), scaled_linear, squaredcos_cap_v2 (cosine), sigmoid"),
    "beta_start": ("--beta-start", float, "first beta (default 1e-4)"),
    "beta_end": ("--beta-end", float, "last beta (default 0.02)"),
    "prediction_type": ("--prediction-type", str, "what the network predicts: epsilon (default), sample (x0) or "
                                                  "v_prediction"),
    "name": ("--name", str, "model name in the card (default DATA-ARCH)"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="digits (scikit-learn's 8x8 digits, 10 classes), shapes (generated 32x32 "
                        "RGB shapes on textured backgrounds, 6 classes), toy2d (8 Gaussians on a ring, 2-D) or a "
                        "folder of images (one subfolder per class, or all at the top level)")
    parser.add_argument("--output", "-o", required=True, help="the studio checkpoint to write (.safetensors)")
    for key, (flag, kind, help_text) in _RECIPE_FLAGS.items():
        parser.add_argument(flag, dest=key, type=kind, default=None, help=help_text)
    parser.add_argument("--arch-config", dest="arch_config", default=None,
                        help='JSON object overriding the network config, e.g. \'{"base_channels": 64}\'')
    parser.add_argument("--unconditional", dest="conditional", action="store_const", const=False, default=None,
                        help="ignore the data's class labels")
    parser.add_argument("--learn-sigma", dest="learn_sigma", action="store_const", const=True, default=None,
                        help="also learn the reverse-process variance (variance_type learned_range, hybrid loss)")
    parser.add_argument("--checkpoint-every", type=int, default=0, metavar="N",
                        help="also write the checkpoint and the training state every N steps (default: at the end)")
    parser.add_argument("--state", default=None, help="training state file (default: OUTPUT with .train.pt)")
    parser.add_argument("--resume", default=None, metavar="STATE", help="continue from a saved training state")
    parser.add_argument("--device", default="cpu", help="cpu (default; bit-reproducible), auto, cuda, mps")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def recipe_values(args: argparse.Namespace) -> dict:
    """The recipe fields the command line set (others are None and left out)."""
    values = {key: getattr(args, key) for key in (*_RECIPE_FLAGS, "conditional", "learn_sigma")}
    values = {k: v for k, v in values.items() if v is not None}
    if args.data is not None:
        values["data"] = _data_name(args.data)
    if args.arch_config is not None:
        try:
            values["arch_config"] = json.loads(args.arch_config)
        except json.JSONDecodeError as exc:
            raise SettingsError(f"--arch-config is not valid JSON: {exc}") from None
        if not isinstance(values["arch_config"], dict):
            raise SettingsError("--arch-config must be a JSON object")
    return values


def _data_name(data: str) -> str:
    """Built-in names stay; a folder becomes its absolute path (the recipe must name it the same on resume)."""
    from .data import BUILTIN_DATASETS

    path = Path(data).expanduser()
    return data if data in BUILTIN_DATASETS or not path.exists() else str(path.resolve())


def resolve_recipe(args: argparse.Namespace):
    """The recipe to train and the training state to resume from (or None)."""
    from .recipe import TrainRecipe
    from .state import load_state

    values = recipe_values(args)
    if args.resume is None:
        if "data" not in values:
            raise SettingsError("--data is required (digits, shapes, toy2d or a folder of images), unless you "
                                "--resume")
        return TrainRecipe(**values), None
    state = load_state(args.resume)
    saved = TrainRecipe.from_dict(state.recipe)
    for key, value in values.items():
        if key != "steps" and value != getattr(saved, key):
            flag = "--" + key.replace("_", "-")
            raise SettingsError(f"{flag} {value!r} differs from the resumed run's {getattr(saved, key)!r} "
                                f"({args.resume}); leave it out, or start a new run")
    return saved.replace(steps=values.get("steps", saved.steps)), state


def check_writable(path: Path, what: str) -> None:
    """Prove ``path`` can be written before training starts (so an unwritable output fails at once, not after
    the whole run): its folder is created and a probe file made and removed there (``ensure_folder``, which also
    clears temp files a killed run left); a folder standing at ``path`` itself is refused."""
    from ..core.export import ExportError, ensure_folder

    if path.is_dir():
        raise SettingsError(f"{what} {str(path)!r} is a folder; give a file name")
    try:
        ensure_folder(path.parent)
    except ExportError as exc:
        raise SettingsError(f"{what} {str(path)!r}: {exc}") from None


def run(args: argparse.Namespace) -> int:
    from .data import load_data
    from .state import default_state_path
    from .trainer import train

    if args.threads is not None:
        torch.set_num_threads(require_int("--threads", args.threads, 1))
    if args.device not in ("cpu", "auto", "mps") and not args.device.startswith("cuda"):
        raise SettingsError(f"--device must be cpu, auto, cuda or mps, got {args.device!r}")
    from ..core.engine import resolve_device

    device = resolve_device(args.device)
    output = Path(args.output)
    if output.suffix != ".safetensors":
        raise SettingsError(f"--output must be a .safetensors file, got {str(output)!r}")
    state_path = Path(args.state) if args.state else default_state_path(output)
    recipe, state = resolve_recipe(args)
    check_writable(output, "--output")        # before any data is loaded or any step is trained
    check_writable(state_path, "--state" if args.state else "the training state")
    data = load_data(recipe.data, recipe.image_size, recipe.color)
    if state is not None and state.data_fingerprint != data.fingerprint():
        raise SettingsError(f"the data {recipe.data!r} has changed since the run in {args.resume} started; "
                            "a resumed run must see the same data")
    result = train(recipe, data, output, state_path, checkpoint_every=args.checkpoint_every, resume=state,
                   device=device, progress=args.progress)
    print(f"wrote {result.output} ({result.parameter_count:,} parameters, {result.steps} steps, "
          f"{result.seconds:.0f} s wall, {result.cpu_seconds:.0f} s CPU, last loss {result.last_loss:.4f}); "
          f"training state: {result.state_path}")
    return 0
