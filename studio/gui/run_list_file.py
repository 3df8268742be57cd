"""The Runs dock's list to one file and back (``studio.core.run_archive``: a ZIP of a manifest and float32 .npy
members, no pickle).

Saved: each run of the open model, its record, final samples and, where the window kept them, its float frames
(x_t from x_T and x0_pred, every step); the timeline's per-step numbers (t, t_prev, model calls, noise std) go
into the record's ``window_steps`` entry. Opened: each run comes back as a kept run whose pictures are made again
from its float frames (a run saved without them shows its final samples only), its branch links restored. A
damaged file, one from a newer studio or of another model is one message, and the list stays as it was.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..core.preview import frames_for_steps, tile_channels, to_uint8_tiles
from ..core.run_archive import ArchivedRun, read_run_archive, write_run_archive
from ..core.trajectory import TrajectoryStore
from .float_trajectory import FloatTrajectory
from .run_list import FRAMES_DROPPED, KeptRun, thumbnail_of
from .worker import FINISHED, RunInfo

STEPS_KEY = "window_steps"


def model_key(card) -> str:
    """What a run list file names its model by: the checkpoint's sha256 (a model built in memory has none: its
    name)."""
    return card.sha256 or f"memory:{card.name}"


def save_runs(path, runs: list[KeptRun], card) -> int:
    """Write the runs of ``card``'s model to ``path``; returns how many were written."""
    mine = [run for run in runs if model_key(run.card) == model_key(card)]
    index = {id(run): i for i, run in enumerate(mine)}
    archived = []
    for run in mine:
        floats = run.floats
        x_t = x0 = None
        if floats is not None and floats.keeps_all and floats.steps_done:
            x_t, x0 = (np.array(a) for a in floats.arrays())
        done = run.steps_done
        record = {**run.info.record, STEPS_KEY: {
            "t": [float(t) for t in run.timesteps[:done]], "t_prev": [float(t) for t in run.timesteps_prev[:done]],
            "model_calls": [int(c) for c in run.step_calls[:done]],
            "noise_std": [float(v) for v in (run.store.noise_std[:done] if run.store is not None else [])],
            "status": run.status, "shared_steps": int(run.shared_steps)}}
        samples = run.final if run.final is not None else np.asarray(run.info.x_T, dtype=np.float32)
        parent = index.get(id(run.parent)) if run.parent is not None else None
        archived.append(ArchivedRun(
            name=run.name, pinned=run.pinned, record=record, samples=np.asarray(samples, dtype=np.float32),
            x_t=x_t, x_t_steps=None if x_t is None else list(range(len(x_t))),
            x0_pred=x0, x0_steps=None if x0 is None else list(range(1, len(x0) + 1)),
            parent=parent, at_step=run.at_step if parent is not None else None, seconds=float(run.seconds),
            model_calls=int(run.model_calls), note=run.note))
    write_run_archive(path, archived, model_key(card))
    return len(archived)


@dataclass
class _Timeline:
    t: np.ndarray
    t_prev: np.ndarray
    calls: np.ndarray
    noise_std: np.ndarray
    status: str
    shared_steps: int = 0


def open_runs(path, card, schedule, numbers) -> list[KeptRun]:
    """The runs in ``path`` as KeptRuns of the open model (``numbers``: gives each its list number)."""
    archived = read_run_archive(path, model_sha256=model_key(card))
    runs: list[KeptRun] = []
    for item in archived:
        run = _kept(item, card, schedule, next(numbers))
        if item.parent is not None:
            run.parent, run.at_step = runs[item.parent], item.at_step
            run.shared_steps = min(_timeline(item.record, 0).shared_steps, run.at_step or 0)
            run.info = dataclasses.replace(run.info, shared_steps=run.shared_steps)
        runs.append(run)
    return runs


