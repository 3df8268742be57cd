"""`studio invert IMAGE`: DDIM inversion of data to x_T, then DDIM back, and how far the round trip lands.

    studio invert digit.png --steps 50 --out inv
    studio invert point.npy --checkpoint toy2d --out inv       # vector models take .npy data

IMAGE is a picture (grey or colour; mapped from 0..255 onto the model's value_range, resized to the model's
size with a note when it differs, refused when its channels cannot match the model's) or a .npy array already
in the model's data space (data_shape, or a batch of them). Inversion runs DDIM with eta = 0 up the timesteps
(``studio.core.engine.Inversion``); reconstruction runs the same DDIM down from the x_T it found.
Writes into OUT: x_T.npy, reconstruction.npy, reconstruction.png (image models), inversion.json; prints the
round-trip error (mean squared and largest absolute difference, in data space).

IMAGE is checked from its header before anything is decoded or allocated: a picture of more than
MAX_PICTURE_PIXELS pixels, a .npy whose header claims more data than the file holds or more than
MAX_ARRAY_BYTES as float32, and a .npy of complex, object, structured or non-numeric values are refused with
one line that says why (and how much memory it would need).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from studio.core.choices import DEFAULT_DDIM_STEPS, DTYPES, SPACINGS

from .arguments import DEVICE_METAVAR, add_trust_argument, class_argument

X_T_FILE = "x_T.npy"
RECONSTRUCTION_FILE = "reconstruction.npy"
RECONSTRUCTION_PNG = "reconstruction.png"
REPORT_FILE = "inversion.json"
DEFAULT_OUT = "studio-inversion"
MAX_PICTURE_PIXELS = 50_000_000          # a 50-megapixel photo; larger ones are refused from their header
MAX_ARRAY_BYTES = 256 * 2**20            # a .npy's data as float32 (the inversion keeps several copies of it)
ARRAY_COPIES = 8                         # float32-sized copies a round trip holds at once, about (input, x_T,
                                         # reconstruction, the engine's tensors, the float64 error)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", metavar="IMAGE", help="a picture (PNG, JPEG, ...) or a .npy array in data space")
    parser.add_argument("--checkpoint", "-c", default=None, metavar="PATH",
                        help="a checkpoint file or folder, or a bundled model name (default: digits)")
    add_trust_argument(parser)
    parser.add_argument("--steps", type=int, default=None,
                        help=f"DDIM steps each way (default {DEFAULT_DDIM_STEPS}, at most num_train_timesteps)")
    parser.add_argument("--spacing", choices=SPACINGS, default="leading", help="timestep spacing (default leading)")
    parser.add_argument("--class", dest="class_label", type=class_argument, default=None, metavar="K",
                        help="condition a class-conditional model on class K (default: its null class)")
    parser.add_argument("--device", default="auto", metavar=DEVICE_METAVAR, help="default auto")
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


def _size(nbytes: float) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.3g} {unit}"
    return f"{int(nbytes)} bytes"


def _reason(exc: OSError) -> str:
    from studio.core.os_reason import os_reason

    return os_reason(exc)


def check_input_file(path: Path) -> None:
    """IMAGE exists, is a regular file and can be opened for reading; SettingsError in one line otherwise."""
    from studio.core.errors import SettingsError

    if not path.exists():
        raise SettingsError(f"{path}: no such file")
    if path.is_dir():
        raise SettingsError(f"{path}: is a folder; give a picture or a .npy file")
    if not path.is_file():
        raise SettingsError(f"{path}: not a regular file; give a picture or a .npy file")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read it: {_reason(exc)}") from None


# bytes per pixel PIL keeps for a mode (its 3-band modes are stored 4 bytes wide)
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}


@contextlib.contextmanager
def _picture_header(path: Path):
    """The picture PIL opened lazily (header only), refused when it has more than MAX_PICTURE_PIXELS pixels."""
    from PIL import Image, UnidentifiedImageError

    from studio.core.errors import SettingsError

    limit = Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = None   # the studio's own cap below, which can say the picture's size
            try:
                picture = Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = limit
            with picture:
                width, height = picture.size
                count = width * height
                if count > MAX_PICTURE_PIXELS:
                    need = count * (_MODE_BYTES.get(picture.mode, 4) + 4 + 3)   # decoded, converted, checked
                    raise SettingsError(
                        f"{path}: a {width}x{height} picture ({count:,} pixels) is over the studio's cap of "
                        f"{MAX_PICTURE_PIXELS:,} pixels; decoding it would need about {_size(need)} of memory. "
                        "Shrink it first")
                yield picture
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise SettingsError(f"{path}: refused as a decompression bomb ({exc})") from None
    except UnidentifiedImageError:
        raise SettingsError(f"{path}: not a picture the studio can read (give a PNG or a .npy file)") from None
    except MemoryError:
        raise SettingsError(f"{path}: not enough memory to decode the picture") from None
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read the picture ({_reason(exc)})") from None


def check_picture(path: Path) -> None:
    """Refuse an unreadable or oversized picture from its header alone (nothing is decoded)."""
    with _picture_header(path):
        pass


def read_picture(path: Path, card) -> tuple[np.ndarray, str | None]:
    """(1, C, H, W) float32 data in the card's value_range, and a note if the picture was resized or made grey."""
    from PIL import Image

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
    with _picture_header(path) as picture:   # the size is checked before load() decodes anything
        picture.load()
        grey_modes = ("1", "L", "LA", "I", "I;16", "F", "P")
        if channels == 1 and picture.mode not in grey_modes and not _looks_grey(picture):
            notes.append(f"converted the colour picture {path.name} to grey for the 1-channel model")
        picture = picture.convert(modes[channels])
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


