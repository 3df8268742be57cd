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


class UntrustedCodeError(CheckpointError):
    """A checkpoint holds code (a TorchScript archive) and the user has not said to trust it; nothing was run.
    ``sha256`` is of the bytes that were inspected, so trust given for them cannot pass to other bytes."""

    def __init__(self, message: str, sha256: str = "", verdict: str = ""):
        super().__init__(message)
        self.sha256 = sha256
        self.verdict = verdict


class ModelError(StudioError):
    """A network from a file (code the studio did not write) failed while it was called; the message names it."""


class NumericalError(StudioError, FloatingPointError):
    """A run produced NaN or Inf; the message names the step and timestep. ``what`` is the message without
    what the caller keeps (the window keeps the steps before it; the command line writes nothing)."""

    def __init__(self, message: str, index: int | None = None, t: int | None = None, what: str | None = None):
        super().__init__(message)
        self.index = index
        self.t = t
        self.what = what if what is not None else message
