"""Opening a PNG the studio exported: its recipe's model and settings come back, ready to Generate.

read_recipe -> settings_from_recipe -> the checkpoint it names (opened if another is loaded) -> the panels.
The window's File > Open and drops open the checkpoint in the background (``background=True``: the settings are
applied once the model is in; a cancelled or failed load changes nothing); ``open_path(png)`` waits for it.
A PNG without a recipe, or whose checkpoint cannot be found, changes nothing and says why in one message.
What the panels cannot show exactly (an explicit timestep list, thresholding parameters, ...) is kept as the
recipe's own sampler settings for as long as the sampler panel is left as the recipe set it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..core.branch_recipe import parent_recipe_of
from ..core.bundled import as_recorded_bundled, bundled_of_source
from ..core.errors import StudioError
from ..core.recipe import (RecipeError, describe_recipe, read_recipe, recipe_checkpoint, recipe_layout,
                           settings_from_recipe)
from ..core.settings import RunSettings
from . import trust_dialog
from .card_check import read_card_waiting


@dataclass(frozen=True)
class _Opening:
    """A PNG's recipe, read and checked, waiting for its model: ``checkpoint`` None when it is open already."""
    name: str
    recipe: dict
    settings: RunSettings
    checkpoint: str | None
    branch: tuple[dict, int] | None = None   # a branch sample's (parent recipe, step k)


def open_recipe_png(window, path: str | os.PathLike, *, background: bool = False,
                    otherwise: Callable[[str], None] | None = None) -> bool:
    """Restore the recipe in ``path`` into ``window``; False (with a message, nothing changed) if it cannot.

    ``background``: a checkpoint that must be opened loads off the GUI thread (``window.loading``); the recipe's
    settings are applied once it is installed (before ``loading.finished``), and a load that is cancelled,
    superseded or fails leaves the model and the settings as they were (``otherwise`` gets a failure's message).
    True then says the recipe was applied or its model is loading. The recipe is read, and a changed checkpoint
    asked about, in the GUI thread first either way."""
    opening = _prepare(window, path)
    if opening is None:
        return False
    window.loading.cancel()   # the newest open wins: a load in progress would replace the recipe's model
    if opening.checkpoint is None:
        _apply(window, opening)
        return True
    if background:
        window.loading.open(opening.checkpoint, then=lambda: _apply(window, opening), otherwise=otherwise,
                            note=f"nothing of the recipe of {opening.name} was applied")
        return True
    if not window.open_checkpoint(opening.checkpoint):
        return False   # open_checkpoint said why; the model and settings are as they were
    _apply(window, opening)
    return True


def _prepare(window, path) -> _Opening | None:
    """Read the recipe and decide its model (asking about a changed checkpoint); None, with a message, if the
    PNG cannot be opened."""
    name = Path(path).name
    try:
        recipe = read_recipe(path)
        settings, _ = settings_from_recipe(recipe)
        # the rows per model call its sample was made in (its own entry, else its settings'), as the CLI reads it
        settings = settings.replace(model_batch=recipe.get("model_batch", settings.model_batch))
        branch = parent_recipe_of(recipe, name) if "branch" in recipe else None
    except RecipeError as exc:
        window.show_error(str(exc))
        return None
    ok, checkpoint = _recipe_model(window, recipe, name)
    return _Opening(name, recipe, settings, checkpoint, branch) if ok else None


