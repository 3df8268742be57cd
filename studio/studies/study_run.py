"""Run a study: its cells share model calls, each cell's metrics are written the moment it ends, and a study
run again with the same arguments and folder takes up where it stopped.

    rows = run_study(job, progress=True)

The folder: ``study-plan.json`` (what defines the study: a folder holding another study is refused),
``cells/KEY.npy`` (a cell's final samples) and ``cells/KEY.json`` (its settings, record, seconds and metrics;
written after the samples, so a cell whose json exists is done), ``ode-reference.npy`` and ``.json`` (the
converged solution of the same x_T, made once, and how), then ``study.csv``, ``study.json`` and ``study.png`` (``study_files``).

Cells run through ``studio.core.shared_calls.run_cells``: cells of the same length side by side in each forward
pass (``rows`` rows), the longest first. A cell's record says the rows and offset its samples were made in, so
each can be made again alone, bit for bit (``cell_settings_alone``).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..core.atomic import atomic_path
from ..core.errors import SettingsError
from ..core.shared_calls import Cancelled, Cell, cell_length, cell_rows, planned_offsets, run_cells
from .study_metrics import StudyMetrics
from .study_plan import StudyCell

MAX_ROWS = 1024              # rows per shared forward pass at most (cells are never split)
REFERENCE_SOLVER = "dpmpp_2m"
REFERENCE_MAX_STEPS = 500    # the ODE reference of a network model: DPM-Solver++(2M), trailing, this many steps
MIXTURE_REFERENCE_STEPS = 200    # RK4 steps of the analytic mixture's exact ODE solution (half: its check)


@dataclass
class StudyJob:
    model: object
    cells: list[StudyCell]
    metrics: StudyMetrics
    num_samples: int
    seed: int
    out: Path
    plan: dict                       # what defines the study (study-plan.json)
    rows: int | None = None          # rows per shared pass (None: chosen from the cells)
    classifier: object | None = None  # classifier guidance's
    mixture_network: object | None = None   # the analytic mixture's exact eps (its ODE reference is exact)
    reference_settings: object | None = None   # the sampler settings of the ODE reference run
    reference_path: str | None = None    # reference samples for swd / frechet (read by ``prepare_job``)
    judge: object | None = None          # a classifier class_share counts with (None: the default judge)
    notes: list = field(default_factory=list)


def shared_rows(job: StudyJob) -> int:
    """Rows per pass: the cells of the most common length side by side (they end together), within MAX_ROWS,
    never fewer than the largest cell's."""
    needs = [_need(job, cell) for cell in job.cells]
    if job.rows:
        if job.rows < max(needs):
            raise SettingsError(f"--rows {job.rows} cannot hold one cell's {max(needs)} rows")
        return job.rows
    same_length = max(Counter(cell.model_calls for cell in job.cells).values())
    return max(max(needs), min(MAX_ROWS, same_length * max(needs)))


def _need(job: StudyJob, cell: StudyCell) -> int:
    from ..core.guidance import rows_per_model_call
    return rows_per_model_call(cell.settings.guidance, job.num_samples)


def check_folder(job: StudyJob) -> None:
    """Refuse a folder that holds another study; write this study's plan into a new one."""
    path = job.out / "study-plan.json"
    if path.is_file():
        try:
            before = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise SettingsError(f"{path} cannot be read ({exc}): remove it or choose another --out") from None
        if before != job.plan:
            changed = sorted(k for k in set(before) | set(job.plan) if before.get(k) != job.plan.get(k))
            raise SettingsError(f"{job.out} holds a study with other arguments ({', '.join(changed)}): run it "
                                f"with the same arguments to go on, or choose another --out")
    else:
        _write_json(path, job.plan)


@dataclass(frozen=True)
class StudySplit:
    """This process's place among the processes torchrun started (one process: the default)."""
    rank: int = 0
    world_size: int = 1
    barrier: Callable[[], None] = lambda: None   # every process waits here for the others

    def share(self, cells: list[Cell], rows: int) -> list[int]:
        """The indices of ``cells`` this process runs: longest first, each to the process with the least work
        (model calls times rows) so far; the same answer in every process."""
        load = [0] * self.world_size
        mine = []
        for index in sorted(range(len(cells)), key=lambda i: -cell_length(cells[i])):
            rank = min(range(self.world_size), key=lambda r: (load[r], r))
            load[rank] += cell_length(cells[index]) * cell_rows(cells[index])
            if rank == self.rank:
                mine.append(index)
        return sorted(mine)


