"""Training data: scikit-learn's 8x8 digits, the generated 32x32 RGB shapes (shapes.py), a 2-D toy mixture
(8 Gaussians on a ring), or a folder of images.

Every dataset ends as a ``TrainData``: float32 samples in the model's data space (images in [-1, 1]), integer
class labels (or None) and the names of the classes.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ..core.checks import require_choice, require_int
from ..core.errors import SettingsError

BUILTIN_DATASETS = ("digits", "shapes", "toy2d")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
COLOR_MODES = ("auto", "gray", "rgb")

# The 2-D toy: 8 equal Gaussians, isotropic std TOY_STD, centred on a circle of radius TOY_RADIUS at the compass
# points (class k sits at angle k * 45 degrees, counter-clockwise from east). A Gaussian mixture has an exact
# optimal denoiser (studio.core.models.analytic), so the trained MLP can be compared with the ideal one.
TOY_RADIUS = 2.0
TOY_STD = 0.15
TOY_CLASS_NAMES = ("E", "NE", "N", "NW", "W", "SW", "S", "SE")
TOY_SIZE = 50_000
TOY_DATA_SEED = 0        # the dataset is fixed; the training seed changes only the model and the batches
TOY_VALUE_RANGE = (-3.0, 3.0)


@dataclass(frozen=True)
class TrainData:
    name: str
    samples: torch.Tensor                 # (N, *data_shape) float32
    labels: torch.Tensor | None           # (N,) int64, or None
    class_names: tuple[str, ...]
    data_kind: str                         # "image" or "vector"
    value_range: tuple[float, float]
    description: str

    @property
    def data_shape(self) -> tuple[int, ...]:
        return tuple(self.samples.shape[1:])

    def __len__(self) -> int:
        return self.samples.shape[0]

    def fingerprint(self) -> str:
        """sha256 of the samples and labels: a resumed run must see exactly the data it started on."""
        digest = hashlib.sha256(self.samples.numpy().tobytes())
        if self.labels is not None:
            digest.update(self.labels.numpy().tobytes())
        return digest.hexdigest()


def load_data(data: str, image_size: int | None = None, color: str = "auto") -> TrainData:
    """``digits``, ``shapes``, ``toy2d``, or a folder path."""
    require_choice("--color", color, COLOR_MODES)
    if data == "digits":
        return load_digits(image_size)
    if data == "shapes":
        return shapes_data(image_size)
    if data == "toy2d":
        return toy2d_data()
    path = Path(data).expanduser()
    if not path.exists():
        raise SettingsError(f"--data {data!r} is neither a built-in dataset ({', '.join(BUILTIN_DATASETS)}) "
                            "nor an existing folder")
    if not path.is_dir():
        raise SettingsError(f"--data {data!r} is a file; give a folder of images (or {', '.join(BUILTIN_DATASETS)})")
    return load_image_folder(path, image_size or 32, color)


def load_digits(image_size: int | None = None) -> TrainData:
    """The 1797 8x8 digits scikit-learn ships, 0..16 mapped to [-1, 1]; resized bilinearly if asked."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits  # optional extra: only when asked for
    except ImportError:
        raise SettingsError("the digits dataset needs scikit-learn: pip install scikit-learn (the studio's train extra)") from None
    bunch = sklearn_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) / 8.0 - 1.0)[:, None]   # (N, 1, 8, 8)
    size = image_size or 8
    if size != 8:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False).clamp(-1, 1)
    return TrainData("digits", images.contiguous(), torch.from_numpy(bunch.target.astype(np.int64)),
                     tuple(str(i) for i in range(10)), "image", (-1.0, 1.0),
                     f"scikit-learn's 8x8 digits ({len(images)} images, 10 classes), at {size}x{size}")


