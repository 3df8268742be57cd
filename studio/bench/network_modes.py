"""The network modes side by side on this machine: what ``auto`` weighs (docs/performance.md, "What auto chooses").

    python -m studio.bench.network_modes [--rounds N] [--batches 1,4,16] [--modes plain,channels_last,...]

For the bundled digits and shapes UNets, and a UNet2DModel (3x32x32, blocks 32-64-64) when diffusers is installed,
at each batch: every mode is set up with ``studio.core.acceleration.accelerate`` on a copy of its own (its set-up
seconds and largest difference from plain on the probe batch as it reports them), then each is called on the probe
batch in turn, round after round, in one process (a machine's load then weighs on all alike); a row prints the
median milliseconds per call. A diagnostic beside the bench, not part of its table.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time

import torch

DEFAULT_MODES = ("plain", "channels_last", "traced", "traced_channels_last")


def _networks() -> dict:
    """name -> a function that opens a fresh denoiser of it."""
    from ..core.checkpoints import open_checkpoint

    makers = {"digits UNet": lambda: open_checkpoint("digits"), "shapes UNet": lambda: open_checkpoint("shapes")}
    if importlib.util.find_spec("diffusers") is None:
        return makers

    def unet2d():
        from diffusers import UNet2DModel

        from ..core.checkpoints.diffusers_format import DiffusersUNetNetwork
        from ..core.models.card import ModelCard
        from ..core.models.denoiser import NetworkDenoiser

        torch.manual_seed(0)
        unet = UNet2DModel(sample_size=32, in_channels=3, out_channels=3, layers_per_block=1,
                           block_out_channels=(32, 64, 64), norm_num_groups=8, attention_head_dim=8,
                           down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
                           up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D")).eval()
        return NetworkDenoiser(DiffusersUNetNetwork(unet).eval(), ModelCard(name="unet2d", data_shape=(3, 32, 32)))

    makers["UNet2DModel"] = unet2d
    return makers


def measure(make, batch: int, modes, rounds: int) -> list[dict]:
    """One row per mode: its median and fastest ms per call, set-up seconds and largest difference."""
    from ..core.acceleration import _probe_inputs, accelerate

    built = {}
    for mode in modes:
        denoiser = make()
        done = accelerate(denoiser, mode, batch_size=batch)
        built[mode] = (denoiser, done)
    probe = _probe_inputs(next(iter(built.values()))[0], batch)
    times = {mode: [] for mode in modes}
    with torch.inference_mode():
        for denoiser, _ in built.values():
            denoiser.network(*probe)
        for _ in range(rounds):
            for mode, (denoiser, _) in built.items():
                began = time.perf_counter()
                denoiser.network(*probe)
                times[mode].append(time.perf_counter() - began)
    return [{"mode": mode, "ran": done.mode, "ms": 1e3 * statistics.median(times[mode]),
             "fastest_ms": 1e3 * min(times[mode]), "setup_s": done.seconds, "difference": done.max_difference}
            for mode, (_, done) in built.items()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio.bench.network_modes", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--batches", default="1,4,16")
    parser.add_argument("--modes", default=",".join(DEFAULT_MODES))
    args = parser.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    modes = args.modes.split(",")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; load average "
          f"{open('/proc/loadavg').read().split()[0] if sys.platform.startswith('linux') else '?'}")
    print("| network, rows | " + " | ".join(modes) + " |")
    print("|---|" + "---|" * len(modes))
    for name, make in _networks().items():
        for batch in batches:
            rows = measure(make, batch, modes, args.rounds)
            cells = [f"{r['ms']:.2f} ms ({r['setup_s']:.2f} s, {r['difference']:.1e})" + ("" if r["ran"] == r["mode"]
                     else f" ran {r['ran']}") for r in rows]
            print(f"| {name}, {batch} | " + " | ".join(cells) + " |", flush=True)
    print("each cell: median ms per call (set-up s, largest difference from plain on the probe batch)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
