"""Which format a path holds, decided by its content (never by its name alone), and bundled short names."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from ..bundled import BUNDLED, bundled_by_name
from .common import fail

FORMATS = ("studio", "diffusers", "torchscript", "state_dict")

# Content a user might pick by mistake, named so the message says what it is.
_MAGIC = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"RIFF": "a RIFF file (WebP image or audio)",
    b"\x1f\x8b": "a gzip archive",
    b"\x89HDF": "an HDF5 file (Keras?)",
    b"GGUF": "a GGUF file",
    b"%PDF": "a PDF document",
    b"\x93NUMPY": "a NumPy .npy array",
}


def resolve(source: str | os.PathLike) -> Path:
    """A path, or a bundled short name ("digits", "toy2d", "digits-classifier") where no such path exists."""
    path = Path(source).expanduser()
    if path.name in ("model_index.json", "config.json") and path.is_file():
        return path.parent  # a diffusers folder, picked by its config file
    if path.exists():
        return path
    bundled = bundled_by_name(str(source))
    if bundled is not None:
        if not bundled.path.is_file():
            raise fail(bundled.path, f"bundled model {bundled.name!r} is not installed (train it with "
                                     "`studio train`, see README)")
        return bundled.path
    names = ", ".join(m.name for m in BUNDLED)
    raise fail(source, f"no such file or folder (nor a bundled model name: {names})")


def identify(source: str | os.PathLike) -> str:
    """One of FORMATS; a CheckpointError naming the file when it is none of them."""
    path = resolve(source)
    if path.is_dir():
        from .diffusers_format import is_diffusers_folder

        if is_diffusers_folder(path):
            return "diffusers"
        raise fail(path, "folder has no model_index.json (a diffusers pipeline) or config.json (a diffusers model)")
    if not path.is_file():
        raise fail(path, "is not a regular file or folder")
    size = path.stat().st_size
    if size == 0:
        raise fail(path, "file is empty (0 bytes)")
    with open(path, "rb") as handle:
        head = handle.read(16)
    for magic, what in _MAGIC.items():
        if head.startswith(magic):
            raise fail(path, f"is {what}, not a checkpoint" + _suffix_note(path))
    if _looks_like_safetensors(head):
        return _identify_safetensors(path)
    if head.startswith(b"PK"):
        return _identify_zip(path)
    if path.suffix == ".safetensors":
        return _identify_safetensors(path)  # too short to tell by content: its header reader says what is wrong
    if head[:1] == b"\x80":  # a pickle (torch.save's legacy format starts with one); read weights-only later
        return "state_dict"
    raise fail(path, "is not a checkpoint the studio can read: not a safetensors file, a PyTorch or TorchScript "
                     f"archive, or a pickle (it starts with bytes {head[:8].hex(' ')})")


def _suffix_note(path: Path) -> str:
    return f" (despite its {path.suffix} name)" if path.suffix else ""


def _identify_safetensors(path: Path) -> str:
    from .studio_format import is_studio_header, read_safetensors_header

    return "studio" if is_studio_header(read_safetensors_header(path)) else "state_dict"


def _looks_like_safetensors(head: bytes) -> bool:
    """8 bytes of little-endian header length, then the JSON header's opening brace."""
    return len(head) >= 9 and int.from_bytes(head[:8], "little") > 0 and head[8:9] == b"{"


def _identify_zip(path: Path) -> str:
    from .torchscript_format import is_torchscript_zip

    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError):
        raise fail(path, "truncated or corrupted archive (the zip directory cannot be read)") from None
    if is_torchscript_zip(names):
        return "torchscript"
    if any(n.endswith("data.pkl") for n in names):
        return "state_dict"
    raise fail(path, "is a zip archive but not a PyTorch one (no data.pkl inside)")
