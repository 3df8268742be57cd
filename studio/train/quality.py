"""`python -m studio.train.quality`: how good the bundled demo models are, measured.

(a) digits: an independent classifier (scikit-learn SVC, RBF kernel) is trained on 75% of the real digits and
    its held-out accuracy reported; the digits UNet then samples each class with DDIM (50 steps, eta 0, the
    card's x0 clipping) through the studio engine, and we report the fraction of samples the SVC assigns to the
    requested class. Goal: >= 90% with plain conditional sampling (guidance scale 1).
(b) toy2d: sliced Wasserstein-1 distance and MMD^2 between the MLP's unconditional samples (DDIM 50) and true
    samples, beside the same distances between independent true samples of the same size (the floor that
    sampling noise alone gives), each averaged over REFERENCE_DRAWS true draws. Goal: the model's sliced
    Wasserstein distance is within TOY_SW_GOAL_RATIO x that floor. Also: the fraction of class-conditional
    samples that land nearest the requested Gaussian.
(d) shapes: an independent judge (a small CNN, shape_judge.py) is trained on fresh pictures from the shapes
    generator (never the diffusion model's training set) and its held-out accuracy on generator pictures
    reported; the shapes UNet then samples each of its 6 classes with DDIM 50 (plain conditional, and CFG scale 3
    with use_clipped_model_output) and we report the fraction the judge assigns to the requested class. Goal:
    >= 90% plain conditional. Also: how early x0_pred's coarse content settles compared with its fine content
    (``emergence``): per DDIM step, the distance of x0_pred to the final sample in four spatial frequency bands,
    relative to the final samples' own spread about their average picture.
(c) informative rows: classifier-free guidance (scale 3) and classifier guidance with the noise-aware digits
    classifier (scale 3), both with DDIM use_clipped_model_output=True. With the default DDIM (x0 clipped but eps
    not re-derived from it) strong guidance collapses on these 8x8 digits: the clipped x0 and the unclipped eps
    disagree and the error compounds (figures in RECIPES.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..core.bundled import bundled_by_name
from ..core.engine import sample_final
from ..core.checkpoints import open_checkpoint, open_classifier
from ..core.errors import StudioError
from ..core.samplers import DDIMSettings
from ..core.settings import GuidanceSettings, RunSettings

DIGITS_GOAL = 0.90
SHAPES_GOAL = 0.90
# spatial frequency bands of a 32x32 picture: low < radius <= high in the 2-D spectrum, in cycles per picture.
# colour: the mean colour (DC) alone; coarse: layout (where the shape and the light are); middle: the shape's
# outline; fine: edges, stripes and checks, grain
EMERGENCE_BANDS = {"colour": (-1.0, 0.0), "coarse": (0.0, 2.0), "middle": (2.0, 6.0), "fine": (6.0, 23.0)}
EMERGENCE_THRESHOLD = 0.2     # a band has "emerged" once x0_pred is within 20% of the final picture in it
DIGITS_GUIDANCE_SCALE = 1.0   # plain conditional sampling (no classifier-free guidance) reaches the goal
GUIDED_SCALE = 3.0            # the scale of the informative guidance rows (c)
TOY_SW_GOAL_RATIO = 1.5
REFERENCE_DRAWS = 4
DDIM_STEPS = 50


# --- (a) digits ------------------------------------------------------------------------------------------------
def reference_digit_classifier(seed: int = 0):
    """An SVC trained on 75% of the real digits; returns (classifier, held-out accuracy)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.svm import SVC

    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(digits.data, digits.target, test_size=0.25,
                                                        random_state=seed, stratify=digits.target)
    classifier = SVC(gamma=0.001, C=10.0).fit(x_train, y_train)
    return classifier, float(classifier.score(x_test, y_test))


def to_digit_features(images: torch.Tensor) -> np.ndarray:
    """Model images in [-1, 1] (B, 1, 8, 8) -> scikit-learn's digit features: 64 values on 0..16."""
    return ((images.clamp(-1, 1) + 1) * 8).reshape(images.shape[0], -1).double().numpy()


