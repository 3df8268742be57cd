"""Take screenshots of the window during and after a run, for the README and for looking at the window.

    xvfb-run -a -s "-screen 0 1600x1000x24" python -m studio.gui.screenshot docs/screenshot.png [CHECKPOINT]

Writes NAME.png after the run and NAME-during.png part-way through it. Settings are kept in a temporary
folder so the screenshot never depends on (or changes) the user's own.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio.gui.screenshot")
    parser.add_argument("out", help="PNG to write after the run (NAME-during.png is written too)")
    parser.add_argument("checkpoint", nargs="?", help="checkpoint path or bundled name (default: digits)")
    parser.add_argument("--size", default="1500x920", help="window size, WIDTHxHEIGHT")
    parser.add_argument("--sampler", help="sampler to choose in the Sampler panel (default: as the panel starts)")
    parser.add_argument("--karras", action="store_true", help="tick Karras sigmas (samplers that have them)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--focus", type=int, default=5, help="sample to show in the focus view")
    args = parser.parse_args(argv)

    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, tempfile.mkdtemp(prefix="studio-shot-"))
    app = QApplication.instance() or QApplication([sys.argv[0]])
    from .main_window import MainWindow

    window = MainWindow(args.checkpoint)
    width, height = (int(v) for v in args.size.split("x"))
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
    QTimer.singleShot(800, window.generate)   # let the window settle at its size first
    app.exec()
    for path, size in shots.items():
        if path != "during":
            print(f"wrote {path} ({size[0]}x{size[1]})")
    return 0 if args.out in shots else 1


if __name__ == "__main__":
    sys.exit(main())
