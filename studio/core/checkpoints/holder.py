"""The model the studio has open. A new one replaces it only once it has loaded completely, so a bad file
leaves the previous model in place (the GUI shows the error and carries on with what it had)."""

from __future__ import annotations

import os
from typing import Callable

from ..models.denoiser import NetworkDenoiser
from .opening import open_checkpoint


class ModelHolder:
    def __init__(self, opener: Callable[[str | os.PathLike], NetworkDenoiser] = open_checkpoint):
        self._opener = opener
        self.denoiser: NetworkDenoiser | None = None

    @property
    def card(self):
        return None if self.denoiser is None else self.denoiser.card

    def open(self, source: str | os.PathLike, device=None, dtype=None, trust_code: bool | str = False) -> NetworkDenoiser:
        """Open ``source`` (moved to ``device``/``dtype`` if given); on any error the current model stays.
        ``trust_code``: see ``open_checkpoint`` (passed on only when given, so any opener works)."""
        loaded = self._opener(source, trust_code=trust_code) if trust_code else self._opener(source)
        if device is not None:
            loaded = loaded.to(device, **({} if dtype is None else {"dtype": dtype}))
        self.denoiser = loaded  # only reached once everything above succeeded
        return loaded
