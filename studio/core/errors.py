"""The studio's small family of errors.

Every expected failure a user can cause raises one of these with a message that names what is
wrong; the GUI shows the message and keeps its state, the CLI prints ``error: <message>`` and exits 2.
"""


class StudioError(Exception):
    """Base of every error the studio raises on purpose."""


class SettingsError(StudioError, ValueError):
    """A setting is outside what the studio accepts; the message names it and the allowed range."""


class CheckpointError(StudioError):
    """A checkpoint cannot be opened; the message names the file and what is wrong."""


class NumericalError(StudioError, FloatingPointError):
    """A run produced NaN or Inf; the message names the step and timestep."""

    def __init__(self, message: str, index: int | None = None, t: int | None = None):
        super().__init__(message)
        self.index = index
        self.t = t


class Cancelled(StudioError):
    """A run was stopped by its caller."""
