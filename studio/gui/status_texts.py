"""What the status bar and the toolbar's run-state label say about a run, from its start to its outcome.

Plain functions of plain values (no widgets), so every wording lives in one place.
"""

from __future__ import annotations

NEXT_RUN_NOTE = "settings you change now apply to the next run"


def store_summary(store) -> str:
    """What the run's trajectory store kept; past the memory budget, it says keyframes."""
    if store.keeps_every_step:
        return store.describe()
    return (f"keyframes: every {store.stride} steps and the latest are kept ({store.nbytes / 2**20:.1f} MiB; "
            f"frame memory {store.budget_bytes / 2**20:.0f} MiB, Seed panel)")


def network_summary(info) -> str:
    """The network mode a run uses, when there is something to say: a faster mode (and that auto chose it), or
    why the mode asked for fell back."""
    if info.network_note.startswith("auto:"):   # auto chose (its note says why): not a fall-back
        return "" if info.network == "plain" else f"network {info.network} (auto)"
    if info.network_note:
        return f"network plain: {info.network_note}"
    return "" if info.network == "plain" else f"network {info.network}"


def starting_text(network: str) -> str:
    """Before the first step; a compiled network makes the first run wait, so the wait is announced."""
    if network.startswith("compiled"):
        return "starting… (compiling the network: a first run takes tens of seconds)"
    return "starting…"


def running_text(network: str = "") -> str:
    """The run-state label while a run is going (``network``: its ``network_summary``)."""
    return f"running ({network}) — {NEXT_RUN_NOTE}" if network else f"running — {NEXT_RUN_NOTE}"


def calls_text(calls: int) -> str:
    """A run's model calls (NFE), in words."""
    return f"{calls} model call" + ("" if calls == 1 else "s")


def timestep_text(t) -> str:
    """A timestep as the window writes it: an integer as it is, a fractional one (the sigma-space solvers') with
    two decimals."""
    t = float(t)
    return str(int(t)) if t.is_integer() else f"{t:.2f}"


def progress_text(done: int, total: int, rate: float, model_calls: int | None = None) -> str:
    """While a run goes: its steps (one per solver step, as the progress bar counts), the model calls made so
    far (Heun's steps make two), the step rate and what is left."""
    eta = (total - done) / rate if rate > 0 else 0.0
    calls = f" · {calls_text(model_calls)}" if model_calls is not None else ""
    return f"step {done}/{total}{calls} · {rate:.1f} it/s · ETA {eta:.1f} s"


def finished_text(steps_done: int, seconds: float, network: str = "", store=None,
                  model_calls: int | None = None) -> str:
    rate = steps_done / seconds if seconds > 0 else 0.0
    calls = f", {calls_text(model_calls)}" if model_calls is not None else ""
    return (f"done: {steps_done} steps{calls} in {seconds:.1f} s ({rate:.1f} it/s)"
            + (f" · {network}" if network else "") + (f" · {store_summary(store)}" if store else ""))


def cancelled_text(message: str, model_calls: int | None = None) -> str:
    calls = f" ({calls_text(model_calls)})" if model_calls is not None else ""
    return f"{message}{calls}; the steps done are kept"


def failed_message(message: str, steps_kept: int) -> str:
    """The banner's message for a failed run: what went wrong, and that the steps before it stay."""
    return message + (f" — the {steps_kept} steps before it are kept" if steps_kept else "")


FAILED_STATUS = "the run failed"
CANCELLING_STATUS = "cancelling after the model call in progress…"


# --- opening a checkpoint in the background (studio.gui.model_loading) ---------------------------------------------
LOAD_READING = "reading the file"
LOAD_WAITING = "waiting for the load it replaced to stop"
LOAD_BUILDING = "building the network"
LOAD_READY = "ready"


def loading_text(name: str, stage: str, done: int = 0, total: int = 0) -> str:
    """The model panel's line while ``name`` opens: its stage, and the bytes read when they are known."""
    if stage == LOAD_READING and total > 0:
        return f"Opening {name}: {stage}, {done / 2**20:.0f} of {total / 2**20:.0f} MiB"
    return f"Opening {name}: {stage}…"


def opening_status(name: str, current: str | None) -> str:
    """The status bar when a background open starts: the open model stays usable until the new one is ready."""
    kept = f"; {current} stays open and usable until it is ready" if current else ""
    return f"opening {name}…{kept} (Cancel or Esc abandons it)"


def open_cancelled_status(name: str, current: str | None) -> str:
    return f"stopped opening {name}" + (f"; {current} stays open" if current else "")


def open_failed_text(name: str, exc: BaseException, expected: bool) -> str:
    """The banner's one message for a checkpoint that did not open (``expected``: a StudioError, which says what
    is wrong with the file; anything else keeps its type name for a bug report)."""
    return (f"Could not open {name}: {exc}" if expected
            else f"Could not open {name}: unexpected {type(exc).__name__}: {exc}")
