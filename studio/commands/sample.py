"""`studio sample`: sample from a checkpoint headless and write what the run produced into a folder.

    studio sample --out out                                   # 16 digits from the bundled model
    studio sample --checkpoint model.safetensors --sampler ddpm --num-samples 64 --batch 16 --out out
    studio sample --from-png out/sample_00003.png --out again   # the same sample, from its PNG's recipe
    torchrun --nproc_per_node 2 -m studio sample --num-samples 64 --out out
    studio sample --network plain --out out   # bit for bit diffusers' network (default auto: the fastest that pays)

Writes into OUT: samples.npy (float32, N x C x H x W or N x D, in the model's data space), sample_NNNNN.png
per image sample (each carrying its recipe), run.json (every setting, the timesteps, per-sample seeds, the
checkpoint's sha256, the studio version); with --trajectory trajectory.npz, with --gif trajectory.gif (also
--webp, --mp4). Sample i uses seed S + i, and the engine calls the model on the batch's rows (the last partial
batch padded to them), so the files do not depend on how torchrun split the work; a PNG's recipe records those
rows and the CPU threads, and --from-png makes the sample in them again, bit for bit. Across --batch sizes a
sample differs only by float rounding (docs/engine.md), unless --model-batch fixes the rows for every batch.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from studio.core.choices import (ANIMATION_SOURCES, DEFAULT_DDIM_STEPS, DTYPES,
                                 GUIDANCE_ALIASES, GUIDANCE_KINDS, NETWORK_MODES, NOISE_DEVICES, SAMPLER_NAMES,
                                 SPACINGS, VARIANCE_TYPES, tolerance_text)

from .arguments import DEVICE_METAVAR, UNCONDITIONAL, add_trust_argument, class_argument

# each guidance kind followed by its short names (none, classifier_free, cfg, classifier)
GUIDANCE_CHOICES = tuple(name for kind in GUIDANCE_KINDS
                         for name in (kind, *sorted(a for a, full in GUIDANCE_ALIASES.items() if full == kind)))
DEFAULT_BATCH = 16
DEFAULT_OUT = "studio-out"

SAMPLES_FILE = "samples.npy"
RUN_FILE = "run.json"
TRAJECTORY_FILE = "trajectory.npz"
ANIMATION_FILES = {"gif": "trajectory.gif", "webp": "trajectory.webp", "mp4": "trajectory.mp4"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _add_model_arguments(parser.add_argument_group("model"))
    _add_sampler_arguments(parser.add_argument_group("sampler (unset values come from the model card)"))
    _add_sample_arguments(parser.add_argument_group("samples"))
    _add_device_arguments(parser.add_argument_group("device"))
    _add_output_arguments(parser.add_argument_group("output"))
    _add_animation_arguments(parser.add_argument_group("trajectory animation"))


def _add_model_arguments(model) -> None:
    model.add_argument("--checkpoint", "-c", default=None, metavar="PATH",
                       help="a checkpoint file or folder, or a bundled model name (default: digits; with "
                            "--from-png: the recipe's checkpoint)")
    model.add_argument("--from-png", dest="from_png", default=None, metavar="FILE",
                       help="take every setting from the recipe in a PNG the studio wrote; flags given as well "
                            "override it (default then: one sample, batch 1)")
    model.add_argument("--allow-changed-checkpoint", dest="allow_changed", action="store_true",
                       help="with --from-png: sample even if the checkpoint's sha256 is not the recipe's (the "
                            "file changed since the PNG was made; the samples will differ)")
    model.add_argument("--branch-from", dest="branch_from", default=None, metavar="RUN_DIR",
                       help="branch from a run folder written with --trajectory: start from its x_t after --at-step "
                            "K and finish under the flags given (unset: the parent's settings; the parent's own "
                            "settings make its remaining steps again, bit for bit). docs/engine.md")
    model.add_argument("--at-step", dest="at_step", type=int, default=None, metavar="K",
                       help="with --branch-from: the parent's step to branch from (0: from x_T)")
    add_trust_argument(model)


def _add_sampler_arguments(sampler) -> None:
    sampler.add_argument("--sampler", choices=SAMPLER_NAMES, default=None,
                         help="default ddim; what each is: docs/samplers.md")
    sampler.add_argument("--steps", type=int, default=None,
                         help=f"denoising steps (default: {DEFAULT_DDIM_STEPS} for ddim, "
                              "num_train_timesteps for ddpm, the sampler's own otherwise (20 for dpmpp_* and unipc); "
                              "at most num_train_timesteps)")
    sampler.add_argument("--eta", type=float, default=None, help="DDIM noise, 0 (deterministic, default) to 1")
    sampler.add_argument("--spacing", choices=SPACINGS, default=None, help="timestep spacing (default: leading for ddim, ddpm and pndm, linspace for the "
                              "others, as diffusers' schedulers)")
    sampler.add_argument("--variance", choices=VARIANCE_TYPES, default=None,
                         help="DDPM reverse variance (default: the card's variance_type)")
    sampler.add_argument("--order", type=int, default=None, metavar="N",
                         help="the solver's order, for a sampler that has one (unipc: 1 to 3, default 2)")
    sampler.add_argument("--karras", action="store_true", default=None,
                         help="Karras et al.'s noise levels (rho 7) instead of the spacing's, for a sampler that "
                              "takes them (the solvers in sigma or log-SNR: euler, heun, dpmpp_*, unipc)")
    sampler.add_argument("--clip", dest="clip", action="store_true", default=None,
                         help="clip predicted x0 to the data range (default: the card's clip_sample)")
    sampler.add_argument("--no-clip", dest="clip", action="store_false", help="do not clip predicted x0")


def _add_sample_arguments(samples) -> None:
    samples.add_argument("--seed", type=int, default=None, help="seed S; sample i uses S + i (default 0)")
    samples.add_argument("--batch", type=int, default=None, help=f"samples per batch (default {DEFAULT_BATCH})")
    samples.add_argument("--num-samples", dest="num_samples", type=int, default=None, metavar="N",
                         help="samples in all, made in batches of --batch (default: one batch)")
    samples.add_argument("--class", dest="class_label", type=class_argument, default=None, metavar="K",
                         help="class index for a class-conditional model, 'cycle' (sample i gets class i mod K; "
                              "the default for class-conditional models) or 'none' (the model's null class: "
                              "unconditional)")
    samples.add_argument("--guidance", type=float, default=None, metavar="W",
                         help="guidance scale: classifier-free on a class-conditional model with a null class, "
                              "classifier guidance with --classifier")
    samples.add_argument("--guidance-kind", dest="guidance_kind", choices=GUIDANCE_CHOICES, default=None,
                         help="force the kind of guidance (default: from --guidance and --classifier)")
    samples.add_argument("--classifier", default=None, metavar="PATH",
                         help="noise-aware classifier checkpoint for classifier guidance")


def _add_device_arguments(device) -> None:
    device.add_argument("--device", default=None, metavar=DEVICE_METAVAR,
                        help="where the model runs (default auto: cuda, then mps, then cpu; cuda:N works too)")
    device.add_argument("--dtype", choices=DTYPES, default=None, help="model precision (default float32; "
                                                                      "half precision only on a GPU)")
    device.add_argument("--noise-device", dest="noise_device", choices=NOISE_DEVICES, default=None,
                        help="draw noise on the cpu (default: same images on every device) or on the device")
    device.add_argument("--model-batch", dest="model_batch", type=int, default=None, metavar="M",
                        help="call the model on exactly M samples at a time, padding or splitting each batch "
                             "(default: the batch, so a run computes the samples it asks for, its last partial "
                             "batch padded; with --from-png, the rows the sample was made in, so its bits come "
                             "back; 0: each batch as it is). A fixed M makes every sample's bits the same in any "
                             "--batch and process split")
    device.add_argument("--threads", type=int, default=None, metavar="N",
                        help="torch's CPU threads for the run (default: torch's own; with --from-png, the count "
                             "the sample was made with, as a row's last bits can follow it)")
    device.add_argument("--network", choices=NETWORK_MODES, default=None,
                        help="the network's speed mode (default auto, or the mode the recipe's sample was made "
                             "with): auto takes the fastest mode whose set-up pays for itself in the run (on a "
                             "CPU traced_channels_last or traced, on a CUDA GPU cuda_graph, else plain: short runs "
                             "stay plain); plain is the network as it is, bit for bit what diffusers computes; "
                             "channels_last (memory layout), traced (TorchScript trace, frozen: less Python per "
                             "call, set up in about a second), traced_channels_last (both), compiled "
                             "(torch.compile; a warm-up of tens of seconds on a CPU, once per process; auto "
                             "compiles only for very long runs), compiled_channels_last or cuda_graph (a CUDA "
                             "GPU only: the forward recorded once and replayed with one launch per step). The "
                             "faster modes can change "
                             "outputs in their last bits and are kept only if no output on a probe batch moves "
                             f"by more than {tolerance_text()}; otherwise the run goes on plain, says why on "
                             "stderr, and run.json records plain. run.json and each PNG's recipe record the mode "
                             "that ran (what auto chose), so --from-png makes the same bits again")


def _add_output_arguments(output) -> None:
    output.add_argument("--out", "-o", default=DEFAULT_OUT, metavar="DIR",
                        help=f"folder for the results (default ./{DEFAULT_OUT}; created if missing)")
    output.add_argument("--trajectory", action="store_true",
                        help="also write trajectory.npz: x_t (S+1 frames from x_T), x0_pred (S frames), timesteps")
    output.add_argument("--png-scale", dest="png_scale", type=int, default=1, metavar="K",
                        help="blow each PNG pixel up to a KxK square (default 1: the model's own pixels)")
    output.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar on stderr")


def _add_animation_arguments(anim) -> None:
    anim.add_argument("--gif", action="store_true", help="write trajectory.gif (the grid, or one --anim-sample)")
    anim.add_argument("--webp", action="store_true", help="write trajectory.webp (animated, lossless)")
    anim.add_argument("--mp4", action="store_true", help="write trajectory.mp4 (needs imageio-ffmpeg)")
    anim.add_argument("--gif-source", dest="anim_source", choices=ANIMATION_SOURCES, default="xt",
                      help="x_t (default), the predicted x0, or both side by side")
    anim.add_argument("--anim-sample", dest="anim_sample", type=int, default=None, metavar="I",
                      help="animate sample I alone (default: the grid of all samples)")
    anim.add_argument("--frame-stride", dest="frame_stride", type=int, default=1, metavar="K",
                      help="keep every K-th frame (the first and last always; default 1)")
    anim.add_argument("--max-frames", dest="max_frames", type=int, default=None, metavar="M",
                      help="at most M frames, evenly spread (default: all)")
    anim.add_argument("--frame-duration", dest="frame_ms", type=int, default=80, metavar="MS",
                      help="milliseconds per frame (default 80)")
    anim.add_argument("--hold", dest="hold_ms", type=int, default=1000, metavar="MS",
                      help="milliseconds the last frame stays (default 1000)")
    anim.add_argument("--no-step-label", dest="step_label", action="store_false",
                      help="no 'step k/S' line under each frame")
    anim.add_argument("--anim-scale", dest="anim_scale", type=int, default=None, metavar="K",
                      help="blow frames up K times (default: tiles at least 64 pixels wide)")


# --- planning: every check before any work -------------------------------------------------------------------------
@dataclass
class SampleJob:
    """Everything a `studio sample` run needs, checked."""

    model: object                 # the Denoiser; the engine calls it on settings.model_batch rows at a time
    classifier: object | None
    settings: object              # RunSettings: seed S, batch size B, class label as asked (int, cycle or None)
    num_samples: int
    out: Path
    checkpoint: str               # the source the model was opened from
    classifier_source: str | None
    trajectory: bool
    animations: dict = field(default_factory=dict)   # kind -> file name
    animation_options: object | None = None
    png_scale: int = 1
    progress: bool = True
    recipe_source: str | None = None
    requested_device: str = "auto"   # as asked; settings.device is this process's own (cuda:LOCAL_RANK)
    threads: int | None = None       # torch's CPU threads while sampling (None: the process's own)
    layout: object | None = None     # a recipe's RowLayout: the rows its sample was computed in
    branch: object | None = None     # a ParentFolder or ParentRecipe (branch_parent.py): where a branch starts

    @property
    def card(self):
        return self.model.card

    @property
    def keeps_frames(self) -> bool:
        return self.trajectory or bool(self.animations)


class Counts(NamedTuple):
    """How many samples a job makes, how many a batch holds, and how many rows each model call gets."""

    num_samples: int
    batch: int
    model_batch: int
    threads: int | None = None    # torch's CPU threads for the run (None: as the process has them)


def plan(args, layout) -> SampleJob:
    """Check every setting, then open the models; raises a StudioError naming the first problem."""
    from studio.core.export import ensure_folder

    recipe, base = _read_recipe(args.from_png)
    branch = _branch_parent(args, recipe)
    parent_folder = branch if hasattr(branch, "folder") else None
    if parent_folder is not None:   # the parent's run.json plays the recipe's part: settings, checkpoint, classifier
        recipe, base = parent_folder.record, parent_folder.settings
    source = _checkpoint_source(args, recipe)
    card = _checked_card(source, args, None if parent_folder else recipe, layout)
    if parent_folder is not None:
        parent_folder.check_model(card, source)
    guidance, classifier_source = _guidance_and_classifier(args, card, recipe, base)
    class_label = _class_label(args, card, base, guidance)
    counts = _branch_counts(args, parent_folder) if parent_folder else _counts(args, recipe, base)
    requested_device = args.device or (base.device if base is not None else "auto")
    settings = _run_settings(args, card, base, guidance, class_label, counts, layout.device(requested_device))
    _check_against_model(card, settings, counts.num_samples)
    animations, options = _outputs(args, counts.num_samples)
    _check_memory(card, settings, counts.num_samples, args, layout)
    model, classifier = _open_models(source, classifier_source, args.trust_code)
    return SampleJob(
        model=model, classifier=classifier, settings=settings, num_samples=counts.num_samples,
        out=ensure_folder(args.out), checkpoint=source, classifier_source=classifier_source,
        trajectory=args.trajectory, animations=animations, animation_options=options, png_scale=args.png_scale,
        progress=args.progress, recipe_source=str(Path(args.from_png).resolve()) if args.from_png else None,
        requested_device=requested_device, threads=counts.threads,
        layout=None if parent_folder else _recipe_layout(recipe, args), branch=branch,
    )


def _branch_parent(args, recipe):
    """Where a branch starts: --branch-from's folder, a branch PNG's parent recipe, or None (no branch)."""
    from studio.core.errors import SettingsError

    from .branch_parent import ParentFolder, ParentRecipe

    if args.branch_from is not None:
        if args.from_png is not None:
            raise SettingsError("--branch-from and --from-png do not go together: give one")
        return ParentFolder.read(args.branch_from, args.at_step)
    if args.at_step is not None:
        raise SettingsError("--at-step goes with --branch-from RUN_DIR")
    if recipe is not None and "branch" in recipe:
        return ParentRecipe.of(recipe, args.from_png)
    return None


def _branch_counts(args, parent) -> Counts:
    """A branch keeps its parent's samples and batches, in the rows and on the threads the parent used."""
    from studio.core.checks import require_int
    from studio.core.errors import SettingsError
    from studio.core.recipe import MAX_THREADS

    settings = parent.settings
    for flag, given, kept in (("--num-samples", args.num_samples, parent.num_samples),
                              ("--batch", args.batch, settings.batch_size)):
        if given is not None and given != kept:
            raise SettingsError(f"{flag} {given}: a branch keeps its parent's samples and batches ({kept})")
    model_batch = require_int("--model-batch", _given(args.model_batch, parent.record.get("model_batch",
                                                                                          settings.model_batch)),
                              0, hint=" (0: each batch as it is)")
    threads = require_int("--threads", _given(args.threads, parent.record.get("threads")), 1, MAX_THREADS,
                          optional=True)
    return Counts(parent.num_samples, settings.batch_size, model_batch, threads)