def generate_digits(denoiser, samples_per_class: int, seed: int, guidance: GuidanceSettings,
                    classifier=None, clipped_eps: bool = False) -> tuple[torch.Tensor, np.ndarray]:
    """One batch cycling through the 10 classes (sample i asks for class i mod 10): images and requested labels."""
    count = 10 * samples_per_class
    sampler = DDIMSettings(steps=DDIM_STEPS, use_clipped_model_output=clipped_eps)
    settings = RunSettings(sampler=sampler, seed=seed, batch_size=count, class_label="cycle", guidance=guidance,
                           device="cpu")
    return sample_final(denoiser, settings, classifier=classifier), np.arange(count) % 10


@dataclass
class DigitsReport:
    reference_accuracy: float
    guidance: str
    guidance_scale: float
    use_clipped_model_output: bool
    samples_per_class: int
    fraction_correct: float
    per_class: list[float] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.fraction_correct >= DIGITS_GOAL


def measure_digits(unet_path, samples_per_class: int = 100, guidance_scale: float = 1.0, seed: int = 0,
                   classifier_path=None, reference=None, clipped_eps: bool = False) -> DigitsReport:
    """Class-conditional (CFG when guidance_scale != 1), or classifier-guided when ``classifier_path`` is given.
    ``clipped_eps``: DDIM's use_clipped_model_output."""
    svc, accuracy = reference if reference is not None else reference_digit_classifier()
    denoiser = open_checkpoint(unet_path)
    classifier = None
    if classifier_path is not None:
        classifier = open_classifier(classifier_path)
        guidance = GuidanceSettings(kind="classifier", scale=guidance_scale)
    elif guidance_scale != 1.0:
        guidance = GuidanceSettings(kind="classifier_free", scale=guidance_scale)
    else:
        guidance = GuidanceSettings()
    with torch.set_grad_enabled(classifier is not None):  # classifier guidance differentiates the classifier
        images, requested = generate_digits(denoiser, samples_per_class, seed, guidance, classifier, clipped_eps)
    correct = svc.predict(to_digit_features(images)) == requested
    per_class = [float(np.mean(correct[requested == label])) for label in range(10)]
    return DigitsReport(accuracy, guidance.kind, guidance_scale, clipped_eps, samples_per_class,
                        float(np.mean(per_class)), per_class)


# --- (d) shapes ------------------------------------------------------------------------------------------------
@dataclass
class ShapesReport:
    judge_accuracy: float
    guidance: str
    guidance_scale: float
    use_clipped_model_output: bool
    samples_per_class: int
    fraction_correct: float
    per_class: list[float] = field(default_factory=list)
    class_names: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.fraction_correct >= SHAPES_GOAL


def measure_shapes(unet_path, samples_per_class: int = 100, guidance_scale: float = 1.0, seed: int = 0,
                   judge=None, clipped_eps: bool = False) -> ShapesReport:
    """Class-conditional DDIM-50 samples of the shapes UNet (CFG when guidance_scale != 1), judged by the
    independent CNN (``judge``: a shape_judge.Judge; trained here when None)."""
    from .shape_judge import train_judge

    judge = judge if judge is not None else train_judge()
    denoiser = open_checkpoint(unet_path)
    classes = len(denoiser.card.class_names)
    guidance = (GuidanceSettings(kind="classifier_free", scale=guidance_scale) if guidance_scale != 1.0
                else GuidanceSettings())
    sampler = DDIMSettings(steps=DDIM_STEPS, use_clipped_model_output=clipped_eps)
    count = classes * samples_per_class
    settings = RunSettings(sampler=sampler, seed=seed, batch_size=count, class_label="cycle", guidance=guidance,
                           device="cpu")
    with torch.no_grad():
        images = sample_final(denoiser, settings)
    requested = np.arange(count) % classes
    correct = judge.predict(images) == requested
    per_class = [float(np.mean(correct[requested == label])) for label in range(classes)]
    return ShapesReport(judge.accuracy, guidance.kind, guidance_scale, clipped_eps, samples_per_class,
                        float(np.mean(per_class)), per_class, list(denoiser.card.class_names))