def run_study(job: StudyJob, progress: bool = True, *, cancel=None, on_row=None, on_calls=None,
              on_stage=None, split: StudySplit | None = None) -> list[dict]:
    """Run the cells not done yet, then return every cell's row (settings, calls, seconds, metrics).

    For a window: ``cancel`` (a threading.Event) stops the study within one model call (raising
    ``studio.core.shared_calls.Cancelled``; the cells done stay in the folder), ``on_row(row)`` is called as each
    cell's row is written (and at once for cells done before), ``on_calls(done, total)`` after each shared pass,
    ``on_stage(text)`` as the ODE reference and the cells start.

    Across processes (``split``): rank 0 makes the ODE reference while the others wait, then each process runs
    its share of the cells not done, each cell in the rows of the calls one process would have given it
    (``planned_offsets``), so its samples are a single process's bit for bit (on as many CPU threads); after a
    last wait every process reads every cell's row."""
    from tqdm import tqdm

    split = split or StudySplit()
    check_folder(job)
    cells_dir = job.out / "cells"
    cells_dir.mkdir(exist_ok=True)
    todo = [cell for cell in job.cells if not (cells_dir / f"{cell.key}.json").is_file()]
    if on_row is not None:
        for cell in job.cells:
            if cell not in todo:
                on_row(json.loads((cells_dir / f"{cell.key}.json").read_text()))
    reference = None
    if _needs_reference(job):
        if on_stage is not None:
            on_stage("making the ODE reference (the converged solution of the same x_T)")
        if split.rank == 0:
            reference = ode_reference(job, progress, cancel)
        split.barrier()   # (every process has read which cells are done before any cell is written)
        if split.rank != 0:
            reference = ode_reference(job, False, cancel)   # rank 0's, read from the folder
    else:
        split.barrier()
    if todo:
        rows = shared_rows(job)
        seeds = [job.seed + i for i in range(job.num_samples)]
        all_cells = [Cell(cell.settings.replace(batch_size=job.num_samples), seeds, job.classifier) for cell in todo]
        offsets = planned_offsets(all_cells, rows) if split.world_size > 1 else None
        mine = split.share(all_cells, rows) if split.world_size > 1 else list(range(len(todo)))
        todo = [todo[i] for i in mine]
        calls = sum(cell.model_calls for cell in todo)
        done_before = len(job.cells) - len(all_cells)
        if on_stage is not None:
            on_stage(f"running {len(todo)} cells ({calls} model calls, {rows} rows per shared call)")
        with tqdm(total=calls, desc=f"study ({done_before}/{len(job.cells)} cells done before)", unit="call",
                  file=sys.stderr, disable=not progress, dynamic_ncols=True) as bar:
            def finished(index, outcome):
                row = _write_cell(job, todo[index], outcome, reference)
                if on_row is not None:
                    on_row(row)

            served_so_far = [0]   # (a disabled bar counts nothing)

            def passed(served):
                bar.update(served)
                served_so_far[0] += served
                if on_calls is not None:
                    on_calls(served_so_far[0], calls)

            run_cells(job.model, [all_cells[i] for i in mine], rows=rows, cancel=cancel, on_cell_done=finished,
                      on_pass=passed, offsets=None if offsets is None else [offsets[i] for i in mine])
    split.barrier()
    return [json.loads((cells_dir / f"{cell.key}.json").read_text()) for cell in job.cells]


def _needs_reference(job: StudyJob) -> bool:
    return "ode_error" in job.metrics.names and any(cell.deterministic for cell in job.cells)


def _write_cell(job: StudyJob, cell: StudyCell, outcome, reference) -> dict:
    samples = outcome.x.detach().to("cpu", torch.float32).numpy()
    labels = outcome.record.get("class_labels")
    values = job.metrics.measure(samples, labels, reference if cell.deterministic else None)
    row = {
        "key": cell.key, "sampler": cell.sampler, "steps": cell.steps, "eta": cell.eta, "series": cell.series,
        "deterministic": cell.deterministic, "model_calls": outcome.record["model_calls"],
        "seconds": round(outcome.seconds, 4), "num_samples": job.num_samples,
        "metrics": {name: (None if value is None else value.to_dict()) for name, value in values.items()},
        "record": outcome.record,
    }
    folder = job.out / "cells"
    with atomic_path(folder / f"{cell.key}.npy") as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, samples)
    _write_json(folder / f"{cell.key}.json", row)
    return row


def _write_json(path: Path, data) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n")


def ode_reference(job: StudyJob, progress: bool, cancel=None) -> np.ndarray:
    """The converged solution of the probability-flow ODE from the study's x_T (made once, kept in the folder):
    the analytic mixture's by RK4 on its exact denoiser, any other model's by a long DPM-Solver++(2M) run."""
    path, about = job.out / "ode-reference.npy", job.out / "ode-reference.json"
    if path.is_file() and about.is_file():
        job.notes.append(json.loads(about.read_text())["note"])
        return np.load(path, allow_pickle=False)
    from ..core.engine import Run

    # auto: a long run of one batch, where a traced network pays (within 1e-4 of plain, far below any ode_error)
    settings = job.cells[0].settings.replace(sampler=job.reference_settings, batch_size=job.num_samples,
                                             network="auto")
    run = Run(job.model, settings, seeds=[job.seed + i for i in range(job.num_samples)], classifier=job.classifier)
    if job.mixture_network is not None:
        from .solver_error import reference_solution
        first = int(run.timesteps[0])
        alpha_bar = float(job.mixture_network.alpha_bar[first])
        sigma_start = math.sqrt((1 - alpha_bar) / alpha_bar)
        x_T = run.x_T.reshape(run.x_T.shape[0], -1)
        run.close()
        rows = reference_solution(job.mixture_network, x_T, sigma_start, MIXTURE_REFERENCE_STEPS).numpy()
        half = reference_solution(job.mixture_network, x_T, sigma_start, MIXTURE_REFERENCE_STEPS // 2).numpy()
        job.notes.append(f"ODE reference: RK4 on the exact denoiser, {MIXTURE_REFERENCE_STEPS} steps in log sigma; "
                         f"with half the steps it moves by {np.abs(rows - half).max():.1e} at most")
    else:
        started = time.perf_counter()
        x = run.x_T
        for step in run:
            if cancel is not None and cancel.is_set():
                run.close()
                raise Cancelled("the study was cancelled while its ODE reference was made")
            x = step.x_t
        rows = x.detach().to("cpu", torch.float64).reshape(x.shape[0], -1).numpy()
        job.notes.append(f"ODE reference: {REFERENCE_SOLVER} {job.reference_settings.steps} steps "
                         f"({time.perf_counter() - started:.1f} s)")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, rows)
    _write_json(about, {"note": job.notes[-1]})
    return rows
