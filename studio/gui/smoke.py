"""``studio --smoke-test``: open the window, press Generate once, check the previews got pixels, exit.

It proves that an installed or frozen studio (``pipx install``, the PyInstaller folder) can start Qt, find its
bundled model, sample on a background thread and paint the result. Runs offscreen unless QT_QPA_PLATFORM says
otherwise; the user's settings are neither read nor changed (QSettings point at a temporary folder).

Prints one line ``smoke test passed: ...`` and exits 0, or one line ``error: ...`` on stderr and exits 1 (no
application icon, a model that does not open, a failed or cancelled run, an error shown in the window, previews
without pixels, or no result within --timeout).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

MIN_STD = 5.0   # a grid of samples is far from one flat colour; a blank or flat paint is close to 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="studio --smoke-test",
                                     description="Open the window offscreen, generate once, check the previews, exit.")
    parser.add_argument("checkpoint", nargs="?", default=None,
                        help="image checkpoint path or bundled name (default: the bundled digits model)")
    parser.add_argument("--steps", type=int, default=10, help="sampler steps (default 10)")
    parser.add_argument("--batch", type=int, default=4, help="batch size (default 4)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before giving up (default 120)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    started = time.perf_counter()
    try:
        message = _run(args, started)
    except _Failure as exc:
        print(f"error: smoke test failed: {exc}", file=sys.stderr)
        return 1
    print(f"smoke test passed: {message}")
    return 0


class _Failure(Exception):
    pass


def _run(args, started: float) -> str:
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QAbstractButton, QApplication

    settings_dir = tempfile.TemporaryDirectory(prefix="studio-smoke-")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, settings_dir.name)
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "studio"])

    from . import MainWindow   # imported here: `studio --help` and the CLI never pay for the window
    from .icon import application_icon, icon_dir

    icon = application_icon()
    if icon.isNull() or not icon.availableSizes():
        raise _Failure(f"the application icon is missing (looked in {icon_dir()})")
    app.setWindowIcon(icon)
    window = MainWindow(args.checkpoint)
    errors: list[str] = []
    outcome: list = []
    window.error_shown.connect(errors.append)
    try:
        if window.error_banner.message():   # the checkpoint asked for did not open
            raise _Failure(window.error_banner.message().replace("\n", " "))
        if window.denoiser is None:
            from ..core.bundled import resources_dir

            raise _Failure(f"no model opened (bundled models are looked for in {resources_dir()})")
        window.sampler_panel.steps_spin.setValue(args.steps)
        window.seed_panel.batch_spin.setValue(args.batch)
        window.show()

        def finished(result) -> None:
            outcome.append(result)
            app.exit(0)

        def timed_out() -> None:
            app.exit(1)

        window.run_finished.connect(finished)
        QTimer.singleShot(int(args.timeout * 1000), timed_out)
        button = window.findChild(QAbstractButton, "generateButton")
        if button is None or not button.isEnabled():
            raise _Failure("the Generate button is missing or disabled")
        QTimer.singleShot(0, button.click)
        app.exec()
        if not outcome:
            raise _Failure(f"no result within {args.timeout:g} s")
        result = outcome[0]
        if result.status != "finished":
            raise _Failure(f"the run {result.status}: {result.message or (errors[-1] if errors else '')}")
        if errors:
            raise _Failure(f"the window showed an error: {errors[-1]}")
        app.processEvents()
        shown = [f"{name} {_check_pane(name, pane)}"
                 for name, pane in (("x_t", window.preview_xt), ("x0_pred", window.preview_x0))]
        return (f"{window.card.name} ({window.source}): {args.steps} steps x {args.batch} samples in "
                f"{time.perf_counter() - started:.1f} s; previews: {', '.join(shown)}; "
                f"icon: {len(icon.availableSizes())} sizes")
    finally:
        window.close()
        window.deleteLater()
        app.processEvents()
        settings_dir.cleanup()


def _check_pane(name: str, pane) -> str:
    """What a preview shows, or _Failure when it shows nothing."""
    if pane.vector_mode:   # 2-D models: a scatter of the batch's particles
        xs, ys = pane.scatter.points.getData()
        if xs is None or len(xs) == 0:
            raise _Failure(f"the {name} preview shows no points")
        return f"{len(xs)} points"
    image = pane.grid.grid_image()
    if image is None or image.size == 0:
        raise _Failure(f"the {name} preview shows no image")
    std = float(image.std())
    if std < MIN_STD:
        raise _Failure(f"the {name} preview is flat (pixel std {std:.2f})")
    return f"{image.shape[1]}x{image.shape[0]} px, std {std:.1f}"


if __name__ == "__main__":
    sys.exit(main())