@dataclass(frozen=True)
class ArrayHeader:
    """What a .npy file's header says, checked against the file: a real, numeric array the file holds."""
    shape: tuple[int, ...]
    dtype: np.dtype


def read_array_header(path: Path, handle=None) -> ArrayHeader:
    """Read and check a .npy header without reading (or allocating for) its data: format version 1.0 or 2.0,
    a plain real numeric dtype, a shape whose bytes the file really holds and whose float32 copy stays within
    MAX_ARRAY_BYTES. ``handle``: an open binary file of ``path`` positioned at its start (else it is opened)."""
    from studio.core.errors import SettingsError
    from studio.core.npy_header import NpyHeaderError, read_npy_header

    with contextlib.ExitStack() as stack:
        if handle is None:
            try:
                handle = stack.enter_context(open(path, "rb"))
            except OSError as exc:
                raise SettingsError(f"{path}: cannot read it: {_reason(exc)}") from None
        try:
            shape, _, dtype = read_npy_header(handle)
            data_bytes = os.fstat(handle.fileno()).st_size - handle.tell()
        except OSError as exc:
            raise SettingsError(f"{path}: cannot read it: {_reason(exc)}") from None
        except NpyHeaderError as exc:
            raise SettingsError(f"{path}: {exc} (save a plain numeric array with numpy.save)") from None
    _check_plain_numbers(path, dtype)
    count = math.prod(shape)   # Python integers: no overflow, whatever the header claims
    claimed = count * dtype.itemsize
    dims = " x ".join(map(str, shape)) or "scalar"
    if claimed > data_bytes:
        raise SettingsError(f"{path}: the header claims {dims} {dtype} values ({_size(claimed)}) but the file "
                            f"holds {_size(max(data_bytes, 0))} of data; it is truncated or not a real .npy")
    as_float32 = count * 4
    if as_float32 > MAX_ARRAY_BYTES:
        raise SettingsError(f"{path}: {dims} values are {_size(as_float32)} as float32, over the studio's cap "
                            f"of {_size(MAX_ARRAY_BYTES)}; inverting them at once would need about "
                            f"{_size(ARRAY_COPIES * as_float32)} of memory. Split the batch")
    return ArrayHeader(tuple(int(n) for n in shape), dtype)


def _check_plain_numbers(path: Path, dtype: np.dtype) -> None:
    """The array must hold plain real numbers: no Python objects (loading them runs pickle), records,
    complex or non-numeric values."""
    from studio.core.errors import SettingsError

    if dtype.hasobject:
        raise SettingsError(f"{path}: the array holds Python objects, which the studio does not load; "
                            "give a plain numeric array")
    if dtype.fields is not None or dtype.subdtype is not None or dtype.kind == "V":
        raise SettingsError(f"{path}: the array holds records ({dtype}), not plain numbers; "
                            "give a plain numeric array")
    if dtype.kind == "c":
        raise SettingsError(f"{path}: the array holds complex numbers ({dtype}); the studio inverts real data "
                            "(save its .real part if that is what you mean)")
    if dtype.kind not in "iuf":
        raise SettingsError(f"{path}: the array holds {dtype} values, not numbers; give a numeric array "
                            "(float32 preferably)")


