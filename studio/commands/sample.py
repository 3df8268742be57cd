"""`studio sample`: sample from a checkpoint headless and write what the run produced into a folder.

    studio sample --out out                                   # 16 digits from the bundled model
    studio sample --checkpoint model.safetensors --sampler ddpm --num-samples 64 --batch 16 --out out
    studio sample --from-png out/sample_00003.png --out again   # the same sample, from its PNG's recipe
    torchrun --nproc_per_node 2 -m studio sample --num-samples 64 --out out
    studio sample --network compiled_channels_last --out out   # a faster network (within 1e-4 of the plain one)

Writes into OUT: samples.npy (float32, N x C x H x W or N x D, in the model's data space), sample_NNNNN.png
per image sample (each carrying its recipe), run.json (every setting, the timesteps, per-sample seeds, the
checkpoint's sha256, the studio version); with --trajectory trajectory.npz, with --gif trajectory.gif (also
--webp, --mp4). Sample i uses seed S + i, and the model is always called on exactly --model-batch samples
(see distributed.py for why), so the files do not depend on --batch or on how the work was split.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Choices spelt out here so --help needs no torch import (a test checks they match the core's).
SAMPLERS = ("ddim", "ddpm")
SPACINGS = ("leading", "linspace", "trailing", "quad")
VARIANCES = ("fixed_small", "fixed_large", "learned", "learned_range")
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("float32", "float16", "bfloat16")
GUIDANCE_KINDS = ("none", "classifier_free", "cfg", "classifier")
NOISE_DEVICES = ("cpu", "device")
NETWORK_MODES = ("plain", "channels_last", "compiled", "compiled_channels_last", "cuda_graph")
ANIMATION_SOURCES = ("xt", "x0", "both")
DEFAULT_DDIM_STEPS = 50
DEFAULT_BATCH = 16
DEFAULT_OUT = "studio-out"

SAMPLES_FILE = "samples.npy"
RUN_FILE = "run.json"
TRAJECTORY_FILE = "trajectory.npz"
ANIMATION_FILES = {"gif": "trajectory.gif", "webp": "trajectory.webp", "mp4": "trajectory.mp4"}


UNCONDITIONAL = "none"


def class_argument(value: str):
    """--class: a class index, 'cycle', or 'none' (the model's null class: unconditional)."""
    if value in ("cycle", UNCONDITIONAL):
        return value
    try:
        label = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a class index, 'cycle' or 'none', got {value!r}") from None
    if label < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {label}")
    return label


def add_arguments(parser: argparse.ArgumentParser) -> None:
    model = parser.add_argument_group("model")
    model.add_argument("--checkpoint", "-c", default=None, metavar="PATH",
                       help="a checkpoint file or folder, or a bundled model name (default: digits; with "
                            "--from-png: the recipe's checkpoint)")
    model.add_argument("--from-png", dest="from_png", default=None, metavar="FILE",
                       help="take every setting from the recipe in a PNG the studio wrote; flags given as well "
                            "override it (default then: one sample, batch 1)")
    model.add_argument("--allow-changed-checkpoint", dest="allow_changed", action="store_true",
                       help="with --from-png: sample even if the checkpoint's sha256 is not the recipe's (the "
                            "file changed since the PNG was made; the samples will differ)")
    add_trust_argument(model)

    sampler = parser.add_argument_group("sampler (unset values come from the model card)")
    sampler.add_argument("--sampler", choices=SAMPLERS, default=None, help="default ddim")
    sampler.add_argument("--steps", type=int, default=None,
                         help=f"denoising steps (default: {DEFAULT_DDIM_STEPS} for ddim, "
                              "num_train_timesteps for ddpm; at most num_train_timesteps)")
    sampler.add_argument("--eta", type=float, default=None, help="DDIM noise, 0 (deterministic, default) to 1")
    sampler.add_argument("--spacing", choices=SPACINGS, default=None, help="timestep spacing (default leading)")
    sampler.add_argument("--variance", choices=VARIANCES, default=None,
                         help="DDPM reverse variance (default: the card's variance_type)")
    sampler.add_argument("--clip", dest="clip", action="store_true", default=None,
                         help="clip predicted x0 to the data range (default: the card's clip_sample)")
    sampler.add_argument("--no-clip", dest="clip", action="store_false", help="do not clip predicted x0")

    samples = parser.add_argument_group("samples")
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
    samples.add_argument("--guidance-kind", dest="guidance_kind", choices=GUIDANCE_KINDS, default=None,
                         help="force the kind of guidance (default: from --guidance and --classifier)")
    samples.add_argument("--classifier", default=None, metavar="PATH",
                         help="noise-aware classifier checkpoint for classifier guidance")

    device = parser.add_argument_group("device")
    device.add_argument("--device", default=None, metavar="{auto,cpu,cuda,mps}",
                        help="where the model runs (default auto: cuda, then mps, then cpu; cuda:N works too)")
    device.add_argument("--dtype", choices=DTYPES, default=None, help="model precision (default float32; "
                                                                      "half precision only on a GPU)")
    device.add_argument("--noise-device", dest="noise_device", choices=NOISE_DEVICES, default=None,
                        help="draw noise on the cpu (default: same images on every device) or on the device")
    device.add_argument("--model-batch", dest="model_batch", type=int, default=None, metavar="M",
                        help="call the model on exactly M samples at a time, padding or splitting each batch, so "
                             "the results do not depend on --batch or on the process split (default 16, or the "
                             "recipe's; 0: call it on each batch as it is, whose last bits then depend on the batch)")
    device.add_argument("--network", choices=NETWORK_MODES, default=None,
                        help="the network's speed mode (default plain, or the recipe's): channels_last (memory "
                             "layout), compiled (torch.compile; a warm-up of tens of seconds on a CPU, once per "
                             "process), compiled_channels_last or cuda_graph (a CUDA GPU only: the forward "
                             "recorded once and replayed with one launch per step). The faster modes change "
                             "outputs in their last bits and are kept only if no output on a probe batch moves by more than 1e-4; "
                             "otherwise the run goes on plain, says why on stderr, and run.json records plain")

    output = parser.add_argument_group("output")
    output.add_argument("--out", "-o", default=DEFAULT_OUT, metavar="DIR",
                        help=f"folder for the results (default ./{DEFAULT_OUT}; created if missing)")
    output.add_argument("--trajectory", action="store_true",
                        help="also write trajectory.npz: x_t (S+1 frames from x_T), x0_pred (S frames), timesteps")
    output.add_argument("--png-scale", dest="png_scale", type=int, default=1, metavar="K",
                        help="blow each PNG pixel up to a KxK square (default 1: the model's own pixels)")
    output.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar on stderr")

    anim = parser.add_argument_group("trajectory animation")
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


def add_trust_argument(parser) -> None:
    """--trust-code, for every command that loads a checkpoint."""
    parser.add_argument("--trust-code", dest="trust_code", action="store_true",
                        help="allow loading a TorchScript archive: it is a program, not data, and runs with your "
                             "permissions once loaded (its code is checked for file and process calls first, "
                             "whether trusted or not); other formats never need this")


# --- planning: every check before any work -------------------------------------------------------------------------
@dataclass
class SampleJob:
    """Everything a `studio sample` run needs, checked."""

    model: object                 # the Denoiser the runs call (FixedBatchDenoiser)
    classifier: object | None
    settings: object              # RunSettings: seed S, batch size B, class label as asked (int, cycle or None)
    num_samples: int
    out: Path
    checkpoint: str               # where the model came from, as recipes record it
    classifier_source: str | None
    model_batch: int
    trajectory: bool
    animations: dict = field(default_factory=dict)   # kind -> file name
    animation_options: object | None = None
    png_scale: int = 1
    progress: bool = True
    recipe_source: str | None = None
    requested_device: str = "auto"   # as asked; settings.device is this process's own (cuda:LOCAL_RANK)

    @property
    def card(self):
        return self.model.card

    @property
    def keeps_frames(self) -> bool:
        return self.trajectory or bool(self.animations)


def _note(message: str, layout) -> None:
    if layout.is_main:
        print(f"note: {message}", file=sys.stderr)


def _sampler_settings(args, card, base):
    from studio.core.errors import SettingsError
    from studio.core.samplers import sampler_settings

    name = args.sampler or (base.name if base is not None else "ddim")
    values = {}
    if base is not None and base.name == name:
        values = {k: v for k, v in base.to_dict().items() if k != "sampler"}
    elif args.steps is None:
        values["steps"] = min(DEFAULT_DDIM_STEPS, card.num_train_timesteps) if name == "ddim" \
            else card.num_train_timesteps
    if args.steps is not None:
        values["steps"] = args.steps
        values.pop("timesteps", None)
    if args.spacing is not None:
        values["spacing"] = args.spacing
        values.pop("timesteps", None)
    if args.clip is not None:
        values["clip_sample"] = args.clip
    if args.eta is not None:
        if name != "ddim":
            raise SettingsError("--eta applies to --sampler ddim (DDPM's noise is set by --variance)")
        values["eta"] = args.eta
    if args.variance is not None:
        if name != "ddpm":
            raise SettingsError("--variance applies to --sampler ddpm (DDIM's noise is set by --eta)")
        values["variance_type"] = args.variance
    return sampler_settings(name, **values)


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


def _check_recipe_checkpoint(recipe: dict, card, source: str, allow_changed: bool, layout) -> None:
    """The checkpoint must be the one the recipe was made with (its sha256), unless the user says otherwise.
    Checked from the card alone, before anything is loaded."""
    from studio.core.errors import CheckpointError

    wanted = recipe["model"].get("sha256") or ""
    if not wanted or wanted == card.sha256:
        return
    what = (f"{source} is not the checkpoint the recipe was made with (sha256 {card.sha256[:12]} instead of "
            f"{wanted[:12]})")
    if not allow_changed:
        raise CheckpointError(f"{what}; pass --allow-changed-checkpoint to sample with it anyway")
    _note(f"{what}; the samples will differ", layout)


def plan(args, layout) -> SampleJob:
    """Open the models and check every setting; raises a StudioError naming the first problem."""
    from studio.core.bundled import DEFAULT_MODEL, bundled_source
    from studio.core.checkpoints import open_checkpoint, open_classifier, read_card
    from studio.core.checkpoints.torchscript_format import require_trust
    from studio.core.engine import class_labels_for, resolve_device, resolve_dtype
    from studio.core.errors import SettingsError
    from studio.core.export import AnimationOptions, ensure_folder
    from studio.core.recipe import read_recipe, recipe_checkpoint, recorded_source, settings_from_recipe
    from studio.core.settings import RunSettings

    from studio.core.models.fixed_batch import DEFAULT_MODEL_BATCH, FixedBatchClassifier, FixedBatchDenoiser

    recipe = base = None
    if args.from_png is not None:
        recipe = read_recipe(args.from_png)
        base, _ = settings_from_recipe(recipe)
    source = args.checkpoint or (recipe_checkpoint(recipe) if recipe is not None else bundled_source(DEFAULT_MODEL))
    if source is None:
        raise SettingsError(f"the recipe in {args.from_png} does not say where its checkpoint is "
                            f"(model {recipe['model'].get('name')!r}); pass --checkpoint")
    card = read_card(source)   # the card alone (nothing loaded, no code run): every check below comes first
    require_trust(card, args.trust_code)
    if recipe is not None:
        _check_recipe_checkpoint(recipe, card, source, args.allow_changed, layout)

    classifier_source = args.classifier
    if classifier_source is None and recipe is not None and args.guidance_kind in (None, "classifier") \
            and base.guidance.kind == "classifier":
        classifier_source = (recipe.get("classifier") or {}).get("checkpoint")
    guidance = _guidance(args, card, classifier_source is not None, base)
    if guidance.kind != "classifier":
        classifier_source = None

    # a class-conditional model cycles through its classes unless told otherwise: one batch shows them all
    default_class = base.class_label if base is not None else ("cycle" if card.conditional else None)
    class_label = args.class_label if args.class_label is not None else default_class
    if class_label == UNCONDITIONAL:
        class_label = None
    if args.class_label not in (None, UNCONDITIONAL) and not card.conditional and guidance.kind != "classifier":
        raise SettingsError(f"--class needs a class-conditional model; {card.name!r} is unconditional")
    if class_label == "cycle" and not card.conditional:
        raise SettingsError(f"--class cycle needs a class-conditional model; {card.name!r} has no classes")

    batch = args.batch if args.batch is not None else (1 if recipe is not None else DEFAULT_BATCH)
    if batch < 1:
        raise SettingsError(f"--batch must be >= 1, got {batch}")
    # a recipe without model_batch came from a run that called the model on its batch as it was (0)
    model_batch = args.model_batch if args.model_batch is not None else \
        int(recipe.get("model_batch", 0) if recipe is not None else DEFAULT_MODEL_BATCH)
    if model_batch < 0:
        raise SettingsError(f"--model-batch must be >= 0, got {model_batch}")
    num_samples = args.num_samples if args.num_samples is not None else (1 if recipe is not None else batch)
    if num_samples < 1:
        raise SettingsError(f"--num-samples must be >= 1, got {num_samples}")
    if args.png_scale < 1:
        raise SettingsError(f"--png-scale must be >= 1, got {args.png_scale}")
    requested_device = args.device or (base.device if base is not None else "auto")
    settings = RunSettings(
        sampler=_sampler_settings(args, card, base.sampler if base is not None else None),
        seed=args.seed if args.seed is not None else (base.seed if base is not None else 0),
        batch_size=batch,
        class_label=class_label,
        guidance=guidance,
        device=layout.device(requested_device),
        dtype=args.dtype or (base.dtype if base is not None else "float32"),
        noise_device=args.noise_device or (base.noise_device if base is not None else "cpu"),
        network=args.network or (base.network if base is not None else "plain"),
    )
    settings.sampler.resolve(card)                           # steps > T, learned variance on a fixed model ...
    RunSettings(seed=settings.seed, batch_size=num_samples)  # the last seed S + N - 1 must be valid
    class_labels_for(card, settings, 1)                       # class and guidance against the model
    resolve_dtype(settings.dtype, resolve_device(settings.device))

    animations = {kind: name for kind, name in ANIMATION_FILES.items() if getattr(args, kind)}
    options = None
    if animations or args.anim_sample is not None:
        options = AnimationOptions(source=args.anim_source, sample=args.anim_sample, stride=args.frame_stride,
                                   max_frames=args.max_frames, frame_ms=args.frame_ms, hold_ms=args.hold_ms,
                                   label=args.step_label, scale=args.anim_scale)
        if args.anim_sample is not None and not 0 <= args.anim_sample < num_samples:
            raise SettingsError(f"--anim-sample must be from 0 to {num_samples - 1}, got {args.anim_sample}")
    if "mp4" in animations:
        from studio.core.export import mp4_available

        if not mp4_available():
            raise SettingsError("--mp4 needs the imageio-ffmpeg package (pip install imageio-ffmpeg)")

    _check_memory(card, settings, num_samples, model_batch, args, layout)
    denoiser = open_checkpoint(source, trust_code=args.trust_code)
    classifier = open_classifier(classifier_source) if classifier_source is not None else None
    out = ensure_folder(args.out)
    return SampleJob(
        model=FixedBatchDenoiser(denoiser, model_batch),
        classifier=FixedBatchClassifier(classifier, model_batch) if classifier is not None else None,
        settings=settings, num_samples=num_samples, out=out, checkpoint=recorded_source(source),
        classifier_source=recorded_source(classifier_source) if classifier_source else None,
        model_batch=model_batch, trajectory=args.trajectory, animations=animations, animation_options=options,
        png_scale=args.png_scale, progress=args.progress,
        recipe_source=str(Path(args.from_png).resolve()) if args.from_png else None,
        requested_device=requested_device,
    )


def _check_memory(card, settings, num_samples: int, model_batch: int, args, layout) -> None:
    """Refuse, before anything is allocated, a request this machine cannot hold or whose pictures would be too
    large to read back (``--batch 10000000``, ``--model-batch 1000000000``, ``--png-scale 100000``)."""
    from studio.core.export import select_frames, upscale_factor
    from studio.core.memory_budget import require_fits
    from studio.core.preview import GridLayout
    from studio.core.run_memory import require_picture_fits, require_run_fits

    steps = len(settings.sampler.timestep_list(card.num_train_timesteps))
    per_process = -(-num_samples // max(1, layout.world_size))
    batch = min(settings.batch_size, per_process)
    rows = (model_batch or batch) * (2 if settings.guidance.kind == "classifier_free" else 1)
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


def recipe_record(job: SampleJob, run_record: dict) -> dict:
    """A run's record with what a recipe needs beyond the engine's own record."""
    card = job.card
    record = dict(run_record)
    record["checkpoint"] = job.checkpoint
    record["model_batch"] = job.model_batch
    record["data"] = {"kind": card.data_kind, "shape": list(card.data_shape), "value_range": list(card.value_range)}
    if job.classifier_source is not None:
        clf_card = job.classifier.card
        record["classifier"] = {"checkpoint": job.classifier_source, "name": getattr(clf_card, "name", None),
                                "sha256": getattr(clf_card, "sha256", None)}
    return record


def sample_part(job: SampleJob, indices: list[int], progress: bool, notes: bool = True) -> SampledPart:
    """Make samples ``indices`` (sample i with seed S + i), writing each image sample's PNG when its batch ends.
    ``notes``: say on stderr when the network mode asked for was refused (the run then goes on plain)."""
    from tqdm import tqdm

    from studio.core.engine import Run
    from studio.core.export import image_pixels
    from studio.core.recipe import recipe_for_sample, sample_png_name, write_png

    card = job.card
    settings = job.settings
    shape = tuple(card.data_shape)
    count = len(indices)
    num_steps = len(settings.sampler.timestep_list(card.num_train_timesteps))
    samples = np.zeros((count, *shape), dtype=np.float32)
    x_t = np.zeros((num_steps + 1, count, *shape), dtype=np.float32) if job.keeps_frames else None
    x0_pred = np.zeros((num_steps, count, *shape), dtype=np.float32) if job.keeps_frames else None
    labels: list[int] | None = None
    record: dict = {}
    units = work_units(list(indices), settings.batch_size)
    with tqdm(total=len(units) * num_steps, desc="sampling", unit="step", file=sys.stderr,
              disable=not progress, dynamic_ncols=True) as bar:
        for unit in units:
            seeds = [settings.seed + indices[p] for p in unit.positions]
            run = Run(job.model, settings.replace(batch_size=len(seeds)), seeds=seeds, classifier=job.classifier)
            if notes and run.acceleration.fell_back:
                bar.write(f"note: {run.acceleration.note}; the run goes on with the plain network", file=sys.stderr)
                notes = False
            where = np.asarray(unit.positions)
            x = run.x_T
            if x_t is not None:
                x_t[0, where] = _numpy(x)
            for step in run:
                x = step.x_t
                if x_t is not None:
                    x_t[step.index + 1, where] = _numpy(step.x_t)
                    x0_pred[step.index, where] = _numpy(step.x0_pred)
                bar.update(1)
            samples[where] = _numpy(x)
            unit_record = recipe_record(job, run.record())
            record = record or unit_record
            if run.class_labels is not None:
                labels = labels if labels is not None else [0] * count
                for p, value in zip(unit.positions, run.class_labels):
                    labels[p] = int(value)
            if card.data_kind == "image":
                pixels = image_pixels(samples[where], card.value_range)
                for j, p in enumerate(unit.positions):
                    recipe = recipe_for_sample(unit_record, j, sample_index=indices[p])
                    write_png(job.out / sample_png_name(indices[p]), pixels[j], recipe, scale=job.png_scale)
    return SampledPart(list(indices), samples, labels, x_t, x0_pred, record)


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
def run(args: argparse.Namespace) -> int:
    from .distributed import (ProcessLayout, barrier, process_group, read_shards, remove_shards,
                              write_shard)

    from studio.core.errors import NumericalError

    layout = ProcessLayout.from_environment()
    job = plan(args, layout)
    with process_group(layout, job.settings.device) as backend:
        try:
            part = sample_part(job, list(layout.share(job.num_samples)), progress=job.progress and layout.is_main,
                               notes=layout.is_main)
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
