"""Which format a path holds, decided by its content (never by its name alone). ``resolve`` (in sources) turns
a bundled name or a path into the path to read."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from .common import fail, open_binary, unreadable
from .sources import resolve

FORMATS = ("studio", "diffusers", "torchscript", "state_dict", "guided_diffusion", "ddpm_pytorch")

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


def identify(source: str | os.PathLike) -> str:
    """One of FORMATS, decided by the file's content; a CheckpointError naming the file when it is none of them
    (or cannot be read)."""
    path = resolve(source)
    try:
        kind = _identify(path)
        if kind == "state_dict":   # a bare state dict: lucidrains' and OpenAI's files are the ones told apart
            from .ddpm_pytorch_detect import is_ddpm_pytorch_file
            from .guided_detect import is_guided_file

            if is_ddpm_pytorch_file(path):   # first: guided's detection takes any JSON sidecar as its flags
                return "ddpm_pytorch"
            if is_guided_file(path):
                return "guided_diffusion"
        return kind
    except OSError as exc:  # stat or open refused (permission denied), or the disk failed
        raise unreadable(path, exc, "folder" if _is_dir(path) else "file") from None


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


def _identify(path: Path) -> str:
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
    with open_binary(path) as handle:
        head = handle.read(16)
    for magic, what in _MAGIC.items():
        if head.startswith(magic):
            raise fail(path, f"is {what}, not a checkpoint" + _suffix_note(path))
    if _looks_like_safetensors(head):
        return _identify_safetensors(path)
    if head.startswith(b"PK"):
        return _identify_zip(path)
    named_safetensors = path.suffix == ".safetensors"
    # A pickle (torch.save's legacy format starts with one) is read weights-only later, whatever its name. A
    # .safetensors file under 9 bytes cannot show a header, so its header reader names it (truncated) instead.
    if _looks_like_pickle(head) and not (named_safetensors and size < 9):
        return "state_dict"
    if named_safetensors:
        return _identify_safetensors(path)  # too short or damaged to tell by content: its header reader names it
    raise fail(path, "is not a checkpoint the studio can read: not a safetensors file, a PyTorch or TorchScript "
                     f"archive, or a pickle (it starts with bytes {head[:8].hex(' ')})")


_CONTENT_WORDS = {"safetensors": "a safetensors file", "pickle": "a PyTorch pickle", "pytorch": "a PyTorch archive",
                  "torchscript": "a TorchScript archive", "zip": "a zip archive"}


def content_note(path: str | os.PathLike, kind: str) -> str:
    """Words for a file whose name says another format than its content: "a TorchScript archive named
    .safetensors", "a safetensors file named .pt"; "" when the name fits. ``kind``: safetensors, pickle,
    pytorch (torch.save's zip archive), torchscript or zip. Messages put it first: f"{note}: {problem}"."""
    suffix = Path(path).suffix
    if kind == "safetensors":
        mismatched = bool(suffix) and suffix != ".safetensors"
    else:
        mismatched = suffix == ".safetensors"
    return f"{_CONTENT_WORDS.get(kind, 'a ' + kind + ' file')} named {suffix}" if mismatched else ""


def content_kind(path: str | os.PathLike) -> str | None:
    """What the file's first bytes say it is: "safetensors", "zip" or "pickle"; None for anything else."""
    with open_binary(path) as handle:
        try:
            head = handle.read(16)
        except OSError as exc:
            raise unreadable(path, exc) from None
    if _looks_like_safetensors(head):
        return "safetensors"
    if head.startswith(b"PK"):
        return "zip"
    return "pickle" if _looks_like_pickle(head) else None


def _looks_like_pickle(head: bytes) -> bool:
    """A pickle of protocol 2 to 5 (torch.save writes 2) starts with PROTO and its number."""
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


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
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError):
        note = content_note(path, "zip")
        raise fail(path, f"{note + ': ' if note else ''}truncated or corrupted archive (the zip directory cannot "
                         "be read)") from None
    if is_torchscript_zip(names):
        return "torchscript"
    if any(n.endswith("data.pkl") for n in names):
        return "state_dict"
    raise fail(path, "is a zip archive but not a PyTorch one (no data.pkl inside)" + _suffix_note(path))
