"""Reproducible model evaluation: call a model on exactly ``model_batch`` rows, each sample in a known row.

CPU and GPU kernels pick their arithmetic by the shape of the call (a Linear layer's GEMM, a batch-1
convolution) and by the row's place in it: on the reference CPU the rows past the last multiple of 4 of a call
go through another kernel (at 11 rows, rows 8 to 10 differ from the same sample at row 0 in their last bits).
What the other rows hold does not matter (checked on the studio's networks: permuting or replacing the other
rows leaves a row's bits as they were). The thread count matters at some shapes too (docs/engine.md).

So a run records the shape of its calls and each sample's row, and a sample is made again in the very same
place: ``FixedBatchDenoiser(inner, model_batch, RowLayout(batch=n, position=p, offset=o))`` takes the batch of
one sample it is given, spreads it to the ``n`` samples of the run that made it (copies of itself), puts those
rows ``o`` rows into calls of exactly ``model_batch`` rows (padded with copies of the first), and keeps the rows
of position ``p``. Classifier-free guidance's doubled batch ([conditional; unconditional]) spreads the same way
as the original run laid it out. Without a layout, a batch is padded or cut into calls of ``model_batch`` rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.weak import WeakIdKeyDictionary

from ..checks import require_int
from ..choices import DEFAULT_MODEL_BATCH
from ..errors import SettingsError
from ..prediction import Prediction
from .denoiser import tensor_version

__all__ = ["DEFAULT_MODEL_BATCH", "FixedBatchClassifier", "FixedBatchDenoiser", "RowLayout"]


@dataclass(frozen=True)
class RowLayout:
    """Where a sample was computed: in an engine run of ``batch`` samples, at ``position``, that run's rows
    starting ``offset`` rows into each model call (a cell of a grid that shared its calls)."""

    batch: int = 1
    position: int = 0
    offset: int = 0

    def __post_init__(self):
        require_int("the layout's batch", self.batch, 1)
        require_int("the layout's position", self.position, 0, self.batch - 1)
        require_int("the layout's offset", self.offset, 0)

    def to_dict(self) -> dict:
        return {"batch": self.batch, "position": self.position, "offset": self.offset}

    @classmethod
    def from_dict(cls, data) -> "RowLayout":
        if not isinstance(data, dict) or set(data) - {"batch", "position", "offset"}:
            raise SettingsError(f"a row layout must be an object with batch, position and offset, got {data!r:.80}")
        return cls(data.get("batch", 1), data.get("position", 0), data.get("offset", 0))

    @property
    def plain(self) -> bool:
        return self == RowLayout()


def _calls(count: int, model_batch: int, offset: int):
    """(start, stop) of each model call over ``count`` rows placed ``offset`` rows in; model_batch 0: one call."""
    step = (model_batch - offset) if model_batch else count
    if step < 1:
        raise SettingsError(f"an offset of {offset} rows leaves no room in calls of {model_batch} rows")
    return [(start, min(start + step, count)) for start in range(0, count, step)]


def _placed(tensor, start: int, stop: int, rows: int, offset: int):
    """Rows start:stop of ``tensor`` placed ``offset`` rows into a tensor of ``rows`` rows (0: as they are),
    the other rows copies of the first."""
    part = tensor[start:stop]
    if not rows or (offset == 0 and part.shape[0] == rows):
        return part
    first = part[:1]
    pieces = [first.expand(offset, *part.shape[1:])] if offset else []
    pieces.append(part)
    missing = rows - offset - part.shape[0]
    if missing > 0:
        pieces.append(first.expand(missing, *part.shape[1:]))
    return torch.cat(pieces)


def _spread(tensor, layout: RowLayout | None):
    """Each row as ``layout.batch`` copies of itself, in the order a run of that many samples lays them out."""
    if tensor is None or layout is None or layout.batch == 1 or not isinstance(tensor, torch.Tensor):
        return tensor
    return tensor.repeat_interleave(layout.batch, dim=0)


def _kept_rows(count: int, layout: RowLayout | None):
    """The rows of the layout's position among ``count`` spread rows (None: all)."""
    if layout is None or layout.batch == 1:
        return None
    return torch.arange(count // layout.batch) * layout.batch + layout.position


class FixedBatchDenoiser:
    """A Denoiser that calls the wrapped one on exactly ``model_batch`` rows at a time (0: as given), each
    sample in the row ``layout`` says (see the module docstring)."""

    def __init__(self, inner, model_batch: int = DEFAULT_MODEL_BATCH, layout: RowLayout | None = None):
        self.model_batch = require_int("model batch", model_batch, 0)
        self.inner = inner
        self.layout = None if layout is None or layout.plain else layout
        if self.layout is not None and self.layout.offset and not self.model_batch:
            raise SettingsError("a row offset needs a model batch")
        # a run's labels are the same tensor at every step: place them once (labels -> (version, placed parts))
        self._placed_labels = WeakIdKeyDictionary()
        self._spread_labels_kept = WeakIdKeyDictionary()   # labels -> (version, spread labels)

    card = property(lambda self: self.inner.card)
    schedule = property(lambda self: self.inner.schedule)
    device = property(lambda self: self.inner.device)
    dtype = property(lambda self: self.inner.dtype)

    def to(self, device, dtype=None) -> "FixedBatchDenoiser":
        if dtype is None:
            self.inner.to(device)
        else:
            self.inner.to(device, dtype)
        return self

    def predict(self, x_t, t: float, class_labels=None, sqrt_terms=None):
        layout = self.layout
        if layout is None:
            return self._predict_rows(x_t, t, class_labels, sqrt_terms)
        spread = _spread(x_t, layout)
        pred = self._predict_rows(spread, t, self._spread_labels(class_labels), sqrt_terms)
        keep = _kept_rows(spread.shape[0], layout)
        if keep is None:
            return pred
        return Prediction(eps=pred.eps[keep], x0=pred.x0[keep],
                          var_values=None if pred.var_values is None else pred.var_values[keep])

    def _spread_labels(self, class_labels):
        if not isinstance(class_labels, torch.Tensor) or self.layout.batch == 1:
            return class_labels
        version = tensor_version(class_labels)
        kept = self._spread_labels_kept.get(class_labels) if version is not None else None
        if kept is not None and kept[0] == version:
            return kept[1]
        with torch.inference_mode(False):
            spread = _spread(class_labels, self.layout)
        if version is not None:
            self._spread_labels_kept[class_labels] = (version, spread)
        return spread

    def _predict_rows(self, x_t, t, class_labels, sqrt_terms):
        count = x_t.shape[0]
        offset = self.layout.offset if self.layout is not None else 0
        if self.model_batch in (0, count) and not offset:
            return self.inner.predict(x_t, t, class_labels, sqrt_terms=sqrt_terms)
        parts = []
        calls = _calls(count, self.model_batch, offset)
        label_parts = self._label_parts(class_labels, calls, offset)
        for (start, stop), labels in zip(calls, label_parts):
            placed = _placed(x_t, start, stop, self.model_batch, offset)
            pred = self.inner.predict(placed, t, labels, sqrt_terms=sqrt_terms)
            rows = slice(offset, offset + stop - start)
            parts.append(Prediction(eps=pred.eps[rows], x0=pred.x0[rows],
                                    var_values=None if pred.var_values is None else pred.var_values[rows]))
        if len(parts) == 1:
            return parts[0]
        var_values = None if parts[0].var_values is None else torch.cat([p.var_values for p in parts])
        return Prediction(eps=torch.cat([p.eps for p in parts]), x0=torch.cat([p.x0 for p in parts]),
                          var_values=var_values)

    def _label_parts(self, class_labels, calls, offset) -> list:
        """Each call's labels, placed; made once per labels tensor (while it is unchanged)."""
        if class_labels is None:
            return [None] * len(calls)
        version = tensor_version(class_labels) if isinstance(class_labels, torch.Tensor) else None
        kept = self._placed_labels.get(class_labels) if version is not None else None
        if kept is not None and kept[0] == (version, len(calls)):
            return kept[1]
        with torch.inference_mode(False):   # normal tensors, so the network can tell whether they changed
            parts = [_placed(class_labels, start, stop, self.model_batch, offset) for start, stop in calls]
        if version is not None:
            self._placed_labels[class_labels] = ((version, len(calls)), parts)
        return parts


class FixedBatchClassifier:
    """A noise-aware classifier called on exactly ``model_batch`` rows at a time, each sample in the row
    ``layout`` says (see FixedBatchDenoiser)."""

    def __init__(self, inner, model_batch: int = DEFAULT_MODEL_BATCH, layout: RowLayout | None = None):
        self.inner = inner
        self.model_batch = model_batch
        self.layout = None if layout is None or layout.plain else layout
        self.card = getattr(inner, "card", None)

    def log_prob(self, x_t, t, labels):
        layout = self.layout
        x_t, t, labels = (_spread(a, layout) for a in (x_t, t, labels))
        count = x_t.shape[0]
        offset = layout.offset if layout is not None else 0
        if self.model_batch in (0, count) and not offset:
            whole = self.inner.log_prob(x_t, t, labels)
        else:
            parts = []
            for start, stop in _calls(count, self.model_batch, offset):
                place = lambda a: _placed(a, start, stop, self.model_batch, offset)  # noqa: E731
                parts.append(self.inner.log_prob(place(x_t), place(t), place(labels))[offset:offset + stop - start])
            whole = torch.cat(parts)
        keep = _kept_rows(count, layout)
        return whole if keep is None else whole[keep]

    def to(self, device) -> "FixedBatchClassifier":
        if hasattr(self.inner, "to"):
            self.inner.to(device)
        return self
