"""The study's metrics on a model: which apply, what each needs, and their values for a cell's final samples.

    metrics = StudyMetrics.for_model(model, kind, names=None, reference=None, judge=None, num_samples=64)
    metrics.names                      # the metrics that apply (all that apply when none were named)
    metrics.prepare(card, reference, judge, num_samples)   # reference data, feature network, judge
    metrics.measure(final_samples, requested_classes, ode_reference)   # {name: Measured or None}

What each measures and its noise: docs/studies.md. ``for_model`` checks what each metric needs and names what is
missing; ``prepare`` reads a reference file (and refuses a wrong shape), both before any sampling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..core.errors import SettingsError
from ..core.metrics import (Measured, class_share, frechet_distance, mixture_log_likelihood, rms_distance,
                            sliced_wasserstein)

METRIC_NAMES = ("ode_error", "swd", "log_likelihood", "class_share", "frechet")
REFERENCE_SEED = 12345   # draws from a known distribution (the truth the samples are compared with)
FLOOR_SEED = 54321       # the second, independent draw for the noise floor
FEATURE_SEED = 0         # the digits feature network's training
MAX_REFERENCE_VALUES = 100_000_000   # 800 MB of float64: a reference file asking for more is refused


@dataclass
class StudyMetrics:
    names: tuple[str, ...]
    kind: str                                  # "mixture", "toy2d", "digits", "image" or "vector"
    reference: np.ndarray | None = None        # truth samples (rows) for swd / frechet
    floor_reference: np.ndarray | None = None  # an independent draw of the same size, for the noise floor
    features: Callable[[np.ndarray], np.ndarray] | None = None   # frechet's feature map
    judge: Callable[[np.ndarray], np.ndarray] | None = None      # class_share: samples -> predicted classes
    mixture: dict | None = None                # log_likelihood: weights, means, covariances
    notes: dict = field(default_factory=dict)  # metric -> what it was measured with

    @classmethod
    def for_model(cls, model, kind: str, names=None, reference: str | None = None, judge=None,
                  num_samples: int = 64, mixture: dict | None = None, unavailable: dict | None = None
                  ) -> "StudyMetrics":
        """``unavailable``: metric -> why the study's settings rule it out (beside what the model rules out)."""
        card = model.card
        available = metric_availability(card, kind, reference, judge, mixture, unavailable)
        if names:
            for name in names:
                if name not in METRIC_NAMES:
                    raise SettingsError(f"unknown metric {name!r}: the metrics are {', '.join(METRIC_NAMES)}")
                if available[name]:
                    raise SettingsError(f"--metric {name} cannot be measured on {card.name!r}: {available[name]}")
            chosen = tuple(dict.fromkeys(names))
        else:
            chosen = tuple(name for name in METRIC_NAMES if not available[name])
        return cls(chosen, kind, mixture=mixture)

    def prepare(self, card, reference, judge, num_samples: int) -> None:
        """Read or draw the reference data and train the feature network and judge the chosen metrics need (the
        slow part: after every cheaper check)."""
        wants_truth = {"swd", "frechet"} & set(self.names)
        if wants_truth:
            self.reference, self.floor_reference, self.notes["reference"] = _truth(self.kind, card, reference,
                                                                                  num_samples, self.mixture)
        if "frechet" in self.names:
            self.features, self.notes["frechet"] = _feature_map(self.kind)
        if "class_share" in self.names:
            self.judge, self.notes["class_share"] = _judge(self.kind, judge)

    def measure(self, samples: np.ndarray, requested=None, ode_reference: np.ndarray | None = None
                ) -> dict[str, Measured | None]:
        """Every metric of the study for one cell's final samples (None where it does not apply to the cell:
        ode_error of a stochastic sampler)."""
        rows = np.asarray(samples, dtype=np.float64).reshape(samples.shape[0], -1)
        values: dict[str, Measured | None] = {}
        for name in self.names:
            if name == "ode_error":
                values[name] = None if ode_reference is None else rms_distance(rows, ode_reference)
            elif name == "swd":
                values[name] = sliced_wasserstein(rows, self.reference)
            elif name == "log_likelihood":
                values[name] = mixture_log_likelihood(rows, **self.mixture)
            elif name == "class_share":
                values[name] = class_share(self.judge(samples), requested)
            elif name == "frechet":
                values[name] = frechet_distance(self.features(rows), self.features(self.reference))
        return values

    def floors(self, num_samples: int) -> dict[str, Measured]:
        """What each distance gives truth against truth at the study's sample count (its noise floor), and the
        truth's own mean log-likelihood."""
        out = {}
        if "log_likelihood" in self.names:   # the truth's own mean log-likelihood, where samples should land
            truth = _mixture_draw(self.mixture, max(num_samples, 1000), FLOOR_SEED)
            out["log_likelihood"] = mixture_log_likelihood(truth, **self.mixture)
        if self.floor_reference is not None:
            truth = self.floor_reference[:num_samples]
            if "swd" in self.names:
                out["swd"] = sliced_wasserstein(truth, self.reference)
            if "frechet" in self.names:
                out["frechet"] = frechet_distance(self.features(truth), self.features(self.reference))
        return out


