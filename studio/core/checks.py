"""Checks of single values read from files, flags and settings: each raises SettingsError naming the value."""

from __future__ import annotations

import math
import numbers

from .errors import SettingsError


def is_int(value) -> bool:
    """An integer and not a bool (JSON's true would otherwise pass as 1)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A real number and not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def require_int(name: str, value, minimum: int | None = None, maximum: int | None = None, *,
                optional: bool = False, hint: str = ""):
    """``value`` as an int if it is one within [minimum, maximum] (None passes when ``optional``)."""
    if value is None and optional:
        return None
    if not (is_int(value) and (minimum is None or value >= minimum) and (maximum is None or value <= maximum)):
        raise SettingsError(f"{name} must be {_integer_range(minimum, maximum)}{' or unset' if optional else ''}"
                            f"{hint}, got {value!r:.80}")
    return int(value)


def require_number(name: str, value, minimum: float | None = None, maximum: float | None = None, *,
                   below_maximum: bool = False) -> float:
    """``value`` as a float if it is a finite number in [minimum, maximum] (or [minimum, maximum) with
    ``below_maximum``)."""
    ok = is_number(value) and math.isfinite(value) and (minimum is None or value >= minimum) and \
        (maximum is None or (value < maximum if below_maximum else value <= maximum))
    if not ok:
        if minimum is not None and maximum is not None:
            what = f"a number in [{minimum:g}, {maximum:g}{')' if below_maximum else ']'}"
        elif minimum is not None:
            what = f"a number >= {minimum:g}"
        elif maximum is not None:
            what = f"a number <= {maximum:g}"
        else:
            what = "a finite number"
        raise SettingsError(f"{name} must be {what}, got {value!r:.80}")
    return float(value)


def require_choice(name: str, value, choices, aliases: dict | None = None):
    """``value`` (or what its alias stands for) if it is one of ``choices``."""
    value = (aliases or {}).get(value, value) if isinstance(value, str) else value
    if value not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {value!r:.80}")
    return value


def _integer_range(minimum, maximum) -> str:
    if minimum is not None and maximum is not None:
        return f"an integer from {minimum} to {maximum}"
    if minimum is not None:
        return f"an integer >= {minimum}"
    if maximum is not None:
        return f"an integer <= {maximum}"
    return "an integer"