def _read_recipe(png: str | None):
    """(recipe, its RunSettings) from --from-png, or (None, None)."""
    if png is None:
        return None, None
    from studio.core.recipe import read_recipe, settings_from_recipe

    recipe = read_recipe(png)
    return recipe, settings_from_recipe(recipe)[0]


def _checkpoint_source(args, recipe) -> str:
    """--checkpoint, else the recipe's checkpoint, else the bundled default model."""
    from studio.core.bundled import DEFAULT_MODEL, bundled_source
    from studio.core.errors import SettingsError
    from studio.core.recipe import recipe_checkpoint

    if args.checkpoint:
        return args.checkpoint
    if recipe is None:
        return bundled_source(DEFAULT_MODEL)
    source = recipe_checkpoint(recipe)
    if source is None:
        raise SettingsError(f"the recipe in {args.from_png} does not say where its checkpoint is "
                            f"(model {recipe['model'].get('name')!r}); pass --checkpoint")
    return source


def _checked_card(source: str, args, recipe, layout):
    """The model card alone (nothing loaded, no code run), so every check comes before any loading."""
    from studio.core.checkpoints import read_card
    from studio.core.checkpoints.torchscript_format import require_trust

    card = read_card(source)
    require_trust(card, args.trust_code)
    if recipe is not None:
        _check_recipe_checkpoint(recipe, card, source, args.allow_changed, layout)
    return card


