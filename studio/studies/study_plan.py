"""A study's cells: every sampler at every step count (and DDIM at every eta), on the same seeds.

    cells = plan_cells(["ddim", "ddpm"], [10, 20], [0.0, 1.0], base, card)
    cells[0].key    # "ddim-10-eta0"      cells[0].settings   # the RunSettings of that cell

Everything is checked here, before any sampling: empty lists, unknown samplers, steps the model cannot take,
an eta with no DDIM to take it. A cell's key names it in the files and on the command line.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import SettingsError
from ..core.samplers import SAMPLERS, sampler_settings
from ..core.settings import RunSettings

STOCHASTIC = frozenset({"ddpm", "euler_a", "dpmpp_2m_sde"})   # samplers that draw noise at every step
MAX_CELLS = 1000   # a study of more cells is surely a typo (10 samplers x 10 step counts x 10 etas)


@dataclass(frozen=True)
class StudyCell:
    key: str
    settings: RunSettings

    @property
    def sampler(self) -> str:
        return self.settings.sampler.name

    @property
    def steps(self) -> int:
        return self.settings.sampler.steps

    @property
    def eta(self) -> float | None:
        return getattr(self.settings.sampler, "eta", None)

    @property
    def deterministic(self) -> bool:
        """Whether the cell's final sample is a function of x_T alone (an ODE solver)."""
        sampler = self.settings.sampler
        return bool(getattr(sampler, "deterministic", sampler.name not in STOCHASTIC))

    @property
    def model_calls(self) -> int:
        sampler = self.settings.sampler
        return sampler.model_calls(sampler.steps)

    @property
    def series(self) -> str:
        """The line of the plot the cell belongs to: its sampler, and DDIM's eta."""
        return f"ddim eta={self.eta:g}" if self.sampler == "ddim" else self.sampler


def _eta_text(eta: float) -> str:
    return f"{eta:g}".replace(".", "p")


def plan_cells(samplers, steps, etas, base: RunSettings, card, sampler_values: dict | None = None) -> list[StudyCell]:
    """The cells in order (sampler, then steps, then eta). ``sampler_values``: settings given to every sampler
    that has them (spacing, clip_sample, variance_type for DDPM, ...)."""
    samplers, steps, etas = list(samplers), list(steps), list(etas) if etas else [0.0]
    for what, values in (("--samplers", samplers), ("--steps", steps), ("--eta", etas)):
        if not values:
            raise SettingsError(f"{what} is empty: give at least one value")
    unknown = [name for name in samplers if name not in SAMPLERS]
    if unknown:
        raise SettingsError(f"unknown sampler {unknown[0]!r}: the samplers are {', '.join(SAMPLERS)}")
    if len(etas) > 1 or etas != [0.0]:
        if "ddim" not in samplers:
            raise SettingsError("--eta applies to ddim, which is not in --samplers")
    for count in steps:
        if count < 1 or count > card.num_train_timesteps:
            raise SettingsError(f"--steps {count} is outside 1 to the model's {card.num_train_timesteps} "
                                f"training timesteps")
    if len(samplers) * len(steps) * len(etas) > MAX_CELLS:
        raise SettingsError(f"the study would have {len(samplers) * len(steps) * len(etas)} cells, more than "
                            f"{MAX_CELLS}")
    cells, seen = [], set()
    for name in dict.fromkeys(samplers):
        for count in dict.fromkeys(steps):
            for eta in (dict.fromkeys(etas) if name == "ddim" else [None]):
                values = _values_for(name, sampler_values or {})
                values["steps"] = count
                if eta is not None:
                    values["eta"] = float(eta)
                try:
                    sampler = sampler_settings(name, **values).resolve(card)
                except SettingsError as exc:
                    raise SettingsError(f"{name} with {count} steps: {exc}") from None
                key = f"{name}-{count}" + (f"-eta{_eta_text(eta)}" if eta is not None else "")
                if key not in seen:
                    seen.add(key)
                    cells.append(StudyCell(key, base.replace(sampler=sampler)))
    return cells


def _values_for(name: str, values: dict) -> dict:
    """The shared settings this sampler has (the others are for other samplers)."""
    from dataclasses import fields

    own = {f.name for f in fields(SAMPLERS[name])}
    return {key: value for key, value in values.items() if key in own}
