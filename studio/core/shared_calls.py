"""Several runs on one network, their model calls shared: the cells of a grid or a study.

    outcomes = run_cells(denoiser, [Cell(settings_a), Cell(settings_b), ...], rows=64)
    outcomes[i].x      # cell i's final samples
    outcomes[i].record # its Run.record(), with the rows its samples were computed in as ``model_batch``

Each cell is an ordinary ``Run`` (any sampler, guidance, seeds) iterating in a thread of its own, whose denoiser
hands every model call to a coordinator instead of calling the network. Once each cell in progress has asked
(or finished), the coordinator, in the calling thread, makes one forward pass of all their rows, each row at its
own cell's timestep, and hands each cell its rows back. So a grid of K cells of B samples costs about as many
forward passes as its longest cell, each on up to ``rows`` rows, instead of K times as many on B rows.

Exactness. Every call has exactly ``rows`` rows, and each cell keeps the same rows of it (from ``row_offset``) from
its first call to its last: when a cell finishes, a waiting cell takes free rows, and rows no cell holds are
copies of the first. A row's bits depend on the shape of the call, the row's place in it and the CPU threads,
never on what the other rows hold (``studio.core.models.fixed_batch``), so a cell's samples are those of the same
run made alone in calls of ``rows`` rows with its rows at that offset, on the coordinator's threads: its record
says so (``model_batch``, ``row_offset``, ``threads``), and a recipe made from it comes back bit for bit. Against a run
at another model batch they differ by float rounding only, as any two batch sizes do (docs/engine.md).

Timesteps go to the network as one tensor of a row per timestep: long when every row's t is an integer, as a run
alone passes them, else float32 (a network embeds both the same way; tested on the studio's and diffusers'
UNets). The cells' own threads run on one CPU thread each (they only do the samplers' small arithmetic), so
torch's thread pool stays the coordinator's: see ``studio.gui.cpu_threads`` for why more pools would cost.
A denoiser with no network inside (a plain Denoiser object) has nothing to share: its cells run one by one.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from .acceleration import network_denoiser
from .errors import SettingsError
from .guidance import rows_per_model_call
from .models.denoiser import NetworkDenoiser
from .models.fixed_batch import FixedBatchClassifier, RowLayout
from .prediction import Prediction
from .settings import RunSettings

__all__ = ["Cell", "CellOutcome", "Cancelled", "cell_length", "cell_rows", "cell_settings_alone", "default_rows",
           "planned_offsets", "run_cells"]


@dataclass(frozen=True)
class Cell:
    """One run of a grid: its settings, and its seeds (None: seed, seed + 1, ... as a run alone)."""

    settings: RunSettings
    seeds: Sequence[int] | None = None
    classifier: object | None = None


@dataclass
class CellOutcome:
    x: torch.Tensor | None = None     # the final samples
    record: dict = field(default_factory=dict)
    steps: list = field(default_factory=list)   # every Step, when asked for
    model_calls: int = 0              # the cell's own calls (its share of the shared passes)
    seconds: float = 0.0              # wall time from the cell's start to its end (sharing the passes)


class Cancelled(Exception):
    """The grid was cancelled; cells still running stop at their next model call."""


def cell_rows(cell: Cell) -> int:
    """Rows one model call of this cell has: its batch, doubled by classifier-free guidance."""
    count = len(cell.seeds) if cell.seeds is not None else cell.settings.batch_size
    return rows_per_model_call(cell.settings.guidance, count)


def run_cells(denoiser, cells: Sequence[Cell], *, rows: int | None = None, keep_steps: bool = False,
              cancel: threading.Event | None = None,
              on_cell_done: Callable[[int, CellOutcome], None] | None = None,
              on_pass: Callable[[int], None] | None = None,
              offsets: Sequence[int] | None = None) -> list[CellOutcome]:
    """Run every cell, sharing model calls (see the module docstring); returns their outcomes in order.
    ``rows``: rows per forward pass (default: all cells' rows, so they all run at once); at least the largest
    cell's. ``on_cell_done(index, outcome)`` is called in this thread as each cell ends. A cell's error stops
    the grid and is raised here once every cell's thread has ended. ``on_pass(cells)``, in this thread after
    each forward pass, says how many cells it served (a progress bar's model calls). ``offsets``: the first row
    of each cell in every call, fixed (a cell starts once those rows are free): a process of several that runs
    some of a grid's cells gives them the rows ``planned_offsets`` says one process would, so their bits are the
    same."""
    cells = list(cells)
    if not cells:
        return []
    needs = [cell_rows(cell) for cell in cells]
    rows = sum(needs) if rows is None else int(rows)
    if rows < max(needs):
        raise SettingsError(f"rows per shared call must hold the largest cell's {max(needs)} rows, got {rows}")
    if offsets is not None:
        offsets = [int(offset) for offset in offsets]
        if len(offsets) != len(cells) or any(o < 0 or o + n > rows for o, n in zip(offsets, needs)):
            raise SettingsError(f"offsets {offsets} do not place every cell's rows within {rows} rows")
    network = network_denoiser(denoiser)   # the network inside wrappers such as FixedBatchDenoiser
    if network is None:
        return [_run_alone(denoiser, cell, keep_steps, cancel, on_cell_done, on_pass, index)
                for index, cell in enumerate(cells)]
    return _Coordinator(network, cells, needs, rows, keep_steps, cancel, on_cell_done, on_pass, offsets).run()


def default_rows(cells: Sequence[Cell], cap: int = 1024) -> int:
    """Rows per shared pass when none are asked for: the cells of the most common length side by side (they end
    together), within ``cap``, never fewer than the largest cell's."""
    from collections import Counter

    needs = [cell_rows(cell) for cell in cells]
    same_length = max(Counter(cell_length(cell) for cell in cells).values())
    return max(max(needs), min(cap, same_length * max(needs)))


def cell_length(cell: Cell) -> int:
    """The model calls a cell makes (its sampler's count for its steps; 0 if the settings cannot say)."""
    sampler = cell.settings.sampler
    try:
        return sampler.model_calls(sampler.steps)
    except Exception:   # noqa: BLE001 -- only an order; the run itself says what is wrong
        return 0


def planned_offsets(cells: Sequence[Cell], rows: int | None = None) -> list[int]:
    """The first row each cell gets when ``run_cells`` runs them all in one process (without ``offsets``): its
    schedule replayed, every running cell making one call per pass, the longest waiting cell admitted into the
    first free run of rows as cells end. Deterministic, so every process of a split grid computes the same."""
    cells = list(cells)
    lengths = [max(1, cell_length(cell)) for cell in cells]
    needs = [cell_rows(cell) for cell in cells]
    rows = sum(needs) if rows is None else int(rows)
    waiting = sorted(range(len(cells)), key=lambda i: -lengths[i])
    running: dict[int, int] = {}   # cell -> its first row
    left: dict[int, int] = {}      # cell -> calls still to make
    offsets = [0] * len(cells)

    def admit():
        while waiting:
            offset = first_free_rows(running, needs, rows, needs[waiting[0]])
            if offset is None:
                return
            index = waiting.pop(0)
            running[index] = offsets[index] = offset
            left[index] = lengths[index]

    admit()
    while running:
        for index in list(running):
            left[index] -= 1
            if not left[index]:
                del running[index]
        admit()
    return offsets


def first_free_rows(running: dict[int, int], needs: Sequence[int], rows: int, need: int) -> int | None:
    """The first row of the first free run of ``need`` rows among ``running`` cells (cell -> first row), or None."""
    position = 0
    for start, index in sorted((start, index) for index, start in running.items()):
        if start - position >= need:
            return position
        position = max(position, start + needs[index])
    return position if rows - position >= need else None


def _cell_settings(settings: RunSettings) -> RunSettings:
    """A cell's run calls its member denoiser plainly: the coordinator owns the network and its rows."""
    return settings.replace(model_batch=0, network="plain")


def _run_alone(denoiser, cell, keep_steps, cancel, on_cell_done, on_pass, index) -> CellOutcome:
    from .engine import Run

    started = time.perf_counter()
    run = Run(denoiser, _cell_settings(cell.settings), seeds=cell.seeds, classifier=cell.classifier)
    outcome = CellOutcome()
    for step in run:
        if cancel is not None and cancel.is_set():
            raise Cancelled("the grid was cancelled")
        outcome.x = step.x_t
        if keep_steps:
            outcome.steps.append(step)
        if on_pass is not None:
            on_pass(1)
    outcome.record = run.record()
    outcome.seconds = time.perf_counter() - started
    outcome.model_calls = outcome.record.get("model_calls", 0)
    if on_cell_done is not None:
        on_cell_done(index, outcome)
    return outcome


@dataclass
class _Request:
    x_t: torch.Tensor
    t: float
    class_labels: torch.Tensor | None
    sqrt_terms: tuple | None
    answer: Prediction | None = None
    error: BaseException | None = None


class _Member:
    """The Denoiser a cell's Run sees: each predict waits for the coordinator's shared pass."""

    def __init__(self, coordinator: "_Coordinator", index: int):
        self._coordinator = coordinator
        self.index = index
        inner = coordinator.denoiser
        self.card, self.schedule, self.device, self.dtype = inner.card, inner.schedule, inner.device, inner.dtype

    def to(self, device, dtype=None) -> "_Member":
        return self   # the coordinator put the network where it runs

    def predict(self, x_t, t, class_labels=None, sqrt_terms=None) -> Prediction:
        return self._coordinator.ask(self.index, _Request(x_t, t, class_labels, sqrt_terms))


class _Coordinator:
    def __init__(self, denoiser: NetworkDenoiser, cells, needs, rows, keep_steps, cancel, on_cell_done, on_pass,
                 fixed_offsets=None):
        self.denoiser = denoiser
        self.fixed_offsets = fixed_offsets   # each cell's rows, fixed (a process's share of a split grid)
        self.cells, self.needs, self.rows = cells, needs, rows
        self.keep_steps, self.cancel, self.on_cell_done, self.on_pass = keep_steps, cancel, on_cell_done, on_pass
        self.outcomes = [CellOutcome() for _ in cells]
        self.errors: list[BaseException] = []
        self._condition = threading.Condition()
        self._asked: dict[int, _Request] = {}
        self._running: set[int] = set()
        self._done: list[int] = []
        self._threads: dict[int, threading.Thread] = {}
        self._waiting = sorted(range(len(cells)), key=lambda i: -self._length(i))   # longest first: less tail
        self._offsets: dict[int, int] = {}   # running cell -> the first of its rows in every call
        self._stopping = False
        self.threads = torch.get_num_threads()

    def _length(self, index: int) -> int:
        return cell_length(self.cells[index])

    # --- the calling thread --------------------------------------------------------------------------------------
    def run(self) -> list[CellOutcome]:
        try:
            with self._condition:
                self._admit()
                while self._running:
                    self._condition.wait_for(self._round_ready)
                    self._finish_done()
                    if self._stopping:
                        self._refuse_asked(Cancelled("the grid stopped"))
                    elif self._running and len(self._asked) == len(self._running):
                        self._shared_pass()
                    self._condition.notify_all()
        finally:
            with self._condition:
                self._stopping = True
                self._refuse_asked(Cancelled("the grid stopped"))
                self._condition.notify_all()
            for thread in self._threads.values():
                thread.join()
        if self.errors:
            raise self.errors[0]
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("the grid was cancelled")
        return self.outcomes

    def _round_ready(self) -> bool:
        """Every running cell has asked for its next call or ended (an error or a stop: at once). Cells that end
        in the same pass are let go together, so the cells admitted after them get the rows the plan gives them
        (``planned_offsets``), whatever the order their threads happened to end in. A failed cell ends too: its
        error stops the others once every running cell has asked or ended."""
        if self._stopping:
            return bool(self._asked or self._done)
        accounted = len(self._asked) + len(self._done)
        return accounted > 0 and accounted >= len(self._running)

    def _refuse_asked(self, error: BaseException) -> None:
        for request in self._asked.values():
            request.error = error
        self._asked.clear()

    def _admit(self) -> None:
        """Start waiting cells, in order, while free rows hold the next one's (with fixed offsets: every waiting
        cell whose own rows are free)."""
        if self.fixed_offsets is not None:
            for index in list(self._waiting):
                start, stop = self.fixed_offsets[index], self.fixed_offsets[index] + self.needs[index]
                if all(stop <= self._offsets[i] or self._offsets[i] + self.needs[i] <= start for i in self._running):
                    self._waiting.remove(index)
                    self._start(index, start)
            return
        while self._waiting:
            offset = first_free_rows({i: self._offsets[i] for i in self._running}, self.needs, self.rows,
                                     self.needs[self._waiting[0]])
            if offset is None:
                return
            self._start(self._waiting.pop(0), offset)

    def _start(self, index: int, offset: int) -> None:
        self._offsets[index] = offset
        self._running.add(index)
        thread = threading.Thread(target=self._cell_thread, args=(index,), name=f"grid-cell-{index}", daemon=True)
        self._threads[index] = thread
        thread.start()

    def _finish_done(self) -> None:
        while self._done:
            index = self._done.pop(0)
            self._running.discard(index)
            self._offsets.pop(index, None)
            self._asked.pop(index, None)
            if self.errors:
                self._stopping = True
            elif self.on_cell_done is not None and self.outcomes[index].record:   # it ran to its end
                self._condition.release()
                try:
                    self.on_cell_done(index, self.outcomes[index])
                finally:
                    self._condition.acquire()
        if not self._stopping:
            self._admit()

    def _shared_pass(self) -> None:
        """One forward pass of every asking cell's rows (padded to ``rows``), each cell answered with its own."""
        if self.cancel is not None and self.cancel.is_set():
            self._stopping = True
            self._refuse_asked(Cancelled("the grid was cancelled"))
            return
        order = sorted(self._asked, key=self._offsets.__getitem__)
        requests = [self._asked.pop(index) for index in order]
        try:
            raw_rows = self._forward([(self._offsets[index], request) for index, request in zip(order, requests)])
            for index, request in zip(order, requests):
                start = self._offsets[index]
                stop = start + request.x_t.shape[0]
                request.answer = self.denoiser.prediction_from_raw(raw_rows[start:stop], request.x_t, request.t,
                                                                   request.sqrt_terms)
                self.outcomes[index].model_calls += 1
        except BaseException as exc:   # noqa: BLE001 -- every asking cell gets the error and ends
            for request in requests:
                request.error = exc
            return
        if self.on_pass is not None:
            self.on_pass(len(requests))

    def _forward(self, placed: list[tuple[int, _Request]]) -> torch.Tensor:
        """The network on ``rows`` rows: each request's at its offset, copies of the first row elsewhere."""
        first = placed[0][1]
        integer = all(float(r.t).is_integer() for _, r in placed)
        dtype = torch.long if integer else torch.float32
        conditional = [r.class_labels is not None for _, r in placed]
        if any(conditional) and not all(conditional):
            raise SettingsError("cells that share model calls must all pass class labels or none")

        def timesteps(t, count):
            return torch.full((count,), int(t) if integer else float(t), dtype=dtype, device=first.x_t.device)

        xs, ts, labels = [], [], []

        def add(x_t, t, class_labels, count):
            xs.append(x_t if x_t.shape[0] == count else x_t[:1].expand(count, *x_t.shape[1:]))
            ts.append(timesteps(t, count))
            if all(conditional):
                labels.append(class_labels if class_labels.shape[0] == count else class_labels[:1].expand(count))

        position = 0
        for offset, request in placed:
            if offset > position:   # rows no cell holds: copies of the first row
                add(first.x_t, first.t, first.class_labels, offset - position)
            add(request.x_t, request.t, request.class_labels, request.x_t.shape[0])
            position = offset + request.x_t.shape[0]
        if self.rows > position:
            add(first.x_t, first.t, first.class_labels, self.rows - position)
        x, t = torch.cat(xs), torch.cat(ts)
        # the plain network: a faster one another run installed was built and checked for other shapes
        return self.denoiser.plain_network(x.to(self.denoiser.dtype), t, torch.cat(labels) if labels else None)

    # --- a cell's own thread -------------------------------------------------------------------------------------
    def ask(self, index: int, request: _Request) -> Prediction:
        with self._condition:
            if self._stopping:
                raise Cancelled("the grid stopped")
            self._asked[index] = request
            self._condition.notify_all()
            self._condition.wait_for(lambda: request.answer is not None or request.error is not None)
        if request.error is not None:
            raise request.error
        return request.answer

    def _cell_thread(self, index: int) -> None:
        from .engine import Run

        torch.set_num_threads(1)   # this thread only does the sampler's arithmetic; the pool is the caller's
        cell, outcome = self.cells[index], self.outcomes[index]
        started = time.perf_counter()
        try:
            offset = self._offsets[index]
            classifier = cell.classifier
            if classifier is not None:   # in the same rows as the cell's own, as a run made alone would call it
                classifier = FixedBatchClassifier(classifier, self.rows, RowLayout(offset=offset))
            run = Run(_Member(self, index), _cell_settings(cell.settings), seeds=cell.seeds, classifier=classifier)
            with torch.inference_mode():
                for step in run:
                    outcome.x = step.x_t
                    if self.keep_steps:
                        outcome.steps.append(step)
            record = run.record()
            record["settings"]["model_batch"] = record["model_batch"] = self.rows
            record["row_offset"] = offset
            if "threads" in record:
                record["threads"] = self.threads
            outcome.record = record
            outcome.seconds = time.perf_counter() - started
        except BaseException as exc:   # noqa: BLE001 -- raised by run_cells in the calling thread
            if not isinstance(exc, Cancelled):
                self.errors.append(exc)
        finally:
            with self._condition:
                self._done.append(index)
                self._condition.notify_all()


def cell_settings_alone(outcome: CellOutcome) -> tuple[RunSettings, RowLayout]:
    """What makes a cell's samples again alone, bit for bit (on ``record['threads']`` threads): its own
    settings with the shared calls' rows as the model batch, and its rows' offset in them (for ``Run(layout=)``)."""
    return RunSettings.from_dict(outcome.record["settings"]), RowLayout(offset=outcome.record.get("row_offset", 0))
