"""`studio`: the window (``studio`` or ``studio PATH``) and the headless commands (``studio COMMAND ...``).

Each command lives in its own module under ``studio.commands`` (or ``studio.train``) exposing
``add_arguments(parser)`` and ``run(args) -> int``; modules are imported only when their command runs, so
``studio info`` never pays for torch-heavy imports it does not need. Expected failures print one line
``error: ...`` on stderr and exit 2; Ctrl+C exits 130.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command -> (module, one-line help)
COMMANDS = {
    "sample": ("studio.commands.sample", "sample from a checkpoint headless and write the results to a folder"),
    "invert": ("studio.commands.invert", "DDIM-invert an image to x_T and reconstruct it"),
    "info": ("studio.commands.info", "print a checkpoint's model card"),
    "train": ("studio.train.command", "train one of the studio's networks with the DDPM objective"),
}


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
    if not argv or (argv[0] not in COMMANDS and not argv[0].startswith("-")):
        from .gui.app import main as gui_main  # the window: `studio` or `studio PATH`

        return gui_main(argv)
    from .core.errors import StudioError

    try:
        args = build_parser(argv[0]).parse_args(argv)
        if args.command is None:
            build_parser().print_help()
            return 0
        return int(_load(args._module).run(args) or 0)
    except StudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `studio info x | head`: the reader left; nothing to report
        return 0


if __name__ == "__main__":
    sys.exit(main())
