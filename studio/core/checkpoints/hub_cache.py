"""The UNet pipelines already in the Hugging Face hub cache on this machine. Read from disk only: nothing is
downloaded and huggingface_hub is not imported.

Cache layout: <cache>/models--<owner>--<name>/snapshots/<revision>/model_index.json, with refs/main holding
the revision the hub's "main" pointed to when it was downloaded.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .diffusers_format import UNET_CLASS, weights_file
from ..errors import CheckpointError


@dataclass(frozen=True)
class CachedPipeline:
    repo_id: str          # e.g. google/ddpm-cifar10-32
    revision: str         # the snapshot's commit hash
    path: Path            # the snapshot folder; open_checkpoint(path) opens it
    pipeline_class: str   # e.g. DDPMPipeline


def hub_cache_dir() -> Path:
    """Where huggingface_hub keeps downloads: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub."""
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(variable):
            return Path(os.environ[variable]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"


def _unet_pipeline(snapshot: Path) -> str | None:
    """The pipeline class when ``snapshot`` is a complete UNet2DModel pipeline, else None."""
    try:
        index = json.loads((snapshot / "model_index.json").read_text(encoding="utf-8"))
        entry = index.get("unet")
        if not (isinstance(entry, list) and len(entry) == 2 and entry[1] == UNET_CLASS):
            return None
        if not (snapshot / "unet" / "config.json").is_file():
            return None
        weights_file(snapshot / "unet")  # an interrupted download has no weights yet
    except (OSError, ValueError, AttributeError, CheckpointError):
        return None
    return str(index.get("_class_name", "pipeline"))


def _snapshots(repo: Path) -> list[Path]:
    """The snapshot refs/main points at first, then the others, newest first."""
    folder = repo / "snapshots"
    try:
        found = sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return []
    try:
        main = (repo / "refs" / "main").read_text().strip()
    except OSError:
        main = ""
    return sorted(found, key=lambda p: p.name != main)


def diffusers_cache_pipelines(cache_dir: str | os.PathLike | None = None) -> list[CachedPipeline]:
    """One entry per cached repository holding a UNet2DModel pipeline, sorted by repo id."""
    cache = Path(cache_dir) if cache_dir is not None else hub_cache_dir()
    try:
        repos = sorted(p for p in cache.iterdir() if p.is_dir() and p.name.startswith("models--"))
    except OSError:
        return []
    found = []
    for repo in repos:
        for snapshot in _snapshots(repo):
            pipeline = _unet_pipeline(snapshot)
            if pipeline is not None:
                repo_id = repo.name.removeprefix("models--").replace("--", "/")
                found.append(CachedPipeline(repo_id, snapshot.name, snapshot, pipeline))
                break
    return sorted(found, key=lambda c: c.repo_id)
