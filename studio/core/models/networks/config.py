"""Network configs as frozen dataclasses: validated once, JSON-able, and the exact recipe to rebuild a network.

A network's ``config`` dict is ``asdict`` of its config with tuples turned into lists, so
``build_network({"name": name, "config": net.config})`` gives back the same architecture.
"""

from __future__ import annotations

from dataclasses import asdict, fields

from ...checks import is_int, require_int, require_number
from ...errors import SettingsError


def parse_config(config_type: type, name: str, values: dict):
    """Build ``config_type`` from a dict, naming the network and the key on any problem."""
    if not isinstance(values, dict):
        raise SettingsError(f"network {name!r}: config must be a JSON object, got {type(values).__name__}")
    known = {f.name for f in fields(config_type)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SettingsError(
            f"network {name!r}: unknown config key(s) {', '.join(unknown)}; known keys are {', '.join(sorted(known))}"
        )
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    try:
        return config_type(**kwargs)
    except TypeError as exc:  # a required key is missing
        raise SettingsError(f"network {name!r}: {exc}") from None


def config_to_dict(config) -> dict:
    data = asdict(config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


def check_int(net: str, key: str, value, minimum: int = 1) -> int:
    return require_int(f"network {net!r}: {key}", value, minimum)


def check_int_tuple(net: str, key: str, value, minimum: int = 1, allow_empty: bool = False) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or (not value and not allow_empty) or not all(
        is_int(v) and v >= minimum for v in value
    ):
        what = "a list" if allow_empty else "a non-empty list"
        raise SettingsError(f"network {net!r}: {key} must be {what} of integers >= {minimum}, got {value!r}")
    return tuple(value)


def check_fraction(net: str, key: str, value) -> float:
    return require_number(f"network {net!r}: {key}", value, 0.0, 1.0, below_maximum=True)


def check_bool(net: str, key: str, value) -> bool:
    if not isinstance(value, bool):
        raise SettingsError(f"network {net!r}: {key} must be true or false, got {value!r}")
    return value