def _timeline(record: dict, steps_kept: int) -> _Timeline:
    steps = record.get(STEPS_KEY) or {}
    t = np.asarray(steps.get("t") or record.get("timesteps", [])[:steps_kept], dtype=float)
    count = len(t)
    t_prev = np.asarray(steps.get("t_prev") or list(t[1:]) + [-1.0], dtype=float)[:count]
    calls = np.asarray(steps.get("model_calls") or [1] * count, dtype=np.int64)[:count]
    noise = np.asarray(steps.get("noise_std") or [0.0] * count, dtype=float)[:count]
    return _Timeline(t, t_prev, calls, noise, str(steps.get("status", FINISHED)), _count(steps.get("shared_steps")))


def _count(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _kept(item: ArchivedRun, card, schedule, number: int) -> KeptRun:
    record = {key: value for key, value in item.record.items() if key != STEPS_KEY}
    x_t_all = item.x_t if item.x_t is not None and item.x0_pred is not None else None
    line = _timeline(item.record, len(x_t_all) - 1 if x_t_all is not None else len(record.get("timesteps", [])))
    seeds = [int(s) for s in record.get("seeds", range(len(item.samples)))]
    x_T = x_t_all[0] if x_t_all is not None else None
    info = RunInfo(len(line.t), np.asarray(record.get("timesteps", line.t)), seeds, record.get("class_labels"),
                   record.get("device", "cpu"), record.get("dtype", "float32"), record,
                   x_T.reshape(len(seeds), -1) if x_T is not None and card.data_kind == "vector" else None, x_T,
                   to_uint8_tiles(x_T, card.value_range) if x_T is not None and card.data_kind == "image" else None,
                   network=(record.get("settings") or {}).get("network", "plain"))
    store = floats = None
    if x_t_all is not None and len(line.t):
        store, floats = _frames(x_t_all, item.x0_pred, line, card)
    final = np.asarray(item.samples, dtype=np.float32)
    count = len(line.t)
    return KeptRun(number, item.name, info, card, schedule, store, floats, line.t.copy(), line.t_prev.copy(),
                   line.calls.copy(), final, item.seconds, line.status, pinned=item.pinned,
                   note=item.note if store is not None else (item.note or FRAMES_DROPPED),
                   thumbnail=thumbnail_of(final, card)) if count else _empty(item, info, card, schedule, number)


def _empty(item, info, card, schedule, number) -> KeptRun:
    final = np.asarray(item.samples, dtype=np.float32)
    nothing = np.zeros(0)
    return KeptRun(number, item.name, info, card, schedule, None, None, nothing, nothing,
                   np.zeros(0, dtype=np.int64), final, item.seconds, pinned=item.pinned,
                   note=item.note or FRAMES_DROPPED, thumbnail=thumbnail_of(final, card))


@dataclass
class _Step:   # what frames_for_steps reads of an engine Step
    index: int
    num_steps: int
    t: float
    t_prev: float
    x_t: np.ndarray
    x0_pred: np.ndarray
    eps_pred: np.ndarray
    noise_std: float


def _frames(x_t: np.ndarray, x0: np.ndarray, line: _Timeline, card):
    """The trajectory store (pictures) and float frames of a saved run, made again from its float frames."""
    count, batch = len(line.t), x_t.shape[1]
    if card.data_kind == "image":
        _, height, width = card.data_shape
        store = TrajectoryStore(count, batch, tile_shape=(height, width), keep_eps=False,
                                channels=tile_channels(card.data_shape[0]))
    else:
        store = TrajectoryStore(count, batch, vector_dim=int(np.prod(card.data_shape)))
        store.set_initial(x_t[0].reshape(batch, -1))
    steps = [_Step(i, count, float(line.t[i]), float(line.t_prev[i]), x_t[i + 1], x0[i], np.zeros_like(x0[i]),
                   float(line.noise_std[i])) for i in range(count)]
    frames, _ = frames_for_steps(steps, card.data_kind, card.value_range)
    floats = FloatTrajectory(count, x_t[0], budget_bytes=x_t.nbytes + x0.nbytes + 1)
    for frame, step in zip(frames, steps):
        store.append(frame)
        floats.append(step.index, step.x_t, step.x0_pred)
    return store, floats