def _check_recipe_checkpoint(recipe: dict, card, source: str, allow_changed: bool, layout) -> None:
    """The checkpoint must be the one the recipe was made with (its sha256), unless the user says otherwise."""
    from studio.core.errors import CheckpointError

    wanted = recipe["model"].get("sha256") or ""
    if not wanted or wanted == card.sha256:
        return
    what = (f"{source} is not the checkpoint the recipe was made with (sha256 {card.sha256[:12]} instead of "
            f"{wanted[:12]})")
    if not allow_changed:
        raise CheckpointError(f"{what}; pass --allow-changed-checkpoint to sample with it anyway")
    _note(f"{what}; the samples will differ", layout)


def _note(message: str, layout) -> None:
    if layout.is_main:
        print(f"note: {message}", file=sys.stderr)


def _guidance_and_classifier(args, card, recipe, base):
    """(GuidanceSettings, the classifier's source or None): a classifier is opened only for classifier guidance;
    a recipe's classifier comes along unless the flags ask for another kind of guidance."""
    source = args.classifier
    if source is None and recipe is not None and args.guidance_kind in (None, "classifier") \
            and base.guidance.kind == "classifier":
        source = (recipe.get("classifier") or {}).get("checkpoint")
    guidance = _guidance(args, card, source is not None, base)
    return guidance, source if guidance.kind == "classifier" else None


