"""`studio study`: every sampler at every step count (and DDIM at every eta) on the same seeds, with metrics.

    studio study --checkpoint digits --samplers ddim,ddpm --steps 10,20,50,100 --eta 0,0.2,0.5,1 --out table1
    studio study --checkpoint mixture --samplers ddim,euler,heun,dpmpp_2m,unipc --steps 5,10,20,50,100

Writes study.csv, study.json and study.png into --out (docs/studies.md says what each metric measures). Run
again with the same arguments and --out, it goes on where it stopped. ``--checkpoint mixture`` is the exact
denoiser of a known 2-D Gaussian mixture (no file): its samples have an exact log-likelihood.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from studio.core.choices import SAMPLER_NAMES, SPACINGS, VARIANCE_TYPES

from .arguments import DEVICE_METAVAR, add_trust_argument, class_argument

DEFAULT_OUT = "study-out"
DEFAULT_STEPS = "10,20,50,100"   # studio.studies.study_setup.DEFAULT_STEPS
DEFAULT_NUM_SAMPLES = 64         # ...and its DEFAULT_NUM_SAMPLES
MIXTURE = "mixture"   # --checkpoint name of the analytic mixture


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", "-c", default="digits", metavar="PATH",
                        help="a checkpoint, a bundled model name, or 'mixture' (the exact denoiser of a known "
                             "2-D Gaussian mixture) (default digits)")
    parser.add_argument("--samplers", default="ddim", metavar="A,B,...",
                        help=f"samplers to compare, comma-separated ({', '.join(SAMPLER_NAMES)}; default ddim)")
    parser.add_argument("--steps", default=DEFAULT_STEPS, metavar="N,M,...",
                        help=f"step counts (default {DEFAULT_STEPS}; at most the model's training timesteps)")
    parser.add_argument("--eta", default=None, metavar="E,F,...",
                        help="DDIM's eta values, 0 to 1 (default 0): one cell per value for ddim")
    parser.add_argument("--metric", action="append", default=None, metavar="NAME",
                        help="a metric to measure (repeat or comma-separate): ode_error, swd, log_likelihood, "
                             "class_share, frechet (default: every one that applies to the model)")
    parser.add_argument("--num-samples", dest="num_samples", type=int, default=DEFAULT_NUM_SAMPLES, metavar="N",
                        help=f"samples per cell, seeds S to S + N - 1 in every cell (default {DEFAULT_NUM_SAMPLES})")
    parser.add_argument("--seed", type=int, default=0, help="seed S; sample i uses S + i in every cell (default 0)")
    parser.add_argument("--class", dest="class_label", type=class_argument, default=None, metavar="K",
                        help="class index, 'cycle' (default on class-conditional models) or 'none'")
    parser.add_argument("--guidance", type=float, default=None, metavar="W", help="guidance scale (as studio sample)")
    parser.add_argument("--guidance-kind", dest="guidance_kind", default=None,
                        choices=("none", "classifier_free", "classifier"), help="the kind of guidance")
    parser.add_argument("--classifier", default=None, metavar="PATH", help="classifier for classifier guidance")
    parser.add_argument("--spacing", choices=SPACINGS, default="trailing",
                        help="timestep spacing of every cell (default trailing: every cell starts at t = T - 1, "
                             "from the same x_T, as ode_error needs)")
    parser.add_argument("--variance", choices=VARIANCE_TYPES, default=None,
                        help="DDPM's reverse variance (default the card's; fixed_large is the DDIM paper's "
                             "last row of Table 1)")
    parser.add_argument("--clip", dest="clip", action="store_true", default=False,
                        help="clip predicted x0 to the data range in every cell that can (default: no clipping, "
                             "as the DDIM paper's samplers; rules out ode_error)")
    parser.add_argument("--reference", default=None, metavar="FILE|FOLDER",
                        help="reference samples for swd (.npy, N x D) or frechet (.npy or an image folder)")
    parser.add_argument("--judge", default=None, metavar="PATH",
                        help="a classifier checkpoint whose most likely class at t = 0 class_share counts "
                             "(default for digits: an SVC trained on real digits)")
    parser.add_argument("--rows", type=int, default=None, metavar="R",
                        help="rows per shared model call (default: the cells of the most common length side by "
                             "side, at most 1024)")
    parser.add_argument("--device", default="cpu", metavar=DEVICE_METAVAR, help="where the model runs (default cpu)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="torch's CPU threads (default torch's own; 1 for the mixture)")
    parser.add_argument("--out", "-o", default=DEFAULT_OUT, metavar="DIR",
                        help=f"folder for the results (default ./{DEFAULT_OUT}; a study there goes on)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar on stderr")
    add_trust_argument(parser)


def _list(text: str | None, kind, flag: str) -> list:
    from studio.core.errors import SettingsError

    if text is None:
        return []
    parts = [part.strip() for part in str(text).split(",")]
    if not any(parts):
        raise SettingsError(f"{flag} is empty: give at least one value")
    try:
        return [kind(part) for part in parts if part]
    except ValueError:
        raise SettingsError(f"{flag} takes {kind.__name__} values separated by commas, got {text!r}") from None


def plan(args):
    """Every check, then the models: a StudyJob, or a StudyError naming the first problem."""
    from studio.core.checks import require_int
    from studio.core.errors import SettingsError
    from studio.core.export import ensure_folder
    from studio.core.settings import RunSettings
    from studio.studies.study_setup import StudyRequest, build_job, prepare_job

    from .sample import _class_label, _guidance_and_classifier

    request = StudyRequest(
        samplers=_list(args.samplers, str, "--samplers"), steps=_list(args.steps, int, "--steps"),
        etas=_list(args.eta, float, "--eta"),
        metrics=[name for text in (args.metric or []) for name in _list(text, str, "--metric")],
        num_samples=args.num_samples, seed=args.seed, spacing=args.spacing, clip=bool(args.clip),
        variance=args.variance, reference=args.reference, judge_path=args.judge, rows=args.rows)
    require_int("--num-samples", args.num_samples, 2, 100_000)
    require_int("--seed", args.seed, 0)
    if args.rows is not None:
        require_int("--rows", args.rows, 1, 65_536)
    if args.reference is not None and not Path(args.reference).exists():
        raise SettingsError(f"--reference {args.reference} does not exist")
    model, card, kind, mixture, mixture_network = _open_model(args)
    guidance, classifier_source = _guidance_and_classifier(args, card, None, None)
    class_label = _class_label(args, card, None, guidance)
    base = RunSettings(seed=args.seed, batch_size=1, class_label=class_label, guidance=guidance,
                       device=args.device, network="plain")
    judge = None
    if args.judge is not None:
        from studio.core.checkpoints import open_classifier
        judge = open_classifier(args.judge)
    job = build_job(model, kind, request, base, Path(args.out), judge=judge, mixture=mixture,
                    mixture_network=mixture_network, plan_extra={"checkpoint": args.checkpoint})
    prepare_job(job)   # (after every check above: the metrics' data are read and their networks trained)
    if classifier_source is not None:
        from studio.core.checkpoints import open_classifier
        job.classifier = open_classifier(classifier_source)
    model.to(args.device)
    job.out = ensure_folder(args.out)
    return job


def _open_model(args):
    """(denoiser, card, kind, mixture parameters or None, the mixture's exact network or None)."""
    from studio.core.bundled import bundled_by_name
    from studio.core.checkpoints import open_checkpoint, read_card
    from studio.core.checkpoints.torchscript_format import require_trust

    if args.checkpoint == MIXTURE:
        from studio.core.models.analytic import gaussian_mixture_denoiser
        from studio.studies.solver_error import MIXTURE as PARAMETERS
        model = gaussian_mixture_denoiser(PARAMETERS["weights"], PARAMETERS["means"], PARAMETERS["covariances"],
                                          name="mixture (exact)")
        return model, model.card, "mixture", dict(PARAMETERS), model.plain_network
    card = read_card(args.checkpoint)
    require_trust(card, args.trust_code)
    from studio.studies.study_setup import model_kind

    bundled = bundled_by_name(args.checkpoint)
    kind = model_kind(card, bundled.name if bundled is not None else "")
    return open_checkpoint(args.checkpoint, trust_code=args.trust_code), card, kind, None, None


def run(args: argparse.Namespace) -> int:
    from studio.studies.study_files import write_study
    from studio.studies.study_run import StudySplit, run_study, shared_rows

    from .distributed import ProcessLayout, barrier, process_group
    from .sample import cpu_threads

    layout = ProcessLayout.from_environment()
    args.device = layout.device(args.device)   # each process on its own GPU under torchrun
    job = plan(args)
    # the mixture's arithmetic is on a few rows of 2 values: one thread beats a pool's hand-offs many times over
    threads = args.threads if args.threads is not None or job.mixture_network is None else 1
    with process_group(layout, args.device) as backend, cpu_threads(threads):
        split = StudySplit(layout.rank, layout.world_size, lambda: barrier(layout))
        rows = run_study(job, progress=args.progress and layout.is_main, split=split)
    if not layout.is_main:
        return 0
    summary = {"study": job.plan, "metrics": list(job.metrics.names), "rows_per_call": shared_rows(job),
               "metric_notes": job.metrics.notes, "notes": job.notes,
               "floors": {name: value.to_dict() for name, value in job.metrics.floors(job.num_samples).items()}}
    if backend is not None:
        summary["processes"] = {"world_size": layout.world_size, "backend": backend,
                                "split": "whole cells, each in the rows one process gives it"}
    paths = write_study(job.out, rows, summary)
    print(f"wrote {len(rows)} cells to {job.out}: {', '.join(path.name for path in paths)}")
    return 0
