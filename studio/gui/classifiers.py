"""Which noise-aware classifier can guide the open model, and loading it only when a run needs it.

A classifier fits a model when it was trained on the same data (data shape and value range), with the same
number of classes and the same diffusion length T (its t input means the model's t). Candidates are the
bundled classifiers that are installed, plus any the window is told about; cards are read from the file
header (cheap), the network is loaded on the first classifier-guided run and kept for the next ones.
"""

from __future__ import annotations

from ..core.bundled import BUNDLED
from ..core.checkpoints import open_classifier, read_card
from ..core.errors import StudioError


def bundled_classifier_sources() -> list[str]:
    """Names of the installed bundled classifiers (accepted wherever a checkpoint path is)."""
    return [m.name for m in BUNDLED if m.name.endswith("-classifier") and m.path.is_file()]


def mismatch(model_card, classifier_card) -> str | None:
    """Why ``classifier_card`` cannot guide ``model_card``, in plain words; None when it can."""
    if model_card.data_kind != "image":
        return "classifier guidance works on image models"
    if tuple(classifier_card.data_shape) != tuple(model_card.data_shape):
        return f"its classifier sees {'x'.join(map(str, classifier_card.data_shape))} images"
    if len(classifier_card.class_names) != len(model_card.class_names):
        return (f"its classifier knows {len(classifier_card.class_names)} classes, the model "
                f"{len(model_card.class_names)}")
    if classifier_card.num_train_timesteps != model_card.num_train_timesteps:
        return (f"its classifier was trained with T = {classifier_card.num_train_timesteps}, the model with "
                f"T = {model_card.num_train_timesteps}")
    if tuple(classifier_card.value_range) != tuple(model_card.value_range):
        return "its classifier expects another value range"
    return None


class ClassifierChoice:
    """The classifier sources the window may use, their cards, and the classifiers loaded so far."""

    def __init__(self, sources: list[str] | None = None):
        self.sources = list(bundled_classifier_sources() if sources is None else sources)
        self._cards: dict[str, object] = {}
        self._loaded: dict[str, object] = {}

    def add_source(self, source: str) -> None:
        """Prefer ``source`` (a path or bundled name) over the others."""
        self.sources = [source] + [s for s in self.sources if s != source]

    def _card(self, source: str):
        if source not in self._cards:
            try:
                self._cards[source] = read_card(source)
            except StudioError:
                self._cards[source] = None   # a missing or broken file is simply not a candidate
        return self._cards[source]

    def for_model(self, model_card) -> tuple[str | None, str]:
        """(the source of a classifier that fits ``model_card``, or None; why not, in plain words)."""
        if model_card is None:
            return None, "no model is open"
        reasons = []
        for source in self.sources:
            card = self._card(source)
            if card is None or getattr(card, "role", None) != "classifier":
                continue
            why = mismatch(model_card, card)
            if why is None:
                return source, ""
            reasons.append(why)
        if not reasons:
            return None, "no noise-aware classifier is installed"
        return None, f"no classifier fits this model ({reasons[0]})"

    def load(self, source: str):
        """The classifier network of ``source``, opened once (CheckpointError if it cannot be)."""
        if source not in self._loaded:
            self._loaded[source] = open_classifier(source)
        return self._loaded[source]