def metric_availability(card, kind: str, reference=None, judge=None, mixture=None, unavailable=None) -> dict:
    """Metric -> "" where it can be measured on this model with this data, else why not (one phrase)."""
    return {name: (unavailable or {}).get(name) or _why_not(name, card, kind, reference, judge, mixture)
            for name in METRIC_NAMES}


def _why_not(name: str, card, kind: str, reference, judge, mixture) -> str:
    """'' when ``name`` can be measured on this model, else why not."""
    vector = card.data_kind == "vector"
    if name == "ode_error":
        return ""
    if name == "swd":
        if not vector:
            return "swd is for vector data (use frechet for images)"
        return "" if kind in ("mixture", "toy2d") or reference else "it needs reference samples: --reference FILE.npy"
    if name == "log_likelihood":
        return "" if mixture is not None else "the exact log-likelihood needs a known density (the analytic mixture)"
    if name == "class_share":
        if not card.class_names:
            return "the model is not class-conditional"
        if vector:
            return "class_share is for image models"
        return "" if kind == "digits" or judge is not None else "it needs a judge: --judge CLASSIFIER"
    if name == "frechet":
        if vector:
            return "frechet is for image models (use swd for vector data)"
        return "" if kind == "digits" or reference else "it needs reference images: --reference FOLDER or FILE.npy"
    return "unknown metric"


