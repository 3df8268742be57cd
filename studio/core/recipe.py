"""Recipes: what it takes to make one sample again, carried inside the PNG of that sample.

A recipe is JSON in the PNG's ``sampling-studio`` text chunk (iTXt), next to a short human line in
``Description``. It names the checkpoint (name, sha256, and where it was opened from), the settings resolved
against the model card, the timesteps, the device and dtype, and the sample's own seed: sample i of a run with
seed S was drawn from seed S + i alone (see ``studio.core.noise``), so the recipe's settings are those of a
batch of one with seed S + i, and its class label is the one that sample had (a "cycle" run gives each sample
its own). ``settings_from_recipe`` turns it back into RunSettings for the window or ``studio sample --from-png``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from .checks import is_number
from .errors import SettingsError
from .export import write_png_image
from .samplers.base import timestep_value
from .settings import CLASS_CYCLE, RunSettings

RECIPE_KEY = "sampling-studio"
DESCRIPTION_KEY = "Description"
SOFTWARE_KEY = "Software"
RECIPE_FORMAT = "sampling-studio/recipe"
RECIPE_VERSION = 1
_REQUIRED = ("format", "settings", "seed", "model", "timesteps")
MAX_THREADS = 1024   # a recipe's CPU thread count; more would only slow a run down
MAX_LAYOUT_BATCH = 1 << 16   # a recipe's batch and row offset: a small file must not ask for a huge batch
_PASSED_THROUGH = ("checkpoint", "classifier", "model_batch", "threads", "data", "model_calls")


def sample_png_name(index: int) -> str:
    """The file name of sample ``index`` of a run, as the CLI and the window write it."""
    return f"sample_{index:05d}.png"


def recorded_source(source: str) -> str:
    """How a recipe names its checkpoint: bundled models by their name, files as absolute paths."""
    from .bundled import bundled_by_name, bundled_of_source

    explicit = bundled_of_source(source)
    if explicit is not None:
        return explicit.name
    if bundled_by_name(source) is not None and not Path(source).exists():
        return source
    return str(Path(source).resolve())


def recipe_checkpoint(recipe: dict) -> str | None:
    """The checkpoint a recipe names, as a source to open: a recorded bundled name means the bundled model."""
    from .bundled import as_recorded_bundled

    checkpoint = recipe.get("checkpoint")
    return None if checkpoint is None else as_recorded_bundled(checkpoint)


def recipe_extras(card, checkpoint: str | None, model_batch: int, classifier=None,
                  classifier_source: str | None = None) -> dict:
    """What a recipe needs beyond the engine's ``Run.record()``, as the window and ``studio sample`` both add
    it: where the checkpoint was opened from (recorded as ``recorded_source`` names it), the rows per model
    call (a sample's bits depend on them), the data's kind, shape and range, and the guidance classifier."""
    extras = {"model_batch": int(model_batch),
              "data": {"kind": card.data_kind, "shape": list(card.data_shape),
                       "value_range": list(card.value_range)}}
    if checkpoint is not None:
        extras["checkpoint"] = recorded_source(checkpoint)
    if classifier_source is not None:
        classifier_card = getattr(classifier, "card", None)
        extras["classifier"] = {"checkpoint": recorded_source(classifier_source),
                                "name": getattr(classifier_card, "name", None),
                                "sha256": getattr(classifier_card, "sha256", None)}
    return extras


class RecipeError(SettingsError):
    """A file carries no studio recipe, or a damaged one; the message names the file."""


def recipe_for_sample(run_record: dict, batch_index: int, sample_index: int | None = None) -> dict:
    """The recipe of sample ``batch_index`` of the run described by ``run_record`` (``Run.record()``, possibly
    with ``checkpoint``, ``classifier``, ``model_batch`` and ``data`` added).

    The recipe's ``batch_index`` is the sample's place in the whole run, so that seed = run_seed + batch_index.
    When the engine run was one batch of a larger job (the CLI's), give the sample's place in the job as
    ``sample_index``: the recipe then does not depend on how the job was cut into batches or processes.
    """
    seeds = run_record["seeds"]
    if not 0 <= batch_index < len(seeds):
        raise SettingsError(f"batch index {batch_index} is not in the run (it has {len(seeds)} samples)")
    settings = dict(run_record["settings"])
    labels = run_record.get("class_labels")
    label = None if labels is None else int(labels[batch_index])
    if settings.get("class_label") == CLASS_CYCLE:
        settings["class_label"] = label       # a batch of one would otherwise cycle back to class 0
    seed = int(seeds[batch_index])
    settings.update(seed=seed, batch_size=1, device=run_record.get("device", settings.get("device", "auto")))
    # where its rows sat in the model calls: a run that was itself made from a recipe passes its own on
    made_in = run_record.get("made_in") or {"batch": len(seeds), "position": int(batch_index),
                                            "offset": int(run_record.get("row_offset", 0))}
    recipe = _recipe(run_record, settings, seed=seed, run_seed=run_record["settings"].get("seed"),
                     batch_index=int(batch_index if sample_index is None else sample_index), class_label=label,
                     made_in=made_in)
    if "branch" in run_record:
        recipe["branch"] = _branch_of_sample(run_record["branch"], batch_index, sample_index)
    return recipe


def _branch_of_sample(branch: dict, batch_index: int, sample_index: int | None) -> dict:
    """A branch sample's recipe entry: the step it branched at and its parent sample's own recipe (made from the
    parent batch's record, or carried over from the recipe the branch was made from)."""
    parent = branch.get("parent") or {}
    if "record" in parent:
        parent_recipe = recipe_for_sample(parent["record"], batch_index, sample_index)
    elif "recipe" in parent:
        parent_recipe = parent["recipe"]
    else:
        raise SettingsError("a branch's record names no parent to make its recipe from")
    entry = {key: branch[key] for key in ("at_step", "mode") if key in branch}
    if "run" in parent:
        entry["parent_run"] = parent["run"]
    return {**entry, "parent_recipe": parent_recipe}


def recipe_for_run(run_record: dict) -> dict:
    """The recipe of a whole run (for a grid PNG): its own seed and batch size, ``batch_index`` null."""
    settings = dict(run_record["settings"])
    settings["device"] = run_record.get("device", settings.get("device", "auto"))
    return _recipe(run_record, settings, seed=settings["seed"], run_seed=settings["seed"], batch_index=None,
                   class_label=settings.get("class_label"))


def _recipe(run_record: dict, settings: dict, **which) -> dict:
    """The fields every recipe has, plus ``which`` (seed, run_seed, batch_index, class_label)."""
    recipe = {
        "format": RECIPE_FORMAT,
        "version": RECIPE_VERSION,
        "studio_version": run_record.get("studio_version"),
        "model": dict(run_record["model"]),
        "settings": settings,
        **which,
        "timesteps": [timestep_value(t) for t in run_record["timesteps"]],
        "device": run_record.get("device"),
        "dtype": run_record.get("dtype"),
    }
    recipe.update({key: run_record[key] for key in _PASSED_THROUGH if key in run_record})
    return recipe


def describe_recipe(recipe: dict) -> str:
    """One line a person can read: model, sampler, seed, class, guidance, device."""
    settings = recipe["settings"]
    sampler = settings["sampler"]
    parts = [f"Sampling Studio {recipe.get('studio_version', '')}".strip()]
    sha = recipe["model"].get("sha256") or ""
    parts.append(f"{recipe['model'].get('name', '?')}" + (f" (sha256 {sha[:12]})" if sha else ""))
    what = f"{sampler['sampler'].upper()} {sampler['steps']} steps, {sampler['spacing']} spacing"
    if sampler["sampler"] == "ddim":
        what += f", eta {sampler['eta']:g}"
    elif sampler.get("variance_type"):
        what += f", {sampler['variance_type']}"
    parts.append(what)
    batch = settings.get("batch_size", 1)
    seed = recipe["seed"]
    parts.append(f"seed {seed}" if batch == 1 else f"seed {seed}, {batch} samples (seeds {seed}..{seed + batch - 1})")
    if recipe.get("class_label") is not None:
        parts.append(f"class {recipe['class_label']}")
    guidance = settings.get("guidance", {})
    if guidance.get("kind", "none") != "none":
        parts.append(f"{guidance['kind'].replace('_', '-')} guidance {guidance['scale']:g}")
    if "branch" in recipe:
        parent = recipe["branch"]["parent_recipe"].get("settings", {}).get("sampler", {})
        parts.append(f"branched at step {recipe['branch']['at_step']} of a {str(parent.get('sampler', '?')).upper()} "
                     f"{parent.get('steps', '?')}-step run")
    parts.append(f"{recipe.get('device')} {recipe.get('dtype')}")
    return " | ".join(parts)


def write_png(path: str | os.PathLike, image_uint8: np.ndarray, recipe: dict, scale: int = 1) -> Path:
    """A PNG of one sample (or a grid) carrying ``recipe``; atomic. ``scale`` blows pixels up to sharp squares."""
    text = {
        RECIPE_KEY: json.dumps(recipe, separators=(",", ":")),
        DESCRIPTION_KEY: describe_recipe(recipe),
        SOFTWARE_KEY: f"Sampling Studio {recipe.get('studio_version', '')}".strip(),
    }
    return write_png_image(path, image_uint8, text, scale=scale)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_sha256(value) -> bool:
    return value is None or (isinstance(value, str) and len(value) <= 64)


# field -> (test, what it must be); checked so a damaged or hostile recipe is one message, never a traceback
def _is_row_layout(value) -> bool:
    from .models.fixed_batch import RowLayout

    try:
        layout = RowLayout.from_dict(value)
    except SettingsError:
        return False
    return layout.batch <= MAX_LAYOUT_BATCH and layout.offset <= MAX_LAYOUT_BATCH


_FIELD_TYPES = {
    "version": (_is_int, "an integer"),
    "model": (lambda v: isinstance(v, dict) and isinstance(v.get("name", ""), (str, type(None)))
              and _is_sha256(v.get("sha256")), "an object with the model's name and sha256"),
    "settings": (lambda v: isinstance(v, dict), "an object"),
    "seed": (_is_int, "an integer"),
    "timesteps": (lambda v: isinstance(v, list) and all(is_number(t) and math.isfinite(t) for t in v),
                  "a list of timesteps (numbers)"),
    "model_calls": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "checkpoint": (lambda v: v is None or isinstance(v, str), "a path or a bundled model name"),
    "classifier": (lambda v: v is None or (isinstance(v, dict) and isinstance(v.get("checkpoint", ""), (str, type(None)))
                                           and _is_sha256(v.get("sha256"))), "an object with the classifier's checkpoint"),
    "model_batch": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "threads": (lambda v: _is_int(v) and 1 <= v <= MAX_THREADS, f"an integer from 1 to {MAX_THREADS}"),
    "made_in": (_is_row_layout, "an object with the batch, position and offset its sample was computed at"),
    "batch_index": (lambda v: v is None or (_is_int(v) and v >= 0), "an integer >= 0 or null"),
    "step": (lambda v: v is None or _is_int(v), "an integer or null"),
    "class_label": (lambda v: v is None or _is_int(v) or isinstance(v, str), "a class index or null"),
    "data": (lambda v: isinstance(v, dict), "an object"),
    "branch": (lambda v: isinstance(v, dict) and _is_int(v.get("at_step")) and v["at_step"] >= 0
               and isinstance(v.get("parent_recipe"), dict),
               "an object with the step it branched at (at_step) and its parent's recipe (parent_recipe)"),
}


def recipe_layout(recipe: dict):
    """The RowLayout a recipe's sample was computed at (None for recipes made before layouts were recorded: a
    batch of one), see ``studio.core.models.fixed_batch``."""
    from .models.fixed_batch import RowLayout

    made_in = recipe.get("made_in")
    return None if made_in is None else RowLayout.from_dict(made_in)


def parse_recipe(text: str, source: str = "the recipe") -> dict:
    """A recipe from its JSON text, checked for the fields every recipe has and each field's type."""
    try:
        recipe = json.loads(text)
    except (json.JSONDecodeError, TypeError) as exc:
        raise RecipeError(f"{source}: its Sampling Studio recipe is damaged (not valid JSON: {exc})") from None
    except RecursionError:
        raise RecipeError(f"{source}: its Sampling Studio recipe is damaged (JSON nested too deeply)") from None
    if not isinstance(recipe, dict):
        raise RecipeError(f"{source}: its Sampling Studio recipe is damaged (not a JSON object)")
    missing = [key for key in _REQUIRED if key not in recipe]
    if missing:
        raise RecipeError(f"{source}: its Sampling Studio recipe is damaged (missing {', '.join(missing)})")
    if recipe["format"] != RECIPE_FORMAT:
        raise RecipeError(f"{source}: not a Sampling Studio recipe (format {str(recipe['format'])[:60]!r})")
    for key, (test, what) in _FIELD_TYPES.items():
        if key in recipe and not test(recipe[key]):
            raise RecipeError(f"{source}: its Sampling Studio recipe is damaged ({key} must be {what}, "
                              f"got {json.dumps(recipe[key])[:60]})")
    version = recipe.get("version", RECIPE_VERSION)
    if version > RECIPE_VERSION:
        raise RecipeError(f"{source}: recipe version {version} is newer than this studio reads "
                          f"({RECIPE_VERSION}); update the studio")
    return recipe


def read_recipe(path: str | os.PathLike) -> dict:
    """The recipe a studio PNG carries; RecipeError for a file that is no PNG, has no recipe or a damaged one."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"{path}: no such file")
    try:
        with Image.open(path) as picture:
            kind = picture.format
            text = dict(getattr(picture, "text", {}) or {})   # .text reads chunks after the pixels too
    except UnidentifiedImageError:
        raise RecipeError(f"{path}: not an image the studio can read") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise RecipeError(f"{path}: damaged image ({exc})") from None
    if kind != "PNG":
        raise RecipeError(f"{path}: a {kind} image; studio recipes travel in PNGs exported by the studio")
    if RECIPE_KEY not in text:
        raise RecipeError(f"{path}: carries no Sampling Studio recipe (it was not exported by the studio, "
                          "or its metadata was stripped)")
    return parse_recipe(text[RECIPE_KEY], str(path))


def settings_from_recipe(recipe: dict) -> tuple[RunSettings, int]:
    """(RunSettings that make the recipe's sample again, its seed): a batch of one on the recorded device (a whole
    run's recipe, from a grid PNG, gives the run's batch)."""
    try:
        settings = RunSettings.from_dict(recipe["settings"])
    except (SettingsError, TypeError, ValueError, KeyError, AttributeError) as exc:
        raise RecipeError(f"the recipe's settings are not valid here: {exc}") from None
    one_sample = recipe.get("batch_index") is not None
    if settings.seed != recipe["seed"] or (one_sample and settings.batch_size != 1):
        raise RecipeError("the recipe is damaged: its seed and settings disagree")
    return settings, settings.seed
