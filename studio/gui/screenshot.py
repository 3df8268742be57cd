"""Take screenshots of the window during and after a run, for the README and for looking at the window.

    xvfb-run -a -s "-screen 0 1600x1000x24" python -m studio.gui.screenshot docs/screenshot.png [CHECKPOINT]

Writes NAME.png after the run and NAME-during.png part-way through it (and NAME-start.png before it, with
``--start``). Settings are kept in a temporary folder so the screenshot never depends on (or changes) the
user's own.

``--size WIDTHxHEIGHT`` (or ``laptop``: 1280x720, ``full-hd``: 1920x1080) sizes the window; the X screen must be at
least that large (``-screen 0 1920x1080x24``). A window that cannot take the size (its minimum is larger) is
reported and the command fails: the layout no longer fits that screen.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile


SIZES = {"laptop": (1280, 720), "full-hd": (1920, 1080)}   # the sizes the window's layout is checked at
DEFAULT_SIZE = "1500x920"


def window_size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` or a name of SIZES -> (width, height)."""
    if text in SIZES:
        return SIZES[text]
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT (e.g. 1280x720) or one of "
                                         f"{', '.join(SIZES)}, got {text!r}") from None
    if width <= 0 or height <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return width, height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio.gui.screenshot")
    parser.add_argument("out", help="PNG to write after the run (NAME-during.png is written too)")
    parser.add_argument("checkpoint", nargs="?", help="checkpoint path or bundled name (default: digits)")
    parser.add_argument("--size", type=window_size, default=DEFAULT_SIZE,
                        help=f"window size, WIDTHxHEIGHT or {' / '.join(SIZES)} (default {DEFAULT_SIZE})")
    parser.add_argument("--sampler", help="sampler to choose in the Sampler panel (default: as the panel starts)")
    parser.add_argument("--karras", action="store_true", help="tick Karras sigmas (samplers that have them)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--focus", type=int, default=5, help="sample to show in the focus view")
    parser.add_argument("--start", action="store_true", help="also write NAME-start.png: the window before the run")
    args = parser.parse_args(argv)

    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, tempfile.mkdtemp(prefix="studio-shot-"))
    app = QApplication.instance() or QApplication([sys.argv[0]])
    from .main_window import MainWindow

    window = MainWindow(args.checkpoint)
    width, height = args.size
    window.resize(width, height)
    window.move(0, 0)
    panel = window.sampler_panel
    if args.sampler:
        index = panel.sampler_combo.findData(args.sampler)
        if index < 0:
            names = (panel.sampler_combo.itemData(i) for i in range(panel.sampler_combo.count()))
            parser.error(f"--sampler must be one of {', '.join(names)}")
        panel.sampler_combo.setCurrentIndex(index)
    panel.karras_check.setChecked(args.karras)
    panel.steps_spin.setValue(args.steps)
    window.seed_panel.batch_spin.setValue(args.batch)
    window.show()
    screen = window.screen().availableGeometry()
    if screen.width() < width or screen.height() < height:
        print(f"the screen is {screen.width()}x{screen.height()}, smaller than the window's {width}x{height}: "
              f"the shots are cut (xvfb-run -s \"-screen 0 {width}x{height}x24\")", file=sys.stderr)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    base, ext = os.path.splitext(args.out)
    during_at = max(1, panel.steps_spin.value() * 2 // 5)
    shots = {}

    def grab(path: str) -> None:
        app.processEvents()
        picture = window.screen().grabWindow(window.winId())
        if picture.save(path):   # QPixmap.save reports failure (a missing folder, ...) only by returning False
            shots[path] = (picture.width(), picture.height())
        else:
            print(f"could not write {path}", file=sys.stderr)

    def on_step(index: int) -> None:
        if index == during_at and "during" not in shots:
            shots["during"] = True
            window.presenter.paint(full=True)   # paint now (plots too) rather than at the next coalesced repaint
            grab(f"{base}-during{ext}")

    def on_done(outcome) -> None:
        window.presenter.focus_sample(min(args.focus, args.batch - 1))
        QTimer.singleShot(300, lambda: (grab(args.out), window.close()))

    window.step_added.connect(on_step)
    window.run_finished.connect(on_done)
    def start() -> None:
        if args.start:
            grab(f"{base}-start{ext}")
        window.generate()

    QTimer.singleShot(800, start)   # let the window settle at its size first
    app.exec()
    for path, size in shots.items():
        if path != "during":
            print(f"wrote {path} ({size[0]}x{size[1]})")
    if args.out in shots and shots[args.out] != (width, height):
        minimum = window.minimumSizeHint()
        print(f"the window is {shots[args.out][0]}x{shots[args.out][1]}, not the {width}x{height} asked for (its "
              f"minimum size is {minimum.width()}x{minimum.height()})", file=sys.stderr)
        return 1
    return 0 if args.out in shots else 1


if __name__ == "__main__":
    sys.exit(main())