def band_masks(size: int) -> dict[str, torch.Tensor]:
    """Boolean (size, size) masks over torch.fft.fft2's frequencies for EMERGENCE_BANDS."""
    freq = torch.fft.fftfreq(size) * size
    radius = torch.sqrt(freq[:, None] ** 2 + freq[None, :] ** 2)
    return {name: (radius > low) & (radius <= high) for name, (low, high) in EMERGENCE_BANDS.items()}


@dataclass
class EmergenceReport:
    timesteps: list[int]                   # t of each DDIM step
    relative_error: dict[str, list[float]]  # band -> per step: |band(x0_pred - final)| / |band(final - mean)|
    emerged_at: dict[str, int | None]        # band -> first step (1-based) from which the error stays below threshold
    threshold: float
    samples: int

    @property
    def coarse_before_fine(self) -> bool:
        """The mean colour and the layout settle (within the threshold) before the edges and textures do."""
        colour, coarse, fine = (self.emerged_at[name] for name in ("colour", "coarse", "fine"))
        return colour is not None and coarse is not None and (fine is None or max(colour, coarse) < fine)


def measure_emergence(unet_path, samples_per_class: int = 8, seed: int = 0) -> EmergenceReport:
    """Coarse-to-fine emergence in x0_pred over a plain conditional DDIM-50 run: per step and frequency band,
    the relative distance (summed over the batch) of the step's x0_pred to the final sample."""
    from ..core.engine import sample

    denoiser = open_checkpoint(unet_path)
    count = len(denoiser.card.class_names) * samples_per_class
    settings = RunSettings(sampler=DDIMSettings(steps=DDIM_STEPS), seed=seed, batch_size=count,
                           class_label="cycle", device="cpu")
    with torch.no_grad():
        steps = [(int(step.t), step.x0_pred.double().clone()) for step in sample(denoiser, settings)]
    final = torch.fft.fft2(steps[-1][1])
    # the scale: how far the final pictures stand from their batch's average picture, band by band, so that an
    # x0_pred that is just the average scores 1 (the mean colour of all pictures alone is no information)
    spread = final - final.mean(dim=0, keepdim=True)
    masks = band_masks(final.shape[-1])
    errors: dict[str, list[float]] = {name: [] for name in masks}
    for _, x0_pred in steps:
        diff = torch.fft.fft2(x0_pred) - final
        for name, mask in masks.items():
            errors[name].append(float(diff[..., mask].abs().pow(2).sum().sqrt()
                                      / spread[..., mask].abs().pow(2).sum().sqrt()))
    emerged: dict[str, int | None] = {}
    for name, values in errors.items():
        above = [i for i, v in enumerate(values) if v > EMERGENCE_THRESHOLD]
        first = above[-1] + 1 if above else 0          # 0-based index of the first step that stays below
        emerged[name] = first + 1 if first < len(values) else None
    return EmergenceReport([t for t, _ in steps], errors, emerged, EMERGENCE_THRESHOLD, count)


# --- (b) toy2d -------------------------------------------------------------------------------------------------
@dataclass
class ToyReport:
    samples: int
    sliced_wasserstein_model: float
    sliced_wasserstein_true: float
    mmd_model: float
    mmd_true: float
    mmd_bandwidth: float
    conditional_fraction_nearest: float | None   # class-conditional samples nearest their requested Gaussian

    @property
    def ratio(self) -> float:
        return self.sliced_wasserstein_model / self.sliced_wasserstein_true

    @property
    def passed(self) -> bool:
        return self.ratio <= TOY_SW_GOAL_RATIO


