"""`studio study`: cells on the same seeds with their metrics, files a user can read, resumable, and every bad
argument refused before any sampling."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from cli_running import run_studio

from studio.studies import study_run

MIXTURE_STUDY = ("--checkpoint", "mixture", "--samplers", "ddim,euler,heun,ddpm", "--steps", "3,6", "--eta", "0,1",
                 "--num-samples", 24, "--no-progress")


@pytest.fixture(autouse=True)
def short_references(monkeypatch):
    """The ODE references' length is not what these tests test: short ones (still converged far below the
    errors compared)."""
    monkeypatch.setattr(study_run, "MIXTURE_REFERENCE_STEPS", 40)
    monkeypatch.setattr(study_run, "REFERENCE_MAX_STEPS", 40)


@pytest.fixture(scope="module")
def mixture_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(study_run, "MIXTURE_REFERENCE_STEPS", 40)
        code, printed, err = run_studio("study", *MIXTURE_STUDY, "--out", out)
    assert code == 0, err
    return out, printed


def cells_of(out) -> dict:
    return {row["key"]: row for row in json.loads((out / "study.json").read_text())["cells"]}


def test_a_study_writes_every_cell_with_its_metrics(mixture_study):
    out, printed = mixture_study
    assert "wrote 10 cells" in printed
    cells = cells_of(out)
    assert list(cells) == ["ddim-3-eta0", "ddim-3-eta1", "ddim-6-eta0", "ddim-6-eta1", "euler-3", "euler-6",
                           "heun-3", "heun-6", "ddpm-3", "ddpm-6"]
    with open(out / "study.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [row["key"] for row in table] == list(cells)
    assert {"ode_error", "swd", "log_likelihood", "swd_se"} <= set(table[0])
    assert cells["heun-6"]["model_calls"] == 11 and cells["ddim-6-eta0"]["model_calls"] == 6
    # the ODE error is the solver's: a deterministic sampler's falls with more steps, a stochastic one has none
    for series in ("ddim-{}-eta0", "euler-{}", "heun-{}"):
        few, more = (cells[series.format(n)]["metrics"]["ode_error"]["value"] for n in (3, 6))
        assert 0 < more < few
    assert cells["ddpm-6"]["metrics"]["ode_error"] is None and cells["ddim-6-eta1"]["metrics"]["ode_error"] is None
    summary = json.loads((out / "study.json").read_text())
    assert summary["floors"]["swd"]["value"] > 0 and summary["floors"]["log_likelihood"]["value"] < 0
    assert (out / "study.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cells_start_from_the_same_noise(mixture_study):
    """Every cell draws sample i from seed S + i: DDIM with eta 0 is Euler's method in sigma (Karras et al.),
    and DDIM with eta 1 is DDPM (the DDIM paper), so those pairs' samples agree to float rounding."""
    out, _ = mixture_study
    load = lambda key: np.load(out / "cells" / f"{key}.npy")   # noqa: E731
    assert np.abs(load("ddim-6-eta0") - load("euler-6")).max() < 1e-4
    assert np.abs(load("ddim-6-eta1") - load("ddpm-6")).max() < 1e-4
    assert np.abs(load("ddim-6-eta0") - load("heun-6")).max() > 1e-3   # a control: another solver differs


def test_a_cell_records_the_rows_it_was_made_in_and_comes_back_alone(mixture_study):
    from studio.core.engine import Run
    from studio.core.models.fixed_batch import RowLayout
    from studio.core.models.analytic import gaussian_mixture_denoiser
    from studio.core.settings import RunSettings
    from studio.studies.solver_error import MIXTURE

    out, _ = mixture_study
    record = cells_of(out)["heun-6"]["record"]
    model = gaussian_mixture_denoiser(MIXTURE["weights"], MIXTURE["means"], MIXTURE["covariances"])
    settings = RunSettings.from_dict(record["settings"])
    run = Run(model, settings, seeds=record["seeds"], layout=RowLayout(offset=record["row_offset"]))
    x = run.x_T
    for step in run:
        x = step.x_t
    assert np.array_equal(x.numpy(), np.load(out / "cells" / "heun-6.npy"))


