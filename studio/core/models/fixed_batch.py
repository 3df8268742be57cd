"""Split-invariant model evaluation: call a model on exactly ``model_batch`` rows at a time.

CPU and GPU kernels pick their algorithm by the shape they get (a Linear layer's GEMM, a batch-1 convolution),
so one sample can differ in its last bits between a batch of 4 and a batch of 2. Given one fixed shape, they
compute each row alone (checked on the studio's networks: permuting or replacing the other rows leaves a row's
bits as they were; so does changing the thread count at some shapes only: on the reference 2-core CPU at 1, 16,
24 and 32 rows, not at 2 to 12, see docs/engine.md). So the model is always called on exactly ``model_batch``
rows: a smaller batch is padded with copies of its first sample, a larger one is cut into such calls. Each
sample's arithmetic is then the same in any batch, in any process, and alone (a PNG recipe's batch of one).
"""

from __future__ import annotations

import torch
from torch.utils.weak import WeakIdKeyDictionary

from ..checks import require_int
from ..choices import DEFAULT_MODEL_BATCH
from ..prediction import Prediction
from .denoiser import tensor_version

__all__ = ["DEFAULT_MODEL_BATCH", "FixedBatchClassifier", "FixedBatchDenoiser"]


def _fixed_batches(count: int, model_batch: int):
    """(start, stop) of each model call over ``count`` rows; model_batch 0: one call of them all."""
    step = model_batch or count
    return [(start, min(start + step, count)) for start in range(0, count, step)]


def _padded(tensor, rows: int):
    """``tensor`` with copies of its first row appended up to ``rows`` rows."""
    missing = rows - tensor.shape[0]
    if missing <= 0:
        return tensor
    return torch.cat([tensor, tensor[:1].expand(missing, *tensor.shape[1:])])


class FixedBatchDenoiser:
    """A Denoiser that calls the wrapped one on exactly ``model_batch`` samples at a time (0: as given)."""

    def __init__(self, inner, model_batch: int = DEFAULT_MODEL_BATCH):
        self.model_batch = require_int("model batch", model_batch, 0)
        self.inner = inner
        # a run's labels are the same tensor at every step: pad them once (labels -> (version, padded parts))
        self._padded_labels = WeakIdKeyDictionary()

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
        count = x_t.shape[0]
        if self.model_batch in (0, count):
            return self.inner.predict(x_t, t, class_labels, sqrt_terms=sqrt_terms)
        parts = []
        batches = _fixed_batches(count, self.model_batch)
        label_parts = self._label_parts(class_labels, batches)
        for (start, stop), labels in zip(batches, label_parts):
            pred = self.inner.predict(_padded(x_t[start:stop], self.model_batch), t, labels, sqrt_terms=sqrt_terms)
            rows = stop - start
            parts.append(Prediction(eps=pred.eps[:rows], x0=pred.x0[:rows],
                                    var_values=None if pred.var_values is None else pred.var_values[:rows]))
        if len(parts) == 1:
            return parts[0]
        var_values = None if parts[0].var_values is None else torch.cat([p.var_values for p in parts])
        return Prediction(eps=torch.cat([p.eps for p in parts]), x0=torch.cat([p.x0 for p in parts]),
                          var_values=var_values)

    def _label_parts(self, class_labels, batches) -> list:
        """Each call's labels, padded; made once per labels tensor (while it is unchanged)."""
        if class_labels is None:
            return [None] * len(batches)
        version = tensor_version(class_labels) if isinstance(class_labels, torch.Tensor) else None
        kept = self._padded_labels.get(class_labels) if version is not None else None
        if kept is not None and kept[0] == version and len(kept[1]) == len(batches):
            return kept[1]
        with torch.inference_mode(False):   # normal tensors, so the network can tell whether they changed
            parts = [_padded(class_labels[start:stop], self.model_batch) for start, stop in batches]
        if version is not None:
            self._padded_labels[class_labels] = (version, parts)
        return parts


class FixedBatchClassifier:
    """A noise-aware classifier called on exactly ``model_batch`` samples at a time (see FixedBatchDenoiser)."""

    def __init__(self, inner, model_batch: int = DEFAULT_MODEL_BATCH):
        self.inner = inner
        self.model_batch = model_batch
        self.card = getattr(inner, "card", None)

    def log_prob(self, x_t, t, labels):
        count = x_t.shape[0]
        if self.model_batch in (0, count):
            return self.inner.log_prob(x_t, t, labels)
        parts = []
        for start, stop in _fixed_batches(count, self.model_batch):
            pad = lambda a: _padded(a[start:stop], self.model_batch)  # noqa: E731
            parts.append(self.inner.log_prob(pad(x_t), pad(t), pad(labels))[:stop - start])
        return torch.cat(parts)

    def to(self, device) -> "FixedBatchClassifier":
        if hasattr(self.inner, "to"):
            self.inner.to(device)
        return self