def _guidance(args, card, has_classifier: bool, base):
    from studio.core.errors import SettingsError
    from studio.core.settings import GuidanceSettings

    if args.guidance_kind is None and args.guidance is None:
        return base.guidance if base is not None else GuidanceSettings()
    kind = args.guidance_kind
    if kind is None:
        kind = "classifier" if has_classifier else (base.guidance.kind if base is not None and
                                                     base.guidance.kind != "none" else "classifier_free")
    if kind == "classifier_free" and args.guidance_kind is None and not card.conditional:
        raise SettingsError(f"--guidance needs a class-conditional model (classifier-free guidance) or "
                            f"--classifier PATH (classifier guidance); {card.name!r} is unconditional")
    if kind == "classifier" and not has_classifier:
        raise SettingsError("classifier guidance needs --classifier PATH (a noise-aware classifier checkpoint)")
    scale = args.guidance if args.guidance is not None else (base.guidance.scale if base is not None else 1.0)
    return GuidanceSettings(kind=kind, scale=scale)


def _class_label(args, card, base, guidance):
    """--class, else the recipe's, else 'cycle' on a class-conditional model (so one batch shows every class);
    'none' means unconditional (None)."""
    from studio.core.errors import SettingsError
    from studio.core.settings import CLASS_CYCLE

    if args.class_label not in (None, UNCONDITIONAL) and not card.conditional and guidance.kind != "classifier":
        raise SettingsError(f"--class needs a class-conditional model; {card.name!r} is unconditional")
    if args.class_label is not None:
        label = args.class_label
    else:
        label = base.class_label if base is not None else (CLASS_CYCLE if card.conditional else None)
    if label == CLASS_CYCLE and not card.conditional:
        raise SettingsError(f"--class cycle needs a class-conditional model; {card.name!r} has no classes")
    return None if label == UNCONDITIONAL else label


