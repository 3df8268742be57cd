"""A measured value with its standard error (None where the metric has no sampling noise of its own)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Measured:
    value: float
    standard_error: float | None = None

    def to_dict(self) -> dict:
        return {"value": _plain(self.value), "standard_error": _plain(self.standard_error)}


def _plain(number: float | None):
    """JSON has no NaN or infinity: those are written as null."""
    if number is None or not math.isfinite(number):
        return None
    return float(number)