def _truth(kind: str, card, reference, num_samples: int, mixture):
    """(reference rows, an independent draw of num_samples rows for the floor, a note)."""
    count = max(num_samples, 1000)
    if reference:
        rows = _reference_rows(Path(reference), card)
        rng = np.random.default_rng(FLOOR_SEED)
        order = rng.permutation(len(rows))
        half = len(rows) // 2
        if half < 2:
            raise SettingsError(f"--reference {reference} holds {len(rows)} samples: at least 4 are needed")
        return rows[order[:half]], rows[order[half:]], f"{len(rows)} samples from {reference} (halves: reference, floor)"
    if kind == "mixture":
        draw = lambda seed: _mixture_draw(mixture, count, seed)   # noqa: E731
        return draw(REFERENCE_SEED), draw(FLOOR_SEED), f"{count} exact draws from the mixture"
    if kind == "toy2d":
        import torch

        from ..train.data import sample_toy2d
        draw = lambda seed: sample_toy2d(count, torch.Generator().manual_seed(seed))[0].double().numpy()  # noqa: E731
        return draw(REFERENCE_SEED), draw(FLOOR_SEED), f"{count} draws from the toy2d data distribution"
    if kind == "digits":
        from ..train.data import load_digits
        rows = load_digits().samples.reshape(-1, 64).double().numpy()
        order = np.random.default_rng(FLOOR_SEED).permutation(len(rows))
        return rows[order[: len(rows) // 2]], rows[order[len(rows) // 2:]], \
            f"scikit-learn's {len(rows)} digits (halves: reference, floor)"
    raise SettingsError("reference samples are needed: --reference")


def _reference_rows(path: Path, card) -> np.ndarray:
    """A reference set in the model's data space, as rows: an .npy of N samples of the model's shape, or (for
    images) a folder of images read as the training command reads them."""
    shape = tuple(card.data_shape)
    if path.is_dir():
        if card.data_kind != "image":
            raise SettingsError(f"--reference {path} is a folder, but the model's data are vectors: give a .npy")
        from ..train.data import load_image_folder
        color = "gray" if shape[0] == 1 else "rgb"
        rows = load_image_folder(path, shape[-1], color).samples.double().numpy()
    else:
        try:   # mapped first: a header asking for more than the file holds fails here, not in an allocation
            rows = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, MemoryError) as exc:
            raise SettingsError(f"--reference {path}: cannot read it as a .npy array ({exc})") from None
        if rows.size > MAX_REFERENCE_VALUES:
            raise SettingsError(f"--reference {path} holds {rows.size:,} values, more than the "
                                f"{MAX_REFERENCE_VALUES:,} a study reads")
    rows = np.asarray(rows, dtype=np.float64)
    if rows.ndim < 2 or tuple(rows.shape[1:]) not in (shape, (int(np.prod(shape)),)):
        raise SettingsError(f"--reference {path} holds an array of shape {rows.shape}; the model's samples are "
                            f"{shape}: give N x {' x '.join(map(str, shape))}")
    return rows.reshape(rows.shape[0], -1)


def _mixture_draw(mixture: dict, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    weights = np.asarray(mixture["weights"], dtype=np.float64)
    parts = rng.choice(len(weights), size=count, p=weights / weights.sum())
    means, covariances = np.asarray(mixture["means"]), np.asarray(mixture["covariances"])
    return np.stack([rng.multivariate_normal(means[k], covariances[k]) for k in parts])


def _feature_map(kind: str):
    """(rows -> features, a note). Digits: the hidden layer of a small network trained on scikit-learn's digits
    for this purpose alone (not the guidance classifier, not the quality judge); other images: the pixels."""
    if kind != "digits":
        return (lambda rows: rows), "pixels"
    network = digits_feature_network()

    def features(rows: np.ndarray) -> np.ndarray:
        scaled = (np.clip(rows, -1, 1) + 1) * 8   # the model's [-1, 1] as scikit-learn's 0..16
        return np.maximum(scaled @ network.coefs_[0] + network.intercepts_[0], 0)

    return features, "hidden layer (64 ReLU units) of an MLP trained on scikit-learn's digits (seed 0)"


_FEATURE_NETWORK = []


def digits_feature_network():
    """An MLP (64 -> 64 ReLU -> 10) trained to classify scikit-learn's 1797 digits, the same on every machine
    (float64, fixed seed, full-batch L-BFGS); made once per process."""
    if not _FEATURE_NETWORK:
        from sklearn.datasets import load_digits
        from sklearn.neural_network import MLPClassifier

        digits = load_digits()
        network = MLPClassifier(hidden_layer_sizes=(64,), solver="lbfgs", alpha=1e-3, max_iter=400,
                                random_state=FEATURE_SEED)
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # lbfgs stopping at max_iter is what we ask for
            network.fit(digits.data, digits.target)
        _FEATURE_NETWORK.append(network)
    return _FEATURE_NETWORK[0]


def _judge(kind: str, judge):
    """(samples -> predicted classes, a note): digits: the quality judge (an SVC on real digits,
    studio.train.quality); else a classifier checkpoint's most likely class at t = 0."""
    if judge is None and kind == "digits":
        from ..train.quality import reference_digit_classifier, to_digit_features
        import torch
        svc, accuracy = reference_digit_classifier()
        return (lambda samples: svc.predict(to_digit_features(torch.as_tensor(samples)))), \
            f"an SVC on real digits (held-out accuracy {accuracy:.3f}), not the guidance classifier"

    def predict(samples: np.ndarray) -> np.ndarray:
        import torch
        x = torch.as_tensor(np.asarray(samples, dtype=np.float32))
        t = torch.zeros(x.shape[0], dtype=torch.long)
        with torch.inference_mode():
            scores = torch.stack([judge.log_prob(x, t, torch.full((x.shape[0],), k, dtype=torch.long))
                                  for k in range(len(judge.card.class_names))], dim=1)
        return scores.argmax(1).numpy()

    return predict, f"the classifier {judge.card.name!r} at t = 0"
