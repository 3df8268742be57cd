"""What the window remembers between launches, in QSettings (organisation / application below).

Values are plain strings and JSON, so the stored file reads like the CLI's settings dictionary. Tests point
QSettings elsewhere with ``QSettings.setDefaultFormat(IniFormat)`` + ``QSettings.setPath`` before building
the window; every read here goes through ``defaultFormat()`` for that reason.
"""

from __future__ import annotations

import json
import os

from PySide6.QtCore import QByteArray, QSettings

from ..core.bundled import bundled_by_name, bundled_of_source, bundled_source

ORGANISATION = "SamplingStudio"
APPLICATION = "Sampling Studio"
MAX_RECENT = 8
STATE_VERSION = 1   # bump when docks or toolbars change, so an old layout is not restored onto a new window


def open_settings() -> QSettings:
    return QSettings(QSettings.defaultFormat(), QSettings.Scope.UserScope, ORGANISATION, APPLICATION)


def read_json(key: str, default=None):
    value = open_settings().value(key)
    if not isinstance(value, str):
        return default
    try:
        return json.loads(value)
    except ValueError:
        return default  # a damaged entry is forgotten, not fatal


def write_json(key: str, value) -> None:
    """Written through to disk at once, unless the stored text is already this (each Generate writes the run's
    settings: a repeated run writes nothing)."""
    settings = open_settings()
    text = json.dumps(value)
    if settings.value(key) == text:
        return
    settings.setValue(key, text)
    settings.sync()


def read_bytes(key: str) -> QByteArray | None:
    value = open_settings().value(key)
    return value if isinstance(value, QByteArray) and not value.isEmpty() else None


def write_bytes(key: str, value: QByteArray) -> None:
    settings = open_settings()
    settings.setValue(key, value)
    settings.sync()


def read_text(key: str) -> str | None:
    value = open_settings().value(key)
    return value if isinstance(value, str) and value else None


def write_text(key: str, value: str | None) -> None:
    settings = open_settings()
    if value:
        settings.setValue(key, value)
    else:
        settings.remove(key)
    settings.sync()


def recent_checkpoints() -> list[str]:
    recent = read_json("model/recent", [])
    return [p for p in recent if isinstance(p, str)][:MAX_RECENT] if isinstance(recent, list) else []


def remember_checkpoint(source: str) -> list[str]:
    """Put ``source`` first in the recent list (no duplicates) and make it the last checkpoint."""
    recent = [source] + [p for p in recent_checkpoints() if p != source]
    recent = recent[:MAX_RECENT]
    write_json("model/recent", recent)
    write_text("model/last", source)
    return recent


def last_checkpoint() -> str | None:
    return read_text("model/last")


# --- settings that belong to one model ----------------------------------------------------------------------------
MODEL_SETTINGS_KEY = "run/model_settings"
MAX_MODELS_REMEMBERED = 32


def model_key(source: str | None, name: str) -> str:
    """What a model's own settings are remembered under: ``bundled:NAME`` for a bundled model (however it was
    named), a file or folder by its absolute path, an in-memory model (tests, scripts) as ``memory:NAME``."""
    if source is None:
        return f"memory:{name}"
    source = str(source)
    bundled = bundled_of_source(source) or (bundled_by_name(source) if not os.path.exists(source) else None)
    if bundled is not None:
        return bundled_source(bundled.name)
    return os.path.abspath(source) if os.path.exists(source) else source


def has_model_settings() -> bool:
    """Whether this settings file has per-model settings at all (one written before them has not)."""
    return open_settings().contains(MODEL_SETTINGS_KEY)


def model_settings() -> dict[str, dict]:
    """Every remembered model's own settings, the most recently used model first."""
    stored = read_json(MODEL_SETTINGS_KEY, {})
    if not isinstance(stored, dict):
        return {}
    return {key: value for key, value in stored.items() if isinstance(key, str) and isinstance(value, dict)}


def write_model_settings(remembered: dict[str, dict]) -> None:
    """Keep the ``MAX_MODELS_REMEMBERED`` most recent models' settings (``remembered`` is most recent first)."""
    write_json(MODEL_SETTINGS_KEY, dict(list(remembered.items())[:MAX_MODELS_REMEMBERED]))


# --- code the user chose to trust --------------------------------------------------------------------------------
MAX_TRUSTED = 256


def trusted_code() -> list[str]:
    """sha256 digests of the TorchScript archives the user confirmed: trust belongs to those exact bytes."""
    trusted = read_json("trust/code_sha256", [])
    return [h for h in trusted if isinstance(h, str) and len(h) == 64] if isinstance(trusted, list) else []


def trust_code(sha256: str) -> None:
    write_json("trust/code_sha256", ([sha256] + [h for h in trusted_code() if h != sha256])[:MAX_TRUSTED])
