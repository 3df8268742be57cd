"""Command-line pieces the commands share: --class, --trust-code, how --device is shown.

Only the standard library and ``studio.core.choices`` / ``checks`` here, so building a command's parser (and
its --help) imports no torch.
"""

from __future__ import annotations

import argparse

from studio.core.checks import require_int
from studio.core.choices import CLASS_CYCLE, DEVICES
from studio.core.errors import SettingsError

UNCONDITIONAL = "none"   # --class none: the model's null class
DEVICE_METAVAR = "{" + ",".join(DEVICES) + "}"


def class_argument(value: str):
    """--class: a class index, 'cycle', or 'none' (the model's null class: unconditional)."""
    if value in (CLASS_CYCLE, UNCONDITIONAL):
        return value
    try:
        label = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a class index, {CLASS_CYCLE!r} or {UNCONDITIONAL!r}, got {value!r}") from None
    try:
        return require_int("a class index", label, 0)
    except SettingsError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_trust_argument(parser) -> None:
    """--trust-code, for every command that loads a checkpoint."""
    parser.add_argument("--trust-code", dest="trust_code", action="store_true",
                        help="allow loading a TorchScript archive: it is a program, not data, and runs with your "
                             "permissions once loaded (its code is checked for file and process calls first, "
                             "whether trusted or not); other formats never need this")