def _apply(window, opening: _Opening) -> None:
    """The recipe's settings into the panels, its model being the open one."""
    recipe, settings, name = opening.recipe, opening.settings, opening.name
    sha256 = recipe["model"].get("sha256")
    if opening.checkpoint is not None and sha256 and window.card.sha256 and window.card.sha256 != sha256:
        window.status_label.setText(f"note: {opening.checkpoint} has changed since {name} was made")
    classifier = (recipe.get("classifier") or {}).get("checkpoint")
    if settings.guidance.kind == "classifier" and classifier and _exists(classifier):
        window.classifiers.add_source(classifier)
        window.refresh_classifier()
    window.apply_settings(settings, exact_sampler=True, threads=recipe.get("threads"), layout=recipe_layout(recipe))
    # a branch's sample: Generate makes its parent's sample again for k steps, then the branch (while the seed and
    # batch are the recipe's)
    window.opened_branch = None if opening.branch is None else (settings.seed, settings.batch_size, *opening.branch)
    if recipe.get("batch_index") is not None:
        window.presenter.focused = 0   # the run makes this one sample
    step = recipe.get("step")
    # step 0 is x_T (the timeline's first entry); the last step is where a run ends anyway
    window.show_step_after_run = step if isinstance(step, int) and 0 <= step < len(recipe["timesteps"]) else None
    differences = _differences(window, settings)
    if differences:
        window.show_error(f"{name}: {'; '.join(differences)}, so Generate may not make the same pixels")
    else:
        window.error_banner.hide()
    where = f" and go to step {step}" if window.show_step_after_run is not None else ""
    if differences:   # the status bar says it too: the banner can be closed, and this line stays
        window.status_label.setText(f"opened the recipe of {name}, but it does not all fit: {'; '.join(differences)}"
                                    f" — press Generate{where} to run it as the panels show")
    else:
        window.status_label.setText(f"opened the recipe of {name}: press Generate{where} to make it again")
    window.status_label.setToolTip(describe_recipe(recipe))


def _exists(source: str) -> bool:
    bundled = bundled_of_source(as_recorded_bundled(source))
    return bundled.path.is_file() if bundled is not None else os.path.exists(source)


def _same_source(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return False
    a, b = as_recorded_bundled(a), as_recorded_bundled(b)
    return a == b or (os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b))


def _recipe_model(window, recipe: dict, name: str) -> tuple[bool, str | None]:
    """The checkpoint to open for the recipe: (True, None) when its model is the open one, (True, checkpoint) to
    open, (False, None) with a message if it cannot be found or read, or if its bytes changed since the PNG was
    made and the user does not confirm (asked here, in the GUI thread, before anything loads)."""
    model = recipe["model"]
    sha256 = model.get("sha256")
    checkpoint = recipe_checkpoint(recipe)
    card = window.card
    if card is not None and sha256 and card.sha256 == sha256:
        return True, None
    if card is not None and not sha256 and _same_source(checkpoint, window.source):
        return True, None
    if not checkpoint:
        window.show_error(f"{name} was made with the model {model.get('name')!r}, which is not open, and its "
                          "recipe does not say where the checkpoint is: open that checkpoint first, then the PNG")
        return False, None
    if not _exists(checkpoint):
        window.show_error(f"{name} was made with the checkpoint {checkpoint}, which is not there (moved or deleted?): "
                          "open that model yourself, then the PNG again. Nothing was changed")
        return False, None
    if sha256:
        try:   # the card alone (off the GUI thread: the hash reads the whole file); nothing loads before a yes
            card = read_card_waiting(window, checkpoint, f"{Path(checkpoint).name} against the recipe of {name}")
        except StudioError as exc:
            window.show_error(f"{name}: {exc}")
            return False, None
        if card is None:
            window.status_label.setText(f"stopped opening {name}: nothing was changed")
            return False, None
        found = card.sha256
        if found != sha256 and not trust_dialog.confirm_changed_checkpoint(window, name, checkpoint, sha256, found):
            window.show_error(f"{name} was made with {checkpoint} as it was then (sha256 {sha256[:12]}); the file "
                              f"has changed (sha256 {found[:12]}), so it was not opened. Nothing was changed")
            return False, None
    return True, checkpoint


def _differences(window, settings) -> list[str]:
    """What the window will not run as the recipe says (options this model or machine cannot take)."""
    try:
        now = window.current_settings()
    except Exception as exc:  # noqa: BLE001 -- a setting the panels refuse is itself the difference
        return [str(exc)]
    out = []
    if now.sampler != settings.sampler:
        out.append("the sampler settings could not all be restored")
    if now.class_label != settings.class_label:
        out.append(f"class {settings.class_label!r} is not available")
    if now.guidance != settings.guidance:
        out.append(f"{settings.guidance.kind.replace('_', '-')} guidance is not available")
    if now.seed != settings.seed or now.batch_size != settings.batch_size:
        out.append("its seed or batch size does not fit the seed panel")
    if (now.device, now.dtype) != (device_choice(settings.device), settings.dtype):
        out.append(f"it ran on {settings.device} in {settings.dtype}, which this machine does not offer")
    return out


def device_choice(device: str) -> str:
    """The device combo's entry for a recorded device ("cuda:1" -> "cuda")."""
    return "cuda" if str(device).startswith("cuda") else str(device)
