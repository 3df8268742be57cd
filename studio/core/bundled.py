"""The demo models that ship with the studio (trained by ``studio train``, see docs/demo-models.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL = "digits"


@dataclass(frozen=True)
class BundledModel:
    name: str          # short name, accepted wherever a checkpoint path is (CLI --checkpoint, `studio NAME`)
    filename: str
    description: str

    @property
    def path(self) -> Path:
        return resources_dir() / self.filename


BUNDLED = (
    BundledModel("digits", "digits-unet.safetensors", "class-conditional UNet on scikit-learn's 8x8 digits"),
    BundledModel("toy2d", "toy2d-mlp.safetensors", "MLP denoiser on a 2-D toy distribution"),
    BundledModel("digits-classifier", "digits-classifier.safetensors",
                 "noise-aware digit classifier, for classifier guidance"),
    BundledModel("shapes", "shapes-unet.safetensors",
                 "class-conditional UNet on generated 32x32 RGB shapes (6 classes), textured backgrounds"),
)


def resources_dir() -> Path:
    """resources/ beside the package in a source checkout, or the copy installed inside the package."""
    here = Path(__file__).resolve().parent.parent  # studio/
    for candidate in (here / "resources", here.parent / "resources"):
        if candidate.is_dir():
            return candidate
    return here.parent / "resources"


def bundled_models() -> list[BundledModel]:
    """The bundled models whose files are present."""
    return [m for m in BUNDLED if m.path.is_file()]


def bundled_by_name(name: str) -> BundledModel | None:
    return next((m for m in BUNDLED if m.name == name), None)


# "bundled:NAME" always means the bundled model, whatever files the current folder holds; the studio uses it
# for its own defaults and for bundled names recorded in recipes and settings.
BUNDLED_PREFIX = "bundled:"


def bundled_source(name: str) -> str:
    return f"{BUNDLED_PREFIX}{name}"


def bundled_of_source(source: str) -> BundledModel | None:
    """The bundled model ``source`` names explicitly ("bundled:digits"), else None."""
    text = str(source)
    return bundled_by_name(text[len(BUNDLED_PREFIX):]) if text.startswith(BUNDLED_PREFIX) else None


def as_recorded_bundled(source: str) -> str:
    """A bare bundled name written by the studio (recipe, settings) as the explicit form; other sources as they are."""
    text = str(source)
    return bundled_source(text) if bundled_by_name(text) is not None else text
