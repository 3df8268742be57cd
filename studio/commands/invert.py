"""`studio invert IMAGE`: DDIM inversion of data to x_T, then DDIM back, and how far the round trip lands.

    studio invert digit.png --steps 50 --out inv
    studio invert point.npy --checkpoint toy2d --out inv       # vector models take .npy data

IMAGE is a picture (grey or colour; mapped from 0..255 onto the model's value_range, resized to the model's
size with a note when it differs, refused when its channels cannot match the model's) or a .npy array already
in the model's data space (data_shape, or a batch of them). Inversion runs DDIM with eta = 0 up the timesteps
(``studio.core.engine.Inversion``); reconstruction runs the same DDIM down from the x_T it found.
Writes into OUT: x_T.npy, reconstruction.npy, reconstruction.png (image models), inversion.json; prints the
round-trip error (mean squared and largest absolute difference, in data space).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .sample import DTYPES, SPACINGS, class_argument

X_T_FILE = "x_T.npy"
RECONSTRUCTION_FILE = "reconstruction.npy"
RECONSTRUCTION_PNG = "reconstruction.png"
REPORT_FILE = "inversion.json"
DEFAULT_OUT = "studio-inversion"
DEFAULT_STEPS = 50


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", metavar="IMAGE", help="a picture (PNG, JPEG, ...) or a .npy array in data space")
    parser.add_argument("--checkpoint", "-c", default=None, metavar="PATH",
                        help="a checkpoint file or folder, or a bundled model name (default: digits)")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"DDIM steps each way (default {DEFAULT_STEPS}, at most num_train_timesteps)")
    parser.add_argument("--spacing", choices=SPACINGS, default="leading", help="timestep spacing (default leading)")
    parser.add_argument("--class", dest="class_label", type=class_argument, default=None, metavar="K",
                        help="condition a class-conditional model on class K (default: its null class)")
    parser.add_argument("--device", default="auto", metavar="{auto,cpu,cuda,mps}", help="default auto")
    parser.add_argument("--dtype", choices=DTYPES, default="float32", help="default float32")
    parser.add_argument("--out", "-o", default=DEFAULT_OUT, metavar="DIR",
                        help=f"folder for the results (default ./{DEFAULT_OUT})")
    parser.add_argument("--png-scale", dest="png_scale", type=int, default=1, metavar="K",
                        help="blow reconstruction.png's pixels up to KxK squares (default 1)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar on stderr")


# --- reading the data ------------------------------------------------------------------------------------------------
def pixels_to_data(pixels: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """uint8 0..255 -> float32 in value_range (the inverse of the export's mapping, up to its rounding)."""
    low, high = value_range
    return (low + pixels.astype(np.float32) * np.float32((high - low) / 255.0)).astype(np.float32)


def read_picture(path: Path, card) -> tuple[np.ndarray, str | None]:
    """(1, C, H, W) float32 data in the card's value_range, and a note if the picture was resized or made grey."""
    from PIL import Image, UnidentifiedImageError

    from studio.core.errors import SettingsError

    if card.data_kind != "image":
        raise SettingsError(f"model {card.name!r} takes vectors of shape {list(card.data_shape)}, not pictures; "
                            "give a .npy file")
    channels, height, width = card.data_shape
    modes = {1: "L", 3: "RGB", 4: "RGBA"}
    if channels not in modes:
        raise SettingsError(f"model {card.name!r} takes {channels}-channel data, which no picture holds; "
                            "give a .npy file")
    notes = []
    try:
        with Image.open(path) as picture:
            picture.load()
            grey_modes = ("1", "L", "LA", "I", "I;16", "F", "P")
            if channels == 1 and picture.mode not in grey_modes and not _looks_grey(picture):
                notes.append(f"converted the colour picture {path.name} to grey for the 1-channel model")
            picture = picture.convert(modes[channels])
    except UnidentifiedImageError:
        raise SettingsError(f"{path}: not a picture the studio can read (give a PNG or a .npy file)") from None
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read the picture ({exc})") from None
    if picture.size != (width, height):
        notes.append(f"resized {path.name} from {picture.size[0]}x{picture.size[1]} to {width}x{height} "
                     "to match the model")
        shrinking = picture.size[0] >= width and picture.size[1] >= height
        picture = picture.resize((width, height), Image.Resampling.BOX if shrinking else Image.Resampling.BICUBIC)
    note = "; ".join(notes) or None
    pixels = np.asarray(picture, dtype=np.uint8)
    pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    return pixels_to_data(pixels, card.value_range)[None], note


def _looks_grey(picture) -> bool:
    rgb = np.asarray(picture.convert("RGB"))
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def read_array(path: Path, card) -> np.ndarray:
    """A .npy of data_shape or (batch, *data_shape), as float32."""
    from studio.core.errors import SettingsError

    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise SettingsError(f"{path}: not a readable .npy array ({exc})") from None
    shape = tuple(card.data_shape)
    if data.shape == shape:
        data = data[None]
    if data.ndim != len(shape) + 1 or tuple(data.shape[1:]) != shape or data.shape[0] < 1:
        raise SettingsError(f"{path}: array of shape {list(data.shape)}; model {card.name!r} takes "
                            f"{list(shape)} or a batch of them")
    if not np.issubdtype(data.dtype, np.number) or not np.isfinite(data).all():
        raise SettingsError(f"{path}: the array must hold finite numbers")
    return data.astype(np.float32)


# --- the round trip --------------------------------------------------------------------------------------------------
@dataclass
class RoundTrip:
    x0: np.ndarray              # the data inverted
    x_T: np.ndarray             # what inversion reached
    reconstruction: np.ndarray  # DDIM back from x_T
    timesteps: list[int]
    record: dict                # the reconstruction run's record

    @property
    def mse(self) -> float:
        return float(np.mean((self.reconstruction.astype(np.float64) - self.x0) ** 2))

    @property
    def max_abs(self) -> float:
        return float(np.max(np.abs(self.reconstruction.astype(np.float64) - self.x0)))


def invert_data(denoiser, x0: np.ndarray, steps: int = DEFAULT_STEPS, spacing: str = "leading",
                class_label=None, device: str = "auto", dtype: str = "float32", progress: bool = False) -> RoundTrip:
    """Invert ``x0`` (batch, *data_shape) with deterministic DDIM, then reconstruct from the x_T it reached."""
    import torch
    from tqdm import tqdm

    from studio.core.engine import Inversion, Run
    from studio.core.samplers import DDIMSettings

    inversion = Inversion(denoiser, torch.from_numpy(np.ascontiguousarray(x0)),
                          DDIMSettings(steps=steps, spacing=spacing, eta=0.0), device=device, dtype=dtype,
                          class_label=class_label)
    with tqdm(total=2 * len(inversion.timesteps), desc="inverting", unit="step", file=sys.stderr,
              disable=not progress, dynamic_ncols=True) as bar:
        x_T = inversion.x0_data
        for step in inversion:
            x_T = step.x_t
            bar.update(1)
        bar.set_description("reconstructing")
        run = Run(inversion.denoiser, inversion.settings, x_T=x_T)   # what Inversion.reconstruct runs
        x = run.x_T
        for step in run:
            x = step.x_t
            bar.update(1)
    as_numpy = lambda t: t.detach().to("cpu").float().numpy()  # noqa: E731
    return RoundTrip(x0=x0, x_T=as_numpy(x_T), reconstruction=as_numpy(x),
                     timesteps=[int(t) for t in inversion.timesteps], record=run.record())


def run(args: argparse.Namespace) -> int:
    from studio.core.bundled import DEFAULT_MODEL
    from studio.core.checkpoints import open_checkpoint
    from studio.core.errors import SettingsError
    from studio.core.export import ensure_folder, image_pixels, write_json, write_npy
    from studio.core.export.images import write_png_image

    path = Path(args.image)
    if not path.is_file():
        raise SettingsError(f"{path}: no such file")
    if args.png_scale < 1:
        raise SettingsError(f"--png-scale must be >= 1, got {args.png_scale}")
    source = args.checkpoint or DEFAULT_MODEL
    denoiser = open_checkpoint(source)
    card = denoiser.card
    if args.class_label == "cycle":
        raise SettingsError("--class cycle does not apply to inversion; give a class index")
    if args.class_label is not None and not card.conditional:
        raise SettingsError(f"--class needs a class-conditional model; {card.name!r} is unconditional")
    if path.suffix.lower() == ".npy":
        x0, note = read_array(path, card), None
    else:
        x0, note = read_picture(path, card)
    if note:
        print(f"note: {note}", file=sys.stderr)
    steps = args.steps if args.steps is not None else min(DEFAULT_STEPS, card.num_train_timesteps)
    out = ensure_folder(args.out)
    trip = invert_data(denoiser, x0, steps, args.spacing, args.class_label, args.device, args.dtype, args.progress)

    write_npy(out / X_T_FILE, trip.x_T)
    write_npy(out / RECONSTRUCTION_FILE, trip.reconstruction)
    files = [X_T_FILE, RECONSTRUCTION_FILE]
    if card.data_kind == "image":
        pixels = image_pixels(trip.reconstruction, card.value_range)
        write_png_image(out / RECONSTRUCTION_PNG, pixels[0], scale=args.png_scale)
        files.append(RECONSTRUCTION_PNG)
        if len(pixels) > 1:
            for i in range(1, len(pixels)):
                name = f"reconstruction_{i:05d}.png"
                write_png_image(out / name, pixels[i], scale=args.png_scale)
                files.append(name)
    files.append(REPORT_FILE)
    record = dict(trip.record, command="invert", input=str(path.resolve()), checkpoint=source,
                  round_trip={"mse": trip.mse, "max_abs": trip.max_abs}, files=files)
    if note:
        record["note"] = note
    write_json(out / REPORT_FILE, record)
    low, high = card.value_range
    print(f"round-trip error: mse {trip.mse:.3g}, max abs {trip.max_abs:.3g} "
          f"(data space [{low:g}, {high:g}], {steps} DDIM steps each way)")
    print(f"wrote {', '.join(files)} to {out}")
    return 0
