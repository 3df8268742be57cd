"""Side-by-side timing: candidates run in turn, round after round (the order reversed every other round), so
load from elsewhere and drifts in clock speed hit all of them alike."""

from __future__ import annotations

import random
import statistics
import time
from typing import Callable


def side_by_side(candidates: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds of each candidate per round; ``warmup`` untimed rounds first (first-call costs, caches)."""
    for _ in range(warmup):
        for run in candidates.values():
            run()
    seconds: dict[str, list[float]] = {name: [] for name in candidates}
    names = list(candidates)
    for round_ in range(repeats):
        for name in (names if round_ % 2 == 0 else names[::-1]):
            started = time.perf_counter()
            candidates[name]()
            seconds[name].append(time.perf_counter() - started)
    return seconds


def median(values: list[float]) -> float:
    return statistics.median(values)


def median_interval(values: list[float], level: float = 0.9, resamples: int = 2000) -> tuple[float, float]:
    """A bootstrap interval for the median of ``values`` (``level``: its coverage): how far the median could
    move with other rounds of the same machine, so a goal a few tenths of a per cent away is read as what it is.
    Seeded: the same values give the same interval."""
    draw = random.Random(0)
    medians = sorted(statistics.median(draw.choices(values, k=len(values))) for _ in range(resamples))
    tail = int(round((1 - level) / 2 * resamples))
    return medians[tail], medians[resamples - 1 - tail]


def paired_ratio(seconds: dict[str, list[float]], numerator: str, denominator: str) -> float:
    """Median over rounds of numerator / denominator measured in the same round: what the two are made to do
    differs, not when they ran."""
    return median([a / b for a, b in zip(seconds[numerator], seconds[denominator])])


def describe(seconds: dict[str, list[float]], *names: str) -> str:
    """'engine 1.23 s · bare 1.20 s (medians of 5)'."""
    parts = [f"{name} {median(seconds[name]):.3g} s" for name in names]
    return " · ".join(parts) + f" (medians of {len(seconds[names[0]])})"


def bracketed(baseline: Callable[[], float], candidates: dict[str, Callable[[], float]],
              rounds: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Runs that time themselves, the baseline between every two: B C1 B C2 B C1 B C2 ... B (``rounds`` runs of
    each candidate). Each candidate run is compared with the mean of the baseline runs just before and after
    it: on a shared machine whose speed drifts from second to second, only neighbours in time are comparable.
    Returns (seconds of every run, by name, the baseline under "baseline"; ratio of every candidate run)."""
    seconds: dict[str, list[float]] = {"baseline": [baseline()]}
    ratios: dict[str, list[float]] = {name: [] for name in candidates}
    for name in candidates:
        seconds[name] = []
    for _ in range(rounds):
        for name, run in candidates.items():
            elapsed = run()
            seconds[name].append(elapsed)
            before = seconds["baseline"][-1]
            after = baseline()
            seconds["baseline"].append(after)
            ratios[name].append(elapsed / ((before + after) / 2))
    return seconds, ratios