def read_array(path: Path, card) -> np.ndarray:
    """A .npy of data_shape or (batch, *data_shape), as float32; checked from its header before it is read."""
    from numpy.lib import format as npy_format

    from studio.core.errors import SettingsError

    expected = tuple(card.data_shape)
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read it: {_reason(exc)}") from None
    with handle:
        header = read_array_header(path, handle)
        batch_of_them = len(header.shape) == len(expected) + 1 and header.shape[1:] == expected \
            and header.shape[0] >= 1
        if header.shape != expected and not batch_of_them:
            raise SettingsError(f"{path}: array of shape {list(header.shape)}; model {card.name!r} takes "
                                f"{list(expected)} or a batch of them")
        try:
            handle.seek(0)
            data = npy_format.read_array(handle, allow_pickle=False)
        except OSError as exc:
            raise SettingsError(f"{path}: cannot read it: {_reason(exc)}") from None
        except (ValueError, EOFError) as exc:
            raise SettingsError(f"{path}: not a readable .npy array ({exc})") from None
    if data.shape == expected:
        data = data[None]
    if not np.isfinite(data).all():
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


def invert_data(denoiser, x0: np.ndarray, steps: int = DEFAULT_DDIM_STEPS, spacing: str = "leading",
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
    from studio.core.bundled import DEFAULT_MODEL, bundled_source
    from studio.core.checkpoints import open_checkpoint
    from studio.core.export import ensure_folder, write_json
    from studio.core.recipe import recorded_source

    path, is_array = _checked_input(args)
    source = args.checkpoint or bundled_source(DEFAULT_MODEL)
    denoiser = open_checkpoint(source, trust_code=args.trust_code)
    card = denoiser.card
    _check_class(args.class_label, card)
    x0, note = (read_array(path, card), None) if is_array else read_picture(path, card)
    if note:
        print(f"note: {note}", file=sys.stderr)
    steps = args.steps if args.steps is not None else min(DEFAULT_DDIM_STEPS, card.num_train_timesteps)
    out = ensure_folder(args.out)
    trip = invert_data(denoiser, x0, steps, args.spacing, args.class_label, args.device, args.dtype, args.progress)
    files = _write_arrays_and_pictures(out, trip, card, args.png_scale) + [REPORT_FILE]
    record = dict(trip.record, command="invert", input=str(path.resolve()), checkpoint=recorded_source(source),
                  round_trip={"mse": trip.mse, "max_abs": trip.max_abs}, files=files)
    if note:
        record["note"] = note
    write_json(out / REPORT_FILE, record)
    low, high = card.value_range
    print(f"round-trip error: mse {trip.mse:.3g}, max abs {trip.max_abs:.3g} "
          f"(data space [{low:g}, {high:g}], {steps} DDIM steps each way)")
    print(f"wrote {', '.join(files)} to {out}")
    return 0


def _checked_input(args) -> tuple[Path, bool]:
    """(IMAGE, whether it is a .npy), refused from its header before the model (and torch) loads."""
    from studio.core.checks import require_int

    path = Path(args.image)
    check_input_file(path)
    require_int("--png-scale", args.png_scale, 1)
    is_array = path.suffix.lower() == ".npy"
    if is_array:
        read_array_header(path)
    else:
        check_picture(path)
    return path, is_array


def _check_class(class_label, card) -> None:
    from studio.core.errors import SettingsError

    if class_label == "cycle":
        raise SettingsError("--class cycle does not apply to inversion; give a class index")
    if class_label is not None and not card.conditional:
        raise SettingsError(f"--class needs a class-conditional model; {card.name!r} is unconditional")


def _write_arrays_and_pictures(out: Path, trip: RoundTrip, card, png_scale: int) -> list[str]:
    """x_T.npy, reconstruction.npy and, for an image model, reconstruction.png (then one PNG per further item
    of a batch); returns their names."""
    from studio.core.export import image_pixels, write_npy
    from studio.core.export.images import write_png_image

    write_npy(out / X_T_FILE, trip.x_T)
    write_npy(out / RECONSTRUCTION_FILE, trip.reconstruction)
    files = [X_T_FILE, RECONSTRUCTION_FILE]
    if card.data_kind != "image":
        return files
    pixels = image_pixels(trip.reconstruction, card.value_range)
    names = [RECONSTRUCTION_PNG] + [f"reconstruction_{i:05d}.png" for i in range(1, len(pixels))]
    for name, picture in zip(names, pixels):
        write_png_image(out / name, picture, scale=png_scale)
    return files + names