def test_an_interrupted_study_goes_on_where_it_stopped(tmp_path, monkeypatch):
    args = ("--checkpoint", "mixture", "--samplers", "ddim,euler", "--steps", "2,4", "--num-samples", 8,
            "--no-progress", "--out", tmp_path)
    written = []
    original = study_run._write_cell

    def stop_after_two(job, cell, outcome, reference):
        if len(written) == 2:
            raise KeyboardInterrupt
        written.append(cell.key)
        original(job, cell, outcome, reference)

    monkeypatch.setattr(study_run, "_write_cell", stop_after_two)
    code, _, _ = run_studio("study", *args)
    assert code == 130 and len(written) == 2 and not (tmp_path / "study.csv").exists()
    monkeypatch.setattr(study_run, "_write_cell", lambda job, cell, *rest: written.append(cell.key) or
                        original(job, cell, *rest))
    code, printed, err = run_studio("study", *args)
    assert code == 0, err
    assert sorted(written) == sorted(["ddim-2-eta0", "ddim-4-eta0", "euler-2", "euler-4"])   # each cell once
    assert "wrote 4 cells" in printed
    code, _, err = run_studio("study", *args[:-2], "--num-samples", 9, "--out", tmp_path)
    assert code == 2 and "holds a study with other arguments (num_samples)" in err


@pytest.mark.parametrize("argv, message", [
    (("--steps", "5,2000"), "--steps 2000 is outside 1 to the model's 1000 training timesteps"),
    (("--samplers", ""), "--samplers is empty"),
    (("--samplers", "ddim,fast"), "unknown sampler 'fast'"),
    (("--eta", "0.5", "--samplers", "euler"), "--eta applies to ddim"),
    (("--metric", "log_likelihood"), "cannot be measured on 'digits-unet': the exact log-likelihood needs a known"),
    (("--metric", "swd"), "swd is for vector data"),
    (("--metric", "sharpness"), "unknown metric 'sharpness'"),
    (("--spacing", "leading"), "ode_error compares runs from the same x_T at t = T - 1"),
    (("--checkpoint", "toy2d", "--metric", "frechet"), "frechet is for image models"),
    (("--clip", "--metric", "ode_error"), "its reference solver (DPM-Solver++) has no x0 clip"),
])
def test_bad_arguments_give_one_error_line_before_any_sampling(tmp_path, monkeypatch, argv, message):
    monkeypatch.setattr(study_run, "run_cells", lambda *a, **k: pytest.fail("sampled"))
    code, _, err = run_studio("study", *argv, "--out", tmp_path / "out", "--no-progress")
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert not (tmp_path / "out").exists()


def test_a_reference_file_of_the_wrong_shape_is_refused(tmp_path):
    np.save(tmp_path / "ref.npy", np.zeros((10, 3)))
    code, _, err = run_studio("study", "--checkpoint", "toy2d", "--reference", tmp_path / "ref.npy", "--metric",
                              "swd", "--out", tmp_path / "out")
    assert code == 2 and "holds an array of shape (10, 3); the model's samples are (2,)" in err


# the commands docs/studies.md shows results of (its run-by block): run here scaled down, as the docs say
DOCUMENTED = (
    "studio study --checkpoint digits --samplers ddim,ddpm --steps 10,20,50,100 --eta 0,0.2,0.5,1 --variance fixed_large --num-samples 256 --out digits-table1",
    "studio study --checkpoint mixture --samplers ddim,ddpm --steps 10,20,50,100 --eta 0,0.2,0.5,1 --variance fixed_large --num-samples 1000 --out mixture-table1",
    "studio study --checkpoint mixture --samplers ddim,euler,heun,dpmpp_2m,dpmpp_3m,unipc,pndm --steps 5,10,20,50,100 --num-samples 256 --out mixture-solvers",
    "studio study --checkpoint digits --samplers ddim,euler,heun,dpmpp_2m,dpmpp_3m,unipc,pndm --steps 5,10,20,50,100 --num-samples 64 --metric ode_error --out digits-solvers",
)


def scaled_down(command: str, out) -> list[str]:
    """A documented command at 2 and 6 steps, 24 samples, into ``out``."""
    argv = command.split()[2:]
    for flag, value in (("--steps", "2,6"), ("--num-samples", "24"), ("--out", str(out))):
        argv[argv.index(flag) + 1] = value
    return argv