def measure_toy2d(mlp_path, samples: int = 2000, seed: int = 0) -> ToyReport:
    from .data import TOY_STD, sample_toy2d, toy2d_means
    from .metrics import mmd_rbf, sliced_wasserstein

    denoiser = open_checkpoint(mlp_path)
    sampler = DDIMSettings(steps=DDIM_STEPS)
    with torch.no_grad():
        model_points = sample_final(denoiser, RunSettings(sampler=sampler, seed=seed, batch_size=samples,
                                                          device="cpu"))
    # true samples from generators the training data never used (it is drawn with seed 0); the floor compares
    # pairs of independent true draws, and both sides average over REFERENCE_DRAWS draws to steady them
    def true_draw(i: int) -> torch.Tensor:
        return sample_toy2d(samples, torch.Generator().manual_seed(1_000_003 + 7919 * i + seed))[0]

    references = [true_draw(i) for i in range(REFERENCE_DRAWS)]
    others = [true_draw(REFERENCE_DRAWS + i) for i in range(REFERENCE_DRAWS)]
    bandwidth = 2 * TOY_STD  # the scale of a mode: MMD then sees whether the modes are sharp and balanced
    mean = lambda values: float(np.mean(values))  # noqa: E731
    fraction = None
    if denoiser.card.conditional:
        with torch.no_grad():
            conditional = sample_final(denoiser, RunSettings(sampler=sampler, seed=seed + samples,
                                                             batch_size=samples, class_label="cycle", device="cpu"))
        requested = torch.arange(samples) % len(denoiser.card.class_names)
        nearest = torch.cdist(conditional.double(), torch.from_numpy(toy2d_means())).argmin(dim=1)
        fraction = float((nearest == requested).double().mean())
    return ToyReport(
        samples,
        mean([sliced_wasserstein(model_points, r) for r in references]),
        mean([sliced_wasserstein(o, r) for o, r in zip(others, references)]),
        mean([mmd_rbf(model_points, r, bandwidth) for r in references]),
        mean([mmd_rbf(o, r, bandwidth) for o, r in zip(others, references)]),
        bandwidth,
        fraction,
    )


# --- the command -----------------------------------------------------------------------------------------------
def _default(name: str) -> Path:
    return bundled_by_name(name).path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio.train.quality", description=__doc__.split("\n\n")[0])
    parser.add_argument("--digits", default=str(_default("digits")), help="digits UNet checkpoint")
    parser.add_argument("--toy2d", default=str(_default("toy2d")), help="2-D MLP checkpoint")
    parser.add_argument("--classifier", default=str(_default("digits-classifier")),
                        help="noise-aware digits classifier checkpoint (for the classifier-guidance row)")
    parser.add_argument("--shapes", default=str(_default("shapes")), help="shapes UNet checkpoint")
    parser.add_argument("--samples-per-class", type=int, default=100)
    parser.add_argument("--judge-steps", type=int, default=None,
                        help="training steps of the shapes judge (default: shape_judge.JUDGE_STEPS)")
    parser.add_argument("--guidance-scale", type=float, default=DIGITS_GUIDANCE_SCALE,
                        help="classifier-free guidance scale for (a); 1 = plain conditional")
    parser.add_argument("--no-guided", dest="guided", action="store_false",
                        help=f"skip the informative guidance rows (CFG and classifier guidance at {GUIDED_SCALE:g})")
    parser.add_argument("--toy-samples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    try:
        results: dict = {}
        rows = []
        reference = reference_digit_classifier()
        rows.append(("reference SVC held-out accuracy (real digits)", f"{reference[1]:.3f}", ""))
        if Path(args.digits).is_file():
            report = measure_digits(args.digits, args.samples_per_class, args.guidance_scale, args.seed,
                                    reference=reference)
            results["digits"] = {**asdict(report), "goal": DIGITS_GOAL, "passed": report.passed}
            label = "plain conditional" if args.guidance_scale == 1.0 else f"CFG scale {args.guidance_scale:g}"
            rows.append((f"digits UNet, DDIM {DDIM_STEPS}, {label}: fraction of requested class",
                         f"{report.fraction_correct:.3f}", f"goal >= {DIGITS_GOAL:.2f}: "
                                                           f"{'pass' if report.passed else 'FAIL'}"))
            if args.guided:
                cfg = measure_digits(args.digits, args.samples_per_class, GUIDED_SCALE, args.seed,
                                     reference=reference, clipped_eps=True)
                results["digits_cfg"] = asdict(cfg)
                rows.append((f"  CFG scale {GUIDED_SCALE:g}, DDIM use_clipped_model_output", f"{cfg.fraction_correct:.3f}",
                             ""))
                if Path(args.classifier).is_file():
                    guided = measure_digits(args.digits, args.samples_per_class, GUIDED_SCALE, args.seed,
                                            classifier_path=args.classifier, reference=reference, clipped_eps=True)
                    results["digits_classifier_guidance"] = asdict(guided)
                    rows.append((f"  null class + classifier guidance scale {GUIDED_SCALE:g}, same DDIM",
                                 f"{guided.fraction_correct:.3f}", ""))
        else:
            rows.append(("digits UNet", "absent", args.digits))
        results["reference_svc_accuracy"] = reference[1]
        if Path(args.toy2d).is_file():
            toy = measure_toy2d(args.toy2d, args.toy_samples, args.seed)
            results["toy2d"] = {**asdict(toy), "ratio": toy.ratio, "goal_ratio": TOY_SW_GOAL_RATIO,
                                "passed": toy.passed}
            rows.append((f"toy2d sliced W1: model vs true (n={toy.samples}, DDIM {DDIM_STEPS})",
                         f"{toy.sliced_wasserstein_model:.4f}",
                         f"ratio {toy.ratio:.2f}, goal <= {TOY_SW_GOAL_RATIO:g}: {'pass' if toy.passed else 'FAIL'}"))
            rows.append(("toy2d sliced W1: true vs true", f"{toy.sliced_wasserstein_true:.4f}", "sampling-noise floor"))
            rows.append((f"toy2d MMD^2 (RBF, bandwidth {toy.mmd_bandwidth:g}): model vs true", f"{toy.mmd_model:.5f}",
                         ""))
            rows.append(("toy2d MMD^2: true vs true", f"{toy.mmd_true:.5f}", "sampling-noise floor"))
            if toy.conditional_fraction_nearest is not None:
                rows.append(("toy2d class-conditional samples nearest their Gaussian",
                             f"{toy.conditional_fraction_nearest:.3f}", ""))
        else:
            rows.append(("toy2d MLP", "absent", args.toy2d))
        rows += _shapes_rows(args, results)
    except StudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:  # scikit-learn is the optional "train" extra
        print(f"error: the quality measurement needs {exc.name or 'scikit-learn'}: "
              "pip install scikit-learn (the studio's train extra)", file=sys.stderr)
        return 2
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>8}  {note}")
    if args.json:
        _write_json(Path(args.json), results)
    return 0