def shapes_data(image_size: int | None = None) -> TrainData:
    """The generated shapes (studio.train.shapes): SHAPES_SIZE RGB pictures, 6 classes by shape, fixed seed.
    ``image_size`` draws them at another side (default 32; at least 16, a multiple of 4)."""
    from .shapes import SHAPES_CLASS_NAMES, SHAPES_DATA_SEED, SHAPES_IMAGE_SIZE, SHAPES_SIZE, generate_shapes

    size = SHAPES_IMAGE_SIZE if image_size is None else require_int("--image-size", image_size, 16, 256)
    if size % 4:
        raise SettingsError(f"--image-size for shapes must be a multiple of 4, got {size}")
    images, labels = generate_shapes(SHAPES_SIZE, SHAPES_DATA_SEED, size)
    return TrainData("shapes", torch.from_numpy(images), torch.from_numpy(labels), SHAPES_CLASS_NAMES, "image",
                     (-1.0, 1.0), f"the generated shapes ({SHAPES_SIZE} RGB pictures, "
                     f"{len(SHAPES_CLASS_NAMES)} classes by shape: {', '.join(SHAPES_CLASS_NAMES)}; seed "
                     f"{SHAPES_DATA_SEED}), at {size}x{size}")


def toy2d_means() -> np.ndarray:
    angles = np.arange(len(TOY_CLASS_NAMES)) * (2 * math.pi / len(TOY_CLASS_NAMES))
    return TOY_RADIUS * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def sample_toy2d(count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` points of the 8-Gaussian ring and their component labels."""
    labels = torch.randint(0, len(TOY_CLASS_NAMES), (count,), generator=generator)
    means = torch.from_numpy(toy2d_means().astype(np.float32))
    points = means[labels] + TOY_STD * torch.randn((count, 2), generator=generator)
    return points, labels


def toy2d_data() -> TrainData:
    points, labels = sample_toy2d(TOY_SIZE, torch.Generator().manual_seed(TOY_DATA_SEED))
    return TrainData("toy2d", points, labels, TOY_CLASS_NAMES, "vector", TOY_VALUE_RANGE,
                     f"8 Gaussians (std {TOY_STD}) on a circle of radius {TOY_RADIUS}, {TOY_SIZE} points")


def load_image_folder(root: Path, image_size: int, color: str) -> TrainData:
    """Images directly in ``root`` (unconditional), or in its subfolders, one class per subfolder.

    Each image is centre-cropped to a square and resized to ``image_size``; ``color`` auto picks grayscale when
    every image is grayscale, else RGB.
    """
    from PIL import Image, UnidentifiedImageError

    require_int("--image-size", image_size, 4, 512)
    is_image = lambda p: p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES  # noqa: E731
    top = sorted(p for p in root.iterdir() if is_image(p))
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and any(is_image(p) for p in d.rglob("*")))
    if top and class_dirs:
        raise SettingsError(f"--data folder {str(root)!r} mixes images at its top level with class subfolders "
                            f"({', '.join(d.name for d in class_dirs)}); put every image in a class folder, or none")
    if not top and not class_dirs:
        raise SettingsError(f"--data folder {str(root)!r} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    if top or len(class_dirs) == 1:
        files = top or sorted(p for p in class_dirs[0].rglob("*") if is_image(p))
        labelled = [(p, 0) for p in files]
        class_names: tuple[str, ...] = ()
    else:
        class_names = tuple(d.name for d in class_dirs)
        labelled = [(p, k) for k, d in enumerate(class_dirs) for p in sorted(d.rglob("*")) if is_image(p)]
    images = []
    for path, _ in labelled:
        try:
            with Image.open(path) as image:
                image.load()
                images.append(image.copy())
        except (UnidentifiedImageError, OSError) as exc:
            raise SettingsError(f"cannot read image {str(path)!r}: {exc}") from None
    gray_modes = {"1", "L", "LA", "I", "I;16", "F"}
    if color == "auto":
        color = "gray" if all(im.mode in gray_modes for im in images) else "rgb"
    arrays = [_square(im, image_size).convert("L" if color == "gray" else "RGB") for im in images]
    stacked = np.stack([np.asarray(a, dtype=np.float32).reshape(image_size, image_size, -1) for a in arrays])
    samples = torch.from_numpy(stacked / 127.5 - 1.0).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor([k for _, k in labelled], dtype=torch.long) if class_names else None
    kind = f"{len(class_names)} classes" if class_names else "unconditional"
    return TrainData(root.name or str(root), samples, labels, class_names, "image", (-1.0, 1.0),
                     f"{len(images)} images from {root.name!r} ({kind}), {color} {image_size}x{image_size}")


def _square(image, size: int):
    """Centre-crop to a square, then resize (Lanczos) to size x size."""
    from PIL import Image

    if image.mode not in ("L", "RGB", "RGBA", "LA"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.LANCZOS)