# (the digits solvers' command is the mixture's on the digits model, which the digits table's test runs)
@pytest.mark.parametrize("command", DOCUMENTED[1:3], ids=["mixture-table1", "mixture-solvers"])
def test_the_documented_studies_run(tmp_path, command):
    code, printed, err = run_studio("study", *scaled_down(command, tmp_path), "--no-progress")
    assert code == 0, err
    samplers = command.split("--samplers ")[1].split()[0].split(",")
    etas = 4 if "--eta" in command else 1
    assert f"wrote {2 * (len(samplers) + (etas - 1) * ('ddim' in samplers))} cells" in printed


@pytest.mark.slow
def test_the_digits_table_measures_class_share_frechet_and_the_ode_error(tmp_path):
    code, _, err = run_studio("study", *scaled_down(DOCUMENTED[0], tmp_path), "--no-progress")
    assert code == 0, err
    cells = cells_of(tmp_path)
    assert len(cells) == 10
    few, more = cells["ddim-2-eta0"]["metrics"], cells["ddim-6-eta0"]["metrics"]
    assert set(few) == {"ode_error", "class_share", "frechet"}
    assert more["ode_error"]["value"] < few["ode_error"]["value"]
    assert more["frechet"]["value"] < few["frechet"]["value"]       # 6 steps look more like digits than 2
    assert 0.5 <= more["class_share"]["value"] <= 1.0
    assert cells["ddpm-6"]["metrics"]["ode_error"] is None
    summary = json.loads((tmp_path / "study.json").read_text())
    assert "not the guidance classifier" in summary["metric_notes"]["class_share"]
    assert summary["floors"]["frechet"]["value"] > 0   # real digits against real digits, 24 of each: the bias


def test_a_reference_file_that_asks_for_terabytes_or_holds_objects_is_one_error(tmp_path):
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000, 2), }"
    header += " " * (118 - len(header)) + "\n"
    huge = tmp_path / "huge.npy"
    huge.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode())
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([{"code": 1}], dtype=object), allow_pickle=True)
    for path, message in ((huge, "cannot read it as a .npy array"), (objects, "cannot read it as a .npy array")):
        code, _, err = run_studio("study", "--checkpoint", "toy2d", "--metric", "swd", "--reference", path,
                                  "--out", tmp_path / "out")
        assert code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()



def test_two_processes_write_the_cells_one_process_writes(tmp_path):
    """torchrun splits the cells across processes; each cell runs in the rows one process gives it, so its
    samples are a single process's bit for bit (on one CPU thread, as torchrun gives each process), its record
    the same, and its metrics the same."""
    import subprocess
    import sys
    from pathlib import Path

    import checkpoint_makers as make

    repo = Path(__file__).resolve().parents[2]
    checkpoint = make.studio_file(tmp_path, *make.unet(), "model.safetensors")
    args = ["study", "--checkpoint", str(checkpoint), "--samplers", "ddim,euler,heun", "--steps", "3,7",
            "--eta", "0,1", "--num-samples", "3", "--seed", "5", "--no-progress"]
    single = subprocess.run([sys.executable, "-m", "studio", *args, "--threads", "1", "--out", str(tmp_path / "one")],
                            cwd=repo, capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "studio"]
    double = subprocess.run([*launcher, *args, "--out", str(tmp_path / "two")], cwd=repo, capture_output=True,
                            text=True, timeout=300)
    assert double.returncode == 0, double.stderr
    one, two = cells_of(tmp_path / "one"), cells_of(tmp_path / "two")
    assert list(one) == list(two) and len(one) == 8
    for key in one:
        assert (tmp_path / "one" / "cells" / f"{key}.npy").read_bytes() == \
            (tmp_path / "two" / "cells" / f"{key}.npy").read_bytes(), key
        assert one[key]["record"] == two[key]["record"]
        assert one[key]["metrics"] == two[key]["metrics"]
    offsets = {row["record"]["row_offset"] for row in one.values()}
    assert len(offsets) > 1   # cells shared calls at several offsets: the split had rows to keep
    summary = json.loads((tmp_path / "two" / "study.json").read_text())
    assert summary["processes"]["world_size"] == 2
    assert (tmp_path / "two" / "study.csv").read_text().count("\n") == 9
