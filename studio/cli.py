"""`studio`: the window (``studio`` or ``studio PATH``) and the headless commands (``studio COMMAND ...``).

Each command lives in its own module under ``studio.commands`` (or ``studio.train``) exposing
``add_arguments(parser)`` and ``run(args) -> int``; modules are imported only when their command runs, so
``studio info`` never pays for torch-heavy imports it does not need. Expected failures print one line
``error: ...`` on stderr and exit 2; Ctrl+C exits 130 ("interrupted"). A headless command treats SIGTERM
(``kill``, a job scheduler, torchrun stopping its workers) as Ctrl+C, so files being written are cleaned up the
same way, and exits 143 = 128 + SIGTERM ("terminated"), the code a shell reports for a process SIGTERM ended.
A second SIGTERM during that clean-up ends the process at once (what it leaves, the next run removes).

A first argument that is neither a command, an option, an existing path, a bundled model's name, nor looks like
a path (a folder separator or a file suffix) is a mistyped command: one ``error:`` line naming the commands,
not a window.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import os
import signal
import sys
import threading
from pathlib import Path

# command -> (module, one-line help)
COMMANDS = {
    "sample": ("studio.commands.sample", "sample from a checkpoint headless and write the results to a folder"),
    "invert": ("studio.commands.invert", "DDIM-invert an image to x_T and reconstruct it"),
    "info": ("studio.commands.info", "print a checkpoint's model card"),
    "grid": ("studio.commands.grid", "final samples over two settings (an X/Y grid), the same noise in every cell"),
    "study": ("studio.commands.study", "compare samplers, step counts and etas on the same seeds, with metrics"),
    "train": ("studio.train.command", "train one of the studio's networks with the DDPM objective"),
}


INTERRUPTED_EXIT = 130   # Ctrl+C (SIGINT): 128 + 2
TERMINATED_EXIT = 143    # SIGTERM: 128 + 15


class Terminated(KeyboardInterrupt):
    """SIGTERM during a headless command: a KeyboardInterrupt, so everything that cleans up after Ctrl+C (the
    atomic writers' temp files first) runs the same way."""


def _on_sigterm(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)   # a second SIGTERM ends the process without waiting
    raise Terminated()


@contextlib.contextmanager
def sigterm_as_interrupt():
    """While the block runs, SIGTERM raises ``Terminated`` in the main thread; the old handler comes back after."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        yield
        return
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):   # not settable here (an embedding interpreter)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def opens_window(argv: list[str]) -> bool:
    """Whether ``studio ARGV...`` opens the window (``studio``, ``studio PATH``, ``studio NAME``) rather than
    running a command or printing help; a mistyped command (``studio frobnicate``) is not a window."""
    if not argv:
        return True
    first = argv[0]
    if first in COMMANDS or first.startswith("-"):
        return False
    return _names_a_checkpoint(first)


def _names_a_checkpoint(text: str) -> bool:
    """An existing path, a bundled model's name, or something written as a path (the window then says what is
    wrong with it): a folder separator, a leading ~, or a file suffix such as .safetensors."""
    from .core import bundled

    if bundled.bundled_by_name(text) is not None:
        return True
    explicit = getattr(bundled, "bundled_of_source", None)   # "bundled:NAME", where the studio knows that form
    if explicit is not None and explicit(text) is not None:
        return True
    separators = {"/", os.sep, *([os.altsep] if os.altsep else [])}
    if any(sep in text for sep in separators) or text.startswith("~") or Path(text).suffix:
        return True
    try:
        return Path(text).exists()
    except (OSError, ValueError):   # a name the file system cannot even look up
        return False


def unknown_command_message(text: str) -> str:
    """The one line for ``studio TEXT`` when TEXT is not a command nor names a checkpoint."""
    from .core.bundled import BUNDLED

    message = f"{text!r} is not a command nor a checkpoint; the commands are {', '.join(COMMANDS)}"
    close = difflib.get_close_matches(text, [*COMMANDS, *(m.name for m in BUNDLED)], n=1, cutoff=0.6)
    if close:
        message += f" (did you mean {close[0]!r}?)"
    return message + "; `studio PATH` or `studio NAME` opens the window on a checkpoint"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, as every other bad input
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="studio", description="Sampling Studio: look inside DDPM/DDIM diffusion sampling. "
                     "With no command, opens the window (optionally on CHECKPOINT).")
    parser.add_argument("--version", action="version", version=f"studio {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module_name)
        if name == selected:  # only the command that runs is imported
            _load(module_name).add_arguments(p)
    return parser


def _load(module_name: str):
    return importlib.import_module(module_name)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from .core.allocator import keep_freed_memory

    keep_freed_memory()   # the commands sample in this main thread; the window's GUI thread stores and paints in it
    if argv and argv[0] == "--smoke-test":   # hidden: open the window offscreen, generate once, exit (packaging/)
        from .gui.smoke import main as smoke_main

        return smoke_main(argv[1:])
    if opens_window(argv):
        from .gui.app import main as gui_main  # the window: `studio` or `studio PATH`

        return gui_main(argv)
    if argv[0] not in COMMANDS and not argv[0].startswith("-"):
        print(f"error: {unknown_command_message(argv[0])}", file=sys.stderr)
        return 2
    from .core.errors import StudioError

    try:
        with sigterm_as_interrupt():
            args = build_parser(argv[0]).parse_args(argv)
            if args.command is None:
                build_parser().print_help()
                return 0
            return int(_load(args._module).run(args) or 0)
    except StudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Terminated:
        print("terminated", file=sys.stderr)
        return TERMINATED_EXIT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT
    except BrokenPipeError:  # `studio info x | head`: the reader left; nothing to report
        return 0


if __name__ == "__main__":
    sys.exit(main())
