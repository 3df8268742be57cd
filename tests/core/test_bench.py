"""The benchmark runs and writes a well-formed table. Nothing here times anything: speed is what the bench
reports, never what a test asserts."""

from __future__ import annotations

import argparse
import json
import math

import pytest
import torch

from studio.bench.runner import main, parse_sections
from studio.bench.table import Row, format_table
from studio.core.choices import SAMPLER_NAMES

ROW_KEYS = {"section", "name", "value", "unit", "goal", "at_most", "detail", "extra", "met"}


def _check_document(document: dict, sections: set[int]) -> None:
    assert set(document) == {"command", "machine", "seconds", "sections", "rows"}
    assert {"cpu", "cores", "torch", "load_average_1min_at_start", "load_average_1min_at_end"} <= set(document["machine"])
    rows = document["rows"]
    assert {row["section"] for row in rows} == sections
    for row in rows:
        assert set(row) == ROW_KEYS
        assert not row["extra"].get("failed"), row["detail"]
        assert row["value"] is None or math.isfinite(row["value"])
        assert row["met"] in (True, False, None)
        if row["goal"] is not None and row["value"] is not None:
            assert row["met"] == (row["value"] <= row["goal"] if row["at_most"] else row["value"] >= row["goal"])


def test_quick_bench_writes_every_headless_section(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert main(["--quick", "--sections", "1,2,4,5,7", "--json", str(path)]) == 0
    document = json.loads(path.read_text())
    _check_document(document, {1, 2, 4, 5, 7})
    names = [row["name"] for row in document["rows"]]
    # DDPM and DDIM on two models, and every other sampler on the digits model
    assert sum(name.startswith("engine / bare loop") for name in names) == 4 + len(SAMPLER_NAMES) - 2
    assert all(any(f"· {name.upper()} " in row for row in names) for name in SAMPLER_NAMES)
    assert any("DDIMPipeline" in name for name in names) and any("DDPMPipeline" in name for name in names)
    grid, = (row for row in document["rows"] if row["name"].startswith("grid sharing calls"))
    # 4 cells (DDIM 2 and 3 steps, eta 0 and 1) share passes: as many as the longest cell makes
    assert grid["extra"]["passes"] == {"grid": 3, "one by one": 2 + 2 + 3 + 3} and grid["value"] > 0
    assert all(row["extra"]["max_difference"] <= 1e-4 for row in document["rows"] if "Pipeline" in row["name"])
    printed = capsys.readouterr().out
    assert printed.startswith("| # | measure | value | goal | met | detail |")
    assert printed.count("\n| ") == len(document["rows"])   # one table line per row, after the header


@pytest.mark.slow
def test_quick_whole_process_section_compares_studio_sample_with_the_pipelines(tmp_path):
    """Section 8 on tiny sizes (2 steps, batches 1 and 2, one run of each process): every row is there, the
    ratios are positive numbers and the outputs were compared. Nothing is timed against a goal here."""
    path = tmp_path / "bench.json"
    assert main(["--quick", "--sections", "8", "--process-ddpm-steps", "3", "--json", str(path)]) == 0
    document = json.loads(path.read_text())
    _check_document(document, {8})
    rows = document["rows"]
    for pipeline, sampler, steps in (("DDIMPipeline", "DDIM", 2), ("DDPMPipeline", "DDPM", 3)):
        ratios = [row for row in rows if row["name"].startswith(f"studio sample / {pipeline}, whole processes")]
        assert [row["extra"]["batch"] for row in ratios] == [1, 2]
        assert {row["extra"]["steps"] for row in ratios} == {steps}   # --process-ddpm-steps reaches DDPM only
        for row in ratios:
            assert row["value"] > 0 and row["goal"] == 0.8 and row["unit"] == "x"
            assert set(row["extra"]["seconds"]) == {"studio", "diffusers"}
            assert row["extra"]["max_difference"] <= 1e-4
        assert any(row["name"].startswith(f"studio sample · time per sample at b1 / at b2 · {sampler}") and
                   row["value"] > 0 for row in rows)
        compared = next(row for row in rows if row["name"].startswith(f"largest difference, studio sample vs {pipeline}"))
        assert compared["met"] is True and 0 <= compared["value"] <= 1e-4


def test_table_rows_stay_on_one_line_and_say_whether_the_goal_is_met():
    rows = [Row(1, "ratio", 1.01, "x", 1.02, detail="a | b\nc"), Row(4, "bytes", 3.0, "x", 1.1),
            Row(6, "no goal", 2.0, "s"), Row(7, "skipped", None, detail="skipped: no CUDA device")]
    table = format_table(rows).splitlines()
    assert len(table) == 2 + len(rows)
    assert table[2].endswith("| yes | a \\| b c |")
    assert "| NO |" in table[3]
    assert [row.met for row in rows] == [True, False, None, None]


@pytest.mark.parametrize("text", ["", "0", "9", "1,x"])
def test_sections_must_be_numbers_one_to_eight(text):
    with pytest.raises(argparse.ArgumentTypeError):
        parse_sections(text)


def test_sections_are_sorted_without_repeats():
    assert parse_sections("3, 1,3") == [1, 3]


def test_bracketed_compares_each_run_with_the_baseline_runs_beside_it():
    from studio.bench.timing import bracketed

    order = []
    baseline_seconds = iter([1.0, 3.0, 1.0, 1.0, 2.0])   # the machine slows down and speeds up again

    def baseline():
        order.append("B")
        return next(baseline_seconds)

    def candidate(name, values):
        values = iter(values)
        return lambda: (order.append(name), next(values))[1]

    seconds, ratios = bracketed(baseline, {"window": candidate("W", [2.0, 1.1]),
                                           "other": candidate("O", [2.0, 3.0])}, rounds=2)
    assert order == ["B", "W", "B", "O", "B", "W", "B", "O", "B"]
    assert seconds == {"baseline": [1.0, 3.0, 1.0, 1.0, 2.0], "window": [2.0, 1.1], "other": [2.0, 3.0]}
    assert ratios["window"] == pytest.approx([2.0 / 2.0, 1.1 / 1.0])
    assert ratios["other"] == pytest.approx([2.0 / 2.0, 3.0 / 1.5])


def test_median_interval_brackets_the_median_and_narrows_with_more_rounds():
    from studio.bench.timing import median_interval

    assert median_interval([1.0] * 7) == (1.0, 1.0)
    few = [1.00, 1.04, 0.99, 1.02, 1.03, 1.01, 0.98]
    low, high = median_interval(few)
    assert low <= 1.01 <= high and low >= min(few) and high <= max(few)
    assert median_interval(few) == (low, high)                  # seeded: the same table twice
    many_low, many_high = median_interval(few * 9)
    assert many_high - many_low < high - low


def test_step_anatomy_inline_loops_make_the_engines_samples_and_the_command_runs(capsys):
    """The diagnostic's inline loops must do the engine's work: the same samples, bit for bit."""
    from studio.bench import models
    from studio.bench.section_engine import BareCalls
    from studio.bench.step_anatomy import VARIANTS, inline_steps, main
    from studio.core.engine import sample_final
    from studio.core.samplers import DDPMSettings
    from studio.core.settings import CLASS_CYCLE, RunSettings

    denoiser = models.digits()
    settings = RunSettings(sampler=DDPMSettings(steps=6), seed=3, batch_size=4, class_label=CLASS_CYCLE,
                           device="cpu")
    bare = BareCalls(denoiser, settings)
    engine = sample_final(denoiser, settings)
    for per_step_mode, via_predict in ((False, False), (True, False), (True, True)):
        steps = list(inline_steps(denoiser, settings, bare, per_step_mode, via_predict))
        assert len(steps) == 6 and torch.equal(steps[-1].x_t, engine)
    assert not torch.is_inference_mode_enabled()   # the held mode ends with its loop
    assert main(["--rounds", "1", "--steps", "3"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert [line[:26].strip() for line in printed] == list(VARIANTS)
    assert main(["--rounds", "0"]) == 2
