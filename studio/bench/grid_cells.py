"""Section 1's grid row: the cells of a grid sharing their model calls (``studio.core.shared_calls``) against the
same cells run one by one, each in calls of its own batch (what a loop over settings does).

The grid is the DDIM paper's Table 1 in small: DDIM at a few step counts for eta 0 and 1, on the digits UNet,
each cell a batch of the same seeds. Both sides run the plain network, on the same threads, interleaved round
by round; the row reports the median of the paired ratios (grid / one by one), and the detail the forward
passes each side made. Cells of different lengths share passes only while they all run: the longest cells end
alone, so the saving grows with how alike the cells' lengths are.
"""

from __future__ import annotations

from ..core.engine import Run
from ..core.samplers import DDIMSettings
from ..core.settings import CLASS_CYCLE, RunSettings
from ..core.shared_calls import Cell, run_cells
from .table import Row
from .timing import describe, paired_ratio, side_by_side
from .workspace import Workspace

GOAL = 0.80   # a grid should cost at most this share of its cells run one by one


def grid_cells(ws: Workspace) -> list[Cell]:
    sizes = ws.sizes
    steps = (sizes.ddim_steps // 5 or 1, sizes.ddim_steps // 2 or 1, sizes.ddim_steps) if sizes.repeats > 1 else \
        (2, sizes.ddim_steps)
    batch = max(1, sizes.digits_batch // 4)
    return [Cell(RunSettings(sampler=DDIMSettings(steps=count, eta=eta), batch_size=batch, class_label=CLASS_CYCLE,
                             device=ws.device, network="plain"))
            for count in steps for eta in (0.0, 1.0)]


def grid_row(ws: Workspace, section: int) -> Row:
    digits = ws.digits
    cells = grid_cells(ws)
    rows = sum(cell.settings.batch_size for cell in cells)
    passes = {"grid": 0, "one by one": 0}

    def shared():
        outcomes = run_cells(digits, cells, rows=rows)
        passes["grid"] = max(outcome.record["model_calls"] for outcome in outcomes)

    def one_by_one():
        calls = 0
        for cell in cells:
            run = Run(digits, cell.settings.replace(model_batch=0))
            for _ in run:
                pass
            calls += run.record()["model_calls"]
        passes["one by one"] = calls

    seconds = side_by_side({"grid": shared, "one by one": one_by_one}, ws.sizes.repeats)
    ratio = paired_ratio(seconds, "grid", "one by one")
    shape = ", ".join(sorted({f"DDIM {c.settings.sampler.steps}" for c in cells}, key=lambda s: int(s.split()[1])))
    return Row(section, f"grid sharing calls / its cells one by one · {len(cells)} cells ({shape}; eta 0, 1) · "
                        f"b{cells[0].settings.batch_size} each", ratio, "x", GOAL,
               detail=f"{describe(seconds, 'grid', 'one by one')}; forward passes: grid {passes['grid']} of {rows} "
                      f"rows, one by one {passes['one by one']} of {cells[0].settings.batch_size}",
               extra={"seconds": seconds, "passes": passes, "rows": rows})