def _counts(args, recipe, base) -> Counts:
    """--num-samples, --batch, --model-batch and --threads, checked. Each model call gets the batch's rows (the
    last partial batch padded to them), so the run pays for the samples asked for, and the shape does not
    depend on how torchrun splits them. A recipe's run makes one sample in a batch of one, in the rows and on
    the CPU threads the recipe records (its own entries, else its settings'), so the sample's bits come back."""
    from studio.core.checks import require_int
    from studio.core.recipe import MAX_THREADS

    # a whole run's recipe (a grid PNG: batch_index null) makes its whole batch again, as one batch
    recipe_batch = 1 if recipe is None or recipe.get("batch_index") is not None else base.batch_size
    batch = require_int("--batch", _given(args.batch, DEFAULT_BATCH if recipe is None else recipe_batch), 1)
    num_samples = require_int("--num-samples", _given(args.num_samples, recipe_batch if recipe is not None
                                                      else batch), 1)
    if recipe is None:
        model_batch, threads = min(batch, num_samples), None
    else:
        model_batch, threads = recipe.get("model_batch", base.model_batch), recipe.get("threads")
    model_batch = require_int("--model-batch", _given(args.model_batch, model_batch), 0,
                              hint=" (0: each batch as it is)")
    threads = require_int("--threads", _given(args.threads, threads), 1, MAX_THREADS, optional=True)
    return Counts(num_samples, batch, model_batch, threads)


def _recipe_layout(recipe, args):
    """Where the recipe's sample sat in its model calls, so that it is made there again; None when the recipe
    does not say (older recipes) or the flags change the rows or the batch (then bits may differ anyway)."""
    from studio.core.recipe import recipe_layout

    if recipe is None or args.model_batch is not None or args.batch not in (None, recipe["settings"]["batch_size"]):
        return None
    return recipe_layout(recipe)


def _given(flag, default):
    """A flag's value when it was given, else ``default``."""
    return flag if flag is not None else default


def _run_settings(args, card, base, guidance, class_label, counts: Counts, device: str):
    """The RunSettings of the job: flags first, then the recipe's settings, then the core's defaults."""
    from studio.core.settings import RunSettings

    fallback = base if base is not None else RunSettings()
    return RunSettings(
        sampler=_sampler_settings(args, card, base.sampler if base is not None else None),
        seed=_given(args.seed, fallback.seed),
        batch_size=counts.batch,
        class_label=class_label,
        guidance=guidance,
        device=device,
        dtype=_given(args.dtype, fallback.dtype),
        noise_device=_given(args.noise_device, fallback.noise_device),
        model_batch=counts.model_batch,
        network=_given(args.network, fallback.network),
    )


# flag -> the sampler setting it sets; a flag the chosen sampler has no setting for is refused, not ignored
SAMPLER_FLAGS = {"eta": "eta", "variance": "variance_type", "order": "order", "karras": "karras"}


def _sampler_settings(args, card, base):
    """The sampler's settings: the recipe's when it used the same sampler, else the card's defaults; the
    flags given change them."""
    from studio.core.samplers import SAMPLERS, sampler_settings

    name = args.sampler or (base.name if base is not None else "ddim")
    values = {}
    if base is not None and base.name == name:
        values = {k: v for k, v in base.to_dict().items() if k != "sampler"}
    elif args.steps is None:
        values["steps"] = card.num_train_timesteps if name == "ddpm" else min(_default_steps(SAMPLERS[name]),
                                                                             card.num_train_timesteps)
    if args.steps is not None or args.spacing is not None:
        values.pop("timesteps", None)   # a recipe's explicit timesteps would override the steps or spacing asked for
    if args.steps is not None:
        values["steps"] = args.steps
    if args.spacing is not None:
        values["spacing"] = args.spacing
    if args.clip is not None:
        values["clip_sample"] = args.clip
    for flag, setting in SAMPLER_FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            _require_sampler_setting(flag, setting, name, SAMPLERS)
            values[setting] = value
    return sampler_settings(name, **values)


def _default_steps(sampler_class) -> int:
    from dataclasses import fields

    return next(f.default for f in fields(sampler_class) if f.name == "steps")


def _require_sampler_setting(flag: str, setting: str, name: str, samplers: dict) -> None:
    from dataclasses import fields

    from studio.core.errors import SettingsError

    having = [sampler for sampler, cls in samplers.items() if setting in {f.name for f in fields(cls)}]
    if name in samplers and name not in having:
        raise SettingsError(f"--{flag} applies to --sampler {', '.join(having)}, not {name}")


def _check_against_model(card, settings, num_samples: int) -> None:
    """What the settings alone cannot tell: steps past T, a learned variance on a fixed model, the last seed
    S + N - 1, the class and guidance against the model, the dtype on the device."""
    from studio.core.engine import class_labels_for, resolve_device, resolve_dtype
    from studio.core.settings import RunSettings

    settings.sampler.resolve(card)
    RunSettings(seed=settings.seed, batch_size=num_samples)
    class_labels_for(card, settings, 1)
    resolve_dtype(settings.dtype, resolve_device(settings.device))


