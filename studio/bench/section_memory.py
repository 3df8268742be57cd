"""Section 4: what the trajectory store keeps per frame against the raw uint8 pictures, its budget and fallback,
the peak memory of a long DDPM run (1000 steps, batch 16, digits) in a fresh process, and growth over
repeated runs."""

from __future__ import annotations

from ..core.preview import tile_channels
from ..core.trajectory import DEFAULT_BUDGET_BYTES, TrajectoryStore
from .table import Row
from .timing import median
from .workspace import Workspace

RATIO_GOAL = 1.1
GROWTH_GOAL_MIB = 1.0
PICTURES_PER_STEP = 3   # x_t, x0_pred, eps_pred


def store_ratio(section: int, name: str, channels: int, side: int, batch: int, steps: int) -> Row:
    """Bytes the store holds per step over the raw uint8 bytes of the same pictures (C channels each)."""
    store = TrajectoryStore(steps, batch, tile_shape=(side, side), channels=tile_channels(channels))
    per_step = store.nbytes / steps
    raw = PICTURES_PER_STEP * batch * side * side * channels   # the pictures' own uint8 bytes: 1 per grey pixel
    return Row(section, f"trajectory store bytes per step / raw uint8 · {name}", per_step / raw, "x", RATIO_GOAL,
               detail=f"{per_step:.0f} B per step vs {raw} B raw ({PICTURES_PER_STEP} pictures of "
                      f"{batch}x{channels}x{side}x{side})")


def rows(ws: Workspace, section: int = 4) -> list[Row]:
    sizes = ws.sizes
    out = [
        store_ratio(section, f"digits 1x8x8 b{sizes.memory_batch}", 1, 8, sizes.memory_batch, sizes.memory_steps),
        store_ratio(section, "RGB 3x32x32 b4", 3, 32, 4, sizes.memory_steps),
    ]
    tight = TrajectoryStore(sizes.memory_steps, sizes.memory_batch, tile_shape=(8, 8), channels=1,
                            budget_bytes=sizes.memory_steps * 3 * sizes.memory_batch * 8 * 8 // 10)
    out.append(Row(section, "default trajectory budget (past it: keyframes)", DEFAULT_BUDGET_BYTES / 2**20, "MiB",
                   detail=f"at a tenth of the bytes needed the store {tight.describe()}"))
    result = ws.trajectory
    raw_ratio = result["store_bytes"] / (result["steps"] * PICTURES_PER_STEP * result["batch"] * 8 * 8)
    run = f"DDPM {result['steps']} steps · digits b{result['batch']}"
    out.append(Row(section, f"peak resident memory · {run} with previews + store", result["peak_mib"], "MiB",
                   detail=f"resident before the run {result['resident_before_mib']:.0f} MiB (torch, model), so the run "
                          f"adds {result['peak_mib'] - result['resident_before_mib']:.1f} MiB; store "
                          f"{result['store_bytes'] / 2**20:.1f} MiB ({raw_ratio:.3f} x its raw grey uint8 frames); "
                          f"run {result['seconds']:.1f} s"
                          + ("" if result["peak_is_the_runs"] else "; peak since the process began"), extra=result))
    resident = result["resident_after_runs_mib"]
    if len(resident) >= 2:
        growth = median([b - a for a, b in zip(resident, resident[1:])])   # a one-off first growth is no leak
        out.append(Row(section, f"median resident memory growth per repeated run (DDPM {result['repeated_steps']} steps)",
                       growth, "MiB", GROWTH_GOAL_MIB,
                       detail=f"after each run: {', '.join(f'{r:.1f}' for r in resident)} MiB"))
    return out
