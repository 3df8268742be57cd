"""A branch sample made again from its recipe: the recipe carries its parent sample's recipe and the step k it
branched at (``branch.parent_recipe``, ``branch.at_step``). The parent's sample is made again for k steps, in the
rows and on the device its recipe records, so its x_t after step k comes back bit for bit, and the branch goes on
from there (``studio sample --from-png`` and the window's opened PNGs both do this)."""

from __future__ import annotations

import json

from .branch import BranchStart
from .errors import SettingsError
from .recipe import RecipeError, parse_recipe, recipe_layout, settings_from_recipe
from .settings import RunSettings


def parent_recipe_of(branch_recipe: dict, source: str) -> tuple[dict, int]:
    """(the parent sample's recipe, checked; the step k) of a branch sample's recipe."""
    branch = branch_recipe["branch"]
    parent = parse_recipe(json.dumps(branch["parent_recipe"]), f"{source} (its parent's recipe)")
    if parent.get("batch_index") is None or "branch" in parent:
        raise RecipeError(f"{source}: its branch's parent recipe is not one sample's")
    steps = len(parent["timesteps"])
    at_step = branch["at_step"]
    if not 0 <= at_step < steps:
        raise RecipeError(f"{source}: its branch step {at_step} is not one of its parent's {steps} steps")
    return parent, int(at_step)


def remake_parent(denoiser, parent_recipe: dict, at_step: int, *, device: str, classifier=None) -> BranchStart:
    """The parent's sample made again for ``at_step`` steps, as the BranchStart of its branch."""
    from .engine import Run

    settings, _ = settings_from_recipe(parent_recipe)
    settings = settings.replace(device=device)
    if settings.guidance.kind == "classifier" and classifier is None:
        raise SettingsError("the branch's parent used classifier guidance: its classifier is needed to make it again")
    run = Run(denoiser, settings, classifier=classifier, layout=recipe_layout(parent_recipe))
    x_k = run.x_T
    try:
        for _, step in zip(range(at_step), run):
            x_k = step.x_t
    finally:
        run.close()
    record = run.record()
    return BranchStart(RunSettings.from_dict(record["settings"]), tuple(record["seeds"]), at_step,
                       x_k.detach().to("cpu").float().clone(), run.x_T.detach().to("cpu").float().clone(),
                       parent={"recipe": parent_recipe})