def _outputs(args, num_samples: int):
    """Check --png-scale; ({kind: file name} of the animations asked for, their AnimationOptions or None)."""
    from studio.core.checks import require_int
    from studio.core.errors import SettingsError
    from studio.core.export import AnimationOptions

    require_int("--png-scale", args.png_scale, 1)
    animations = {kind: name for kind, name in ANIMATION_FILES.items() if getattr(args, kind)}
    options = None
    if animations or args.anim_sample is not None:
        options = AnimationOptions(source=args.anim_source, sample=args.anim_sample, stride=args.frame_stride,
                                   max_frames=args.max_frames, frame_ms=args.frame_ms, hold_ms=args.hold_ms,
                                   label=args.step_label, scale=args.anim_scale)
        require_int("--anim-sample", args.anim_sample, 0, num_samples - 1, optional=True)
    if "mp4" in animations:
        from studio.core.export import mp4_available

        if not mp4_available():
            raise SettingsError("--mp4 needs the imageio-ffmpeg package (pip install imageio-ffmpeg)")
    return animations, options


def _check_memory(card, settings, num_samples: int, args, layout) -> None:
    """Refuse, before anything is allocated, a request this machine cannot hold or whose pictures would be too
    large to read back (``--batch 10000000``, ``--model-batch 1000000000``, ``--png-scale 100000``)."""
    from studio.core.export import select_frames, upscale_factor
    from studio.core.memory_budget import require_fits
    from studio.core.preview import GridLayout
    from studio.core.run_memory import require_picture_fits, require_run_fits

    steps = len(settings.sampler.timestep_list(card.num_train_timesteps))
    per_process = -(-num_samples // max(1, layout.world_size))
    batch = min(settings.batch_size, per_process)
    rows = (settings.model_batch or batch) * (2 if settings.guidance.kind == "classifier_free" else 1)
    animated = any(getattr(args, kind) for kind in ANIMATION_FILES)
    frames = 2 * steps + 1 if (args.trajectory or animated) else 0
    require_run_fits(card.data_shape, batch=batch, model_rows=rows, num_samples=per_process, frames=frames)
    if card.data_kind != "image":
        return
    height, width = card.data_shape[1:]
    require_picture_fits(height * args.png_scale, width * args.png_scale, f"each PNG at --png-scale {args.png_scale}")
    if not animated:
        return
    tiles = 1 if args.anim_sample is not None else num_samples
    grid_height, grid_width = GridLayout.for_batch(tiles, height, width).shape
    panels = 2 if args.anim_source == "both" else 1
    scale = args.anim_scale or upscale_factor(width)
    frame_height, frame_width = grid_height * scale, grid_width * panels * scale
    require_picture_fits(frame_height, frame_width, f"each animation frame (scale {scale})")
    count = len(select_frames(steps + 1, max(1, args.frame_stride), args.max_frames))
    require_fits(count * frame_height * frame_width * 3 * 2, f"the animation ({count} frames of "
                                                              f"{frame_width} x {frame_height} pixels)")


def _open_models(source: str, classifier_source: str | None, trust_code: bool):
    """(denoiser, classifier or None): the first real work, once every check has passed."""
    from studio.core.checkpoints import open_checkpoint, open_classifier

    denoiser = open_checkpoint(source, trust_code=trust_code)
    return denoiser, open_classifier(classifier_source) if classifier_source is not None else None


# --- sampling ------------------------------------------------------------------------------------------------------
@dataclass
class SampledPart:
    """The samples one process made, in sample order."""

    indices: list[int]
    samples: np.ndarray                  # (n, *data_shape) float32
    class_labels: list[int] | None
    x_t: np.ndarray | None = None        # (S + 1, n, *data_shape) from x_T
    x0_pred: np.ndarray | None = None    # (S, n, *data_shape)
    record: dict = field(default_factory=dict)   # the first run's record (empty if this part has no samples)


@dataclass(frozen=True)
class WorkUnit:
    """One engine run: ``positions`` into the process's sample indices."""

    positions: range


def work_units(indices: list[int], batch: int) -> list[WorkUnit]:
    """Batches of ``batch`` consecutive samples (the engine gives each its own class under 'cycle', by seed)."""
    if indices and list(indices) != list(range(indices[0], indices[0] + len(indices))):
        raise ValueError("a process's sample indices must be consecutive")
    return [WorkUnit(range(start, min(start + batch, len(indices)))) for start in range(0, len(indices), batch)]


def _numpy(tensor) -> np.ndarray:
    return tensor.detach().to("cpu").float().numpy()


def agreed_network(job: SampleJob, layout) -> SampleJob:
    """In a torchrun split, the network mode ``auto`` chooses is chosen once, by rank 0 for the whole job (as one
    process would, weighing every batch's calls), and every process runs it: its samples are then made as one
    process makes them, and the record names one mode. A single process, or an explicit mode, is left as it is."""
    if not layout.distributed or job.settings.network != "auto":
        return job
    import dataclasses

    import torch.distributed as dist

    from studio.core.engine import Run

    chosen = [None]
    if layout.is_main:
        batch = min(job.settings.batch_size, job.num_samples)
        first = Run(job.model, job.settings.replace(batch_size=batch), classifier=job.classifier, layout=job.layout,
                    seeds=[job.settings.seed + i for i in range(batch)], planned_runs=-(-job.num_samples // batch))
        chosen[0] = first.acceleration.mode
        first.close()
    dist.broadcast_object_list(chosen, src=0)
    return dataclasses.replace(job, settings=job.settings.replace(network=chosen[0]))


def recipe_record(job: SampleJob, run_record: dict) -> dict:
    """A run's record with what a recipe needs beyond the engine's own record."""
    from studio.core.recipe import recipe_extras

    extras = recipe_extras(job.card, job.checkpoint, job.settings.model_batch, job.classifier, job.classifier_source)
    return {**run_record, **extras}


def sample_part(job: SampleJob, indices: list[int], progress: bool, notes: bool = True) -> SampledPart:
    """Make samples ``indices`` (sample i with seed S + i), writing each image sample's PNG when its batch ends.
    ``notes``: say on stderr when the network mode asked for was refused (the run then goes on plain)."""
    from tqdm import tqdm

    from studio.core.engine import Run

    settings = job.settings
    num_steps = _num_steps(job)
    part = _empty_part(job, list(indices), num_steps)
    units = work_units(part.indices, settings.batch_size)
    with tqdm(total=len(units) * num_steps, desc="sampling", unit="step", file=sys.stderr,
              disable=not progress, dynamic_ncols=True) as bar:
        for number, unit in enumerate(units):
            seeds = [settings.seed + part.indices[p] for p in unit.positions]
            # planned_runs: the network auto sets up is reused by the batches after this one, so they count
            branch = None if job.branch is None else job.branch.start_for(
                job, [part.indices[p] for p in unit.positions])
            run = Run(job.model, settings.replace(batch_size=len(seeds)), seeds=seeds, classifier=job.classifier,
                      planned_runs=len(units) - number, layout=job.layout, branch=branch)
            if notes and run.acceleration.fell_back:
                bar.write(f"note: {run.acceleration.note}; the run goes on with the plain network", file=sys.stderr)
                notes = False
            _follow(run, np.asarray(unit.positions), part, bar)
            record = recipe_record(job, run.record())
            part.record = part.record or record
            _keep_labels(part, unit, run.class_labels)
            if job.card.data_kind == "image":
                _write_pngs(job, part, unit, record)
    return part


def _num_steps(job: SampleJob) -> int:
    """The steps each batch's run makes (a branch's: its own, below the parent's step)."""
    if job.branch is not None:
        from .branch_parent import branch_timesteps

        return len(branch_timesteps(job.branch, job))
    return len(job.settings.sampler.timestep_list(job.card.num_train_timesteps))


def _empty_part(job: SampleJob, indices: list[int], num_steps: int) -> SampledPart:
    """A part with room for the samples (and their frames, when the job keeps them)."""
    shape = tuple(job.card.data_shape)
    count = len(indices)
    frames = job.keeps_frames
    return SampledPart(indices, np.zeros((count, *shape), dtype=np.float32), None,
                       np.zeros((num_steps + 1, count, *shape), dtype=np.float32) if frames else None,
                       np.zeros((num_steps, count, *shape), dtype=np.float32) if frames else None)


def _follow(run, where: np.ndarray, part: SampledPart, bar) -> None:
    """Run one batch to its end, keeping its samples (and frames, when the part has room) at ``where``."""
    x = run.x_T
    if part.x_t is not None:
        part.x_t[0, where] = _numpy(x)
    for step in run:
        x = step.x_t
        if part.x_t is not None:
            part.x_t[step.index + 1, where] = _numpy(step.x_t)
            part.x0_pred[step.index, where] = _numpy(step.x0_pred)
        bar.update(1)
    part.samples[where] = _numpy(x)


def _keep_labels(part: SampledPart, unit: WorkUnit, labels) -> None:
    if labels is None:
        return
    if part.class_labels is None:
        part.class_labels = [0] * len(part.indices)
    for p, value in zip(unit.positions, labels):
        part.class_labels[p] = int(value)


def _write_pngs(job: SampleJob, part: SampledPart, unit: WorkUnit, record: dict) -> None:
    """Each sample of a finished batch as a PNG carrying its recipe (its place in the whole job)."""
    from studio.core.export import image_pixels
    from studio.core.recipe import recipe_for_sample, sample_png_name, write_png

    pixels = image_pixels(part.samples[np.asarray(unit.positions)], job.card.value_range)
    for j, p in enumerate(unit.positions):
        recipe = recipe_for_sample(record, j, sample_index=part.indices[p])
        write_png(job.out / sample_png_name(part.indices[p]), pixels[j], recipe, scale=job.png_scale)


# --- merging and writing -------------------------------------------------------------------------------------------
def merge_shards(shards: list[dict], shape: tuple[int, ...]) -> SampledPart:
    """One SampledPart in sample order from every process's shard."""
    indices = np.concatenate([s["indices"] for s in shards]).astype(np.int64)
    order = np.argsort(indices, kind="stable")
    samples = np.concatenate([s["samples"].reshape(-1, *shape) for s in shards])[order]
    labels = None
    if any("class_labels" in s for s in shards):
        labels = np.concatenate([s.get("class_labels", np.zeros(0, np.int64)) for s in shards])[order].tolist()
    x_t = x0_pred = None
    if all("x_t" in s for s in shards):
        x_t = np.concatenate([s["x_t"] for s in shards], axis=1)[:, order]
        x0_pred = np.concatenate([s["x0_pred"] for s in shards], axis=1)[:, order]
    record = next((s["record"] for s in shards if s["record"]), {})
    return SampledPart(indices[order].tolist(), samples, labels, x_t, x0_pred, record)


def run_json(job: SampleJob, part: SampledPart, files: list[str], processes: dict | None) -> dict:
    """run.json: the first run's record widened to the whole job (every seed and class label)."""
    settings = job.settings
    record = dict(part.record)
    resolved = dict(record.get("settings", {}))
    resolved.update(seed=settings.seed, batch_size=settings.batch_size, class_label=settings.class_label,
                    device=job.requested_device)
    record.update(
        command="sample",
        settings=resolved,
        num_samples=job.num_samples,
        seeds=[settings.seed + i for i in part.indices],
        class_labels=part.class_labels,
        files=files,
    )
    if job.recipe_source is not None:
        record["from_png"] = job.recipe_source
    if "branch" in record:   # the parent as a whole, not the first batch's record
        record["branch"] = {**record["branch"], "parent": job.branch.describe()}
    if processes is not None:
        record["distributed"] = processes
    return record


def _animation_frames(job: SampleJob, part: SampledPart, timesteps):
    from studio.core.export import animation_frames
    from studio.core.preview import to_uint8_tiles

    card = job.card
    if card.data_kind != "image":
        flat = lambda a: a.reshape(a.shape[0], a.shape[1], -1)  # noqa: E731
        return animation_frames(flat(part.x_t), flat(part.x0_pred), timesteps, job.animation_options,
                                value_range=card.value_range)

    def tiles(values: np.ndarray) -> np.ndarray:
        frames, count = values.shape[:2]
        return to_uint8_tiles(values.reshape(frames * count, *values.shape[2:]),
                              card.value_range).reshape(frames, count, *card.data_shape[1:], 3)

    source = job.animation_options.source
    return animation_frames(tiles(part.x_t) if source != "x0" else None,
                            tiles(part.x0_pred) if source != "xt" else None, timesteps, job.animation_options)


def write_outputs(job: SampleJob, part: SampledPart, processes: dict | None = None) -> list[str]:
    """samples.npy, trajectory files and run.json (last) into the output folder; returns the files' names."""
    from studio.core.export import write_animation, write_json, write_npy, write_trajectory_npz
    from studio.core.recipe import sample_png_name

    out = job.out
    files = [SAMPLES_FILE]
    if job.card.data_kind == "image":
        files += [sample_png_name(i) for i in part.indices]
    if job.trajectory:
        files.append(TRAJECTORY_FILE)
    files += list(job.animations.values())
    files.append(RUN_FILE)
    record = run_json(job, part, files, processes)
    timesteps = record["timesteps"]
    write_npy(out / SAMPLES_FILE, part.samples)
    if job.trajectory:
        write_trajectory_npz(out / TRAJECTORY_FILE, part.x_t, part.x0_pred, timesteps, record,
                             seeds=np.asarray(record["seeds"], dtype=np.int64))
    if job.animations:
        frames = _animation_frames(job, part, timesteps)
        for name in job.animations.values():
            write_animation(out / name, frames, job.animation_options)
    write_json(out / RUN_FILE, record)
    return files


# --- the command ---------------------------------------------------------------------------------------------------
@contextmanager
def cpu_threads(threads: int | None):
    """torch's CPU threads set to ``threads`` while the block runs (None: left as they are)."""
    import torch

    previous = torch.get_num_threads()
    if threads is not None and threads != previous:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


def run(args: argparse.Namespace) -> int:
    from .distributed import (ProcessLayout, barrier, process_group, read_shards, remove_shards,
                              write_shard)

    from studio.core.errors import NumericalError

    layout = ProcessLayout.from_environment()
    job = plan(args, layout)
    with process_group(layout, job.settings.device) as backend:
        try:
            with cpu_threads(job.threads):
                job = agreed_network(job, layout)
                part = sample_part(job, list(layout.share(job.num_samples, job.settings.batch_size)),
                                   progress=job.progress and layout.is_main, notes=layout.is_main)
        except NumericalError as exc:   # the engine's message speaks for the window, which keeps the steps
            pngs = f"; {job.out} holds only the PNGs of batches finished before it" \
                if job.card.data_kind == "image" else ""
            raise NumericalError(f"{exc.what}; samples.npy and run.json were not written{pngs}",
                                 exc.index, exc.t) from None
        if layout.distributed:
            write_shard(job.out, layout.rank, part)
            barrier(layout)
            if not layout.is_main:
                return 0
            part = merge_shards(read_shards(job.out, layout.world_size), tuple(job.card.data_shape))
            files = write_outputs(job, part, layout.describe(backend))
            remove_shards(job.out)
        else:
            files = write_outputs(job, part)
    images = sum(name.endswith(".png") for name in files)
    extras = [name for name in files if name not in (SAMPLES_FILE, RUN_FILE) and not name.endswith(".png")]
    written = ", ".join([SAMPLES_FILE] + ([f"{images} PNGs"] if images else []) + extras + [RUN_FILE])
    print(f"wrote {job.num_samples} samples to {job.out}: {written}")
    return 0