def _shapes_rows(args, results: dict) -> list[tuple[str, str, str]]:
    from .shape_judge import train_judge

    if not Path(args.shapes).is_file():
        return [("shapes UNet", "absent", args.shapes)]
    judge = train_judge(steps=args.judge_steps) if args.judge_steps else train_judge()
    rows = [("shapes judge (CNN) held-out accuracy (real generator pictures)", f"{judge.accuracy:.3f}", "")]
    results["shapes_judge_accuracy"] = judge.accuracy
    report = measure_shapes(args.shapes, args.samples_per_class, 1.0, args.seed, judge)
    results["shapes"] = {**asdict(report), "goal": SHAPES_GOAL, "passed": report.passed}
    rows.append((f"shapes UNet, DDIM {DDIM_STEPS}, plain conditional: fraction of requested class",
                 f"{report.fraction_correct:.3f}", f"goal >= {SHAPES_GOAL:.2f}: {'pass' if report.passed else 'FAIL'}"))
    if args.guided:
        cfg = measure_shapes(args.shapes, args.samples_per_class, GUIDED_SCALE, args.seed, judge, clipped_eps=True)
        results["shapes_cfg"] = asdict(cfg)
        rows.append((f"  CFG scale {GUIDED_SCALE:g}, DDIM use_clipped_model_output", f"{cfg.fraction_correct:.3f}",
                     ""))
    emergence = measure_emergence(args.shapes, max(1, min(args.samples_per_class, 8)), args.seed)
    results["shapes_emergence"] = {**asdict(emergence), "coarse_before_fine": emergence.coarse_before_fine}
    for name, step in emergence.emerged_at.items():
        low, high = EMERGENCE_BANDS[name]
        rows.append((f"  x0_pred within {emergence.threshold:.0%} of the final sample, {name} band "
                     f"({low:g}-{high:g} cycles)", "never" if step is None else f"step {step}",
                     f"of {DDIM_STEPS} (t={emergence.timesteps[step - 1]})" if step else ""))
    return rows


def _write_json(path: Path, data: dict) -> None:
    from .files import write_atomically

    write_atomically(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2) + "\n"))


if __name__ == "__main__":
    sys.exit(main())
