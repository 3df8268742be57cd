"""Resident memory while the window swaps two large checkpoints, opened in the background as a person opens them.

    python -m studio.bench.model_swaps [--swaps 20] [--base-channels 128] [--folder DIR] [--json OUT.json]

Writes two studio checkpoints of the studio's own UNet (32x32 RGB, DDPM's CIFAR-10 shape: base 128 channels,
channel_mult 1,2,2,2, two ResBlocks a level, attention at 16: about 36 M parameters, 140 MiB of float32
each), opens the window offscreen, opens the first, then swaps between the two ``--swaps`` times with
``MainWindow.load_checkpoint`` (studio.gui.model_loading), each waited for on its ``finished`` signal. For each
swap it prints the peak resident memory during the swap (the high-water mark, reset before it) and the resident
memory after it; then what the figures mean against the size of one model. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from .process_memory import peak_mib, reset_peak, resident_mib
from .qt_setup import application


def write_models(folder: Path, base_channels: int) -> list[Path]:
    from ..core.checkpoints import save_studio_checkpoint
    from ..core.models.card import ModelCard
    from ..core.models.networks import build_network

    paths = []
    for index, name in enumerate(("swap-a", "swap-b")):
        architecture = {"name": "unet", "config": {"image_size": 32, "in_channels": 3, "base_channels": base_channels,
                                                    "channel_mult": [1, 2, 2, 2], "num_res_blocks": 2,
                                                    "attention_resolutions": [16], "norm_groups": 32}}
        card = ModelCard(name=name, data_kind="image", data_shape=(3, 32, 32), num_train_timesteps=1000,
                         architecture=architecture)
        path = folder / f"{name}.safetensors"
        if not path.is_file():
            import torch

            torch.manual_seed(index)
            save_studio_checkpoint(path, build_network(architecture), card)
        paths.append(path)
    return paths


def wait_for_load(window, app, source: Path, timeout_s: float = 600.0) -> float:
    """Start a background open of ``source`` and run the event loop until it has ended; its seconds."""
    from PySide6.QtCore import QEventLoop, QTimer

    result = {}
    loop = QEventLoop()

    def ended(got, ok):
        result["ok"] = ok
        loop.quit()

    window.loading.finished.connect(ended)
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    started = time.perf_counter()
    window.load_checkpoint(source)
    loop.exec()
    seconds = time.perf_counter() - started
    window.loading.finished.disconnect(ended)
    if not result.get("ok"):
        raise SystemExit(f"could not open {source}: {window.error_banner.message() or 'timed out'}")
    window.loading.wait_idle()   # the load's thread has let go of what it built
    app.processEvents()
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio.bench.model_swaps", description=__doc__.splitlines()[0])
    parser.add_argument("--swaps", type=int, default=20)
    parser.add_argument("--base-channels", type=int, default=128)
    parser.add_argument("--folder", type=Path, default=None, help="where the two checkpoints are written (kept)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    if not sys.platform.startswith("linux"):
        print("reads resident memory from /proc: Linux only", file=sys.stderr)
        return 2
    folder = args.folder or Path(tempfile.mkdtemp(prefix="studio-swaps-"))
    folder.mkdir(parents=True, exist_ok=True)
    app = application(folder / "qsettings")
    paths = write_models(folder, args.base_channels)
    model_mib = os.path.getsize(paths[0]) / 2**20
    from ..gui.main_window import MainWindow

    gc.collect()
    window = MainWindow(open_default=False)
    window.show()
    app.processEvents()
    empty = resident_mib()
    reset_peak()
    first_s = wait_for_load(window, app, paths[0])
    one_model = resident_mib()
    first_peak = peak_mib()
    print(f"one model file: {model_mib:.1f} MiB; window without a model {empty:.1f} MiB; after opening the first "
          f"{one_model:.1f} MiB (peak {first_peak:.1f} MiB, {first_s:.2f} s)")
    swaps = []
    for swap in range(args.swaps):
        reset_peak()
        seconds = wait_for_load(window, app, paths[(swap + 1) % 2])
        gc.collect()
        swaps.append({"swap": swap + 1, "peak_mib": round(peak_mib(), 1), "after_mib": round(resident_mib(), 1),
                      "seconds": round(seconds, 2)})
        print(f"swap {swap + 1:2d} to {window.card.name}: peak {swaps[-1]['peak_mib']:.1f} MiB, after "
              f"{swaps[-1]['after_mib']:.1f} MiB, {seconds:.2f} s")
    peaks = [s["peak_mib"] for s in swaps]
    after = [s["after_mib"] for s in swaps]
    summary = {
        "model_file_mib": round(model_mib, 1), "empty_window_mib": round(empty, 1),
        "one_model_mib": round(one_model, 1), "first_open_peak_mib": round(first_peak, 1),
        "max_swap_peak_mib": max(peaks), "max_swap_peak_over_one_model_mib": round(max(peaks) - one_model, 1),
        "after_first_swap_mib": after[0], "after_last_swap_mib": after[-1],
        "growth_swap_1_to_last_mib": round(after[-1] - after[0], 1), "swaps": swaps,
    }
    print(f"peak during a swap: {max(peaks):.1f} MiB, {max(peaks) - one_model:.1f} MiB over one open model "
          f"({(max(peaks) - one_model) / model_mib:.2f} x one model file); resident after swap 1 {after[0]:.1f} "
          f"MiB, after swap {len(after)} {after[-1]:.1f} MiB (growth {after[-1] - after[0]:+.1f} MiB)")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
