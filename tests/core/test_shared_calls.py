"""Cells of a grid share model calls: one forward pass per round of every running cell's rows, each row at its own
cell's timestep. Each cell's samples are those of the same run alone in the shared calls' rows (bit for bit), and
within float rounding of the run at its own batch; every call has exactly the rows asked for; errors, cancel and
threads end cleanly."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import checkpoint_makers as make
from studio.core.checkpoints import open_checkpoint
from studio.core.engine import Run
from studio.core.errors import SettingsError
from studio.core.recipe import recipe_for_sample, recipe_layout, settings_from_recipe
from studio.core.samplers import sampler_settings
from studio.core.settings import GuidanceSettings, RunSettings
from studio.core.shared_calls import Cancelled, Cell, cell_rows, cell_settings_alone, run_cells

ACROSS_BATCHES = 1e-5   # docs/engine.md: the same sample at another model batch (float rounding only)


@pytest.fixture(scope="module")
def denoiser(tmp_path_factory):
    return open_checkpoint(make.studio_file(tmp_path_factory.mktemp("grid"), *make.unet(num_classes=3)))


def mixed_cells() -> list[Cell]:
    """Four samplers, an integer and a fractional timestep list (Euler on Karras sigmas), classifier-free
    guidance (its call has twice the rows) and classes cycling: all on one conditional UNet."""
    return [
        Cell(RunSettings(sampler=sampler_settings("ddim", steps=5), seed=1, batch_size=3, class_label=1)),
        Cell(RunSettings(sampler=sampler_settings("ddpm", steps=8), seed=1, batch_size=2, class_label="cycle")),
        Cell(RunSettings(sampler=sampler_settings("euler", steps=4, karras=True), seed=4, batch_size=2,
                         class_label=2)),
        Cell(RunSettings(sampler=sampler_settings("ddim", steps=6, eta=0.5), seed=1, batch_size=2, class_label=0,
                         guidance=GuidanceSettings(kind="classifier_free", scale=2.0))),
    ]


def final_x(denoiser, settings: RunSettings, seeds=None, layout=None) -> torch.Tensor:
    x = None
    for step in Run(denoiser, settings, seeds=seeds, layout=layout):
        x = step.x_t
    return x


class Calls:
    """The rows of every forward pass the network makes (a hook on the module)."""

    def __init__(self, denoiser):
        self.rows: list[int] = []
        self._handle = denoiser.module.register_forward_pre_hook(lambda _m, args: self.rows.append(len(args[0])))

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self._handle.remove()


@pytest.mark.parametrize("rows", [None, 8])
def test_each_cell_is_its_run_alone_in_the_shared_rows(denoiser, rows):
    cells = mixed_cells()
    with Calls(denoiser) as calls:
        outcomes = run_cells(denoiser, cells, rows=rows)
    width = rows or sum(cell_rows(cell) for cell in cells)            # 3 + 2 + 2 + 2 x 2 = 11 rows
    assert set(calls.rows) == {width}                                   # every pass has exactly those rows
    own_calls = [outcome.record["model_calls"] for outcome in outcomes]   # 5, 8, 4, 6
    assert [outcome.model_calls for outcome in outcomes] == own_calls
    if rows is None:   # all at once: as many passes as the longest cell
        assert len(calls.rows) == max(own_calls)
    else:              # 8 rows hold the CFG cell and 2 more: the cells queue, and still share passes
        assert max(own_calls) < len(calls.rows) < sum(own_calls)
    for cell, outcome in zip(cells, outcomes):
        assert outcome.record["model_batch"] == outcome.record["settings"]["model_batch"] == width
        assert outcome.record["threads"] == torch.get_num_threads()
        settings, layout = cell_settings_alone(outcome)
        alone = final_x(denoiser, settings, cell.seeds, layout)
        assert torch.equal(outcome.x, alone)                            # bit for bit, alone in those rows
        own = final_x(denoiser, cell.settings, cell.seeds)
        assert (outcome.x - own).abs().max().item() <= ACROSS_BATCHES    # and rounding from its own batch


def test_each_cells_recipes_make_their_samples_again(denoiser):
    """Every sample of every cell, alone from its PNG recipe: its rows, their offset and its place in its cell's
    batch come back (at 11 rows per call, rows 8 to 10 go through another kernel than rows 0 to 7)."""
    outcomes = run_cells(denoiser, mixed_cells())
    # longest first: DDPM 8 calls (2 rows), DDIM 6 with CFG (4 rows), DDIM 5 (3 rows), Euler 4 (2 rows)
    assert [o.record["row_offset"] for o in outcomes] == [6, 0, 9, 2]
    for outcome in outcomes:
        for index in range(len(outcome.record["seeds"])):
            recipe = recipe_for_sample(outcome.record, index)
            settings, _ = settings_from_recipe(recipe)
            again = final_x(denoiser, settings.replace(model_batch=recipe["model_batch"]),
                            layout=recipe_layout(recipe))
            assert torch.equal(again[0], outcome.x[index]), (outcome.record["row_offset"], index)


def test_the_timestep_reaches_the_network_per_row(denoiser):
    """The control for sharing: rows at different timesteps in one pass get each their own t (a shared pass that
    gave every row the first cell's t would fail the exactness test above; here it is shown directly)."""
    seen = []
    handle = denoiser.module.register_forward_pre_hook(lambda _m, args: seen.append(args[1].clone()))
    try:
        run_cells(denoiser, [Cell(RunSettings(sampler=sampler_settings("ddim", steps=2), batch_size=1)),
                             Cell(RunSettings(sampler=sampler_settings("ddim", steps=5), batch_size=1))])
    finally:
        handle.remove()
    first = seen[0].tolist()
    assert len(first) == 2 and first[0] != first[1]   # 2-step and 5-step DDIM start at different t


def test_rows_must_hold_the_largest_cell(denoiser):
    with pytest.raises(SettingsError, match="largest cell's 4 rows"):
        run_cells(denoiser, mixed_cells(), rows=3)


def test_a_failing_cell_stops_the_grid_and_its_error_is_raised(denoiser):
    cells = mixed_cells()
    bad = Cell(RunSettings(sampler=sampler_settings("ddim", steps=5), batch_size=1, class_label=7))   # 3 classes
    before = threading.active_count()
    with pytest.raises(SettingsError, match="class"):
        run_cells(denoiser, [cells[0], bad, cells[1]])
    assert threading.active_count() == before and torch.get_num_threads() >= 1


def test_cancel_stops_every_cell_within_a_pass(denoiser):
    cancel = threading.Event()
    done = []

    def first_done(index, outcome):
        done.append(index)
        cancel.set()

    with Calls(denoiser) as calls, pytest.raises(Cancelled):
        run_cells(denoiser, mixed_cells(), cancel=cancel, on_cell_done=first_done)
    assert len(done) == 1 and len(calls.rows) == 4   # the shortest cell's 4 passes, and no pass after it
    assert threading.active_count() >= 1


def test_the_calling_threads_cpu_threads_stay_as_they_were(denoiser):
    before = torch.get_num_threads()
    run_cells(denoiser, mixed_cells()[:2])
    assert torch.get_num_threads() == before


def test_a_diffusers_unet_takes_shared_rows_the_same_way(tmp_path):
    """diffusers' UNet2DModel embeds a long and a float32 timestep alike, so a cell at integer timesteps beside
    one at fractional timesteps (a float32 tensor) is still its run alone in those rows, bit for bit."""
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
                                 block_out_channels=(8, 16), down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                                 up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=4,
                                 attention_head_dim=4)
    unet.save_pretrained(tmp_path / "unet")
    diffusers.DDPMScheduler(num_train_timesteps=50).save_pretrained(tmp_path / "scheduler")
    (tmp_path / "model_index.json").write_text('{"_class_name": "DDPMPipeline", "unet": ["diffusers", '
                                               '"UNet2DModel"], "scheduler": ["diffusers", "DDPMScheduler"]}')
    model = open_checkpoint(tmp_path)
    cells = [Cell(RunSettings(sampler=sampler_settings("ddim", steps=4), batch_size=2)),
             Cell(RunSettings(sampler=sampler_settings("euler", steps=3, karras=True), seed=5, batch_size=1))]
    for cell, outcome in zip(cells, run_cells(model, cells)):
        settings, layout = cell_settings_alone(outcome)
        assert torch.equal(outcome.x, final_x(model, settings, cell.seeds, layout))
    assert np.isfinite(outcome.x.numpy()).all()


@pytest.mark.parametrize("rows", [6, 9, None])
def test_the_planned_offsets_are_the_ones_one_process_gives(denoiser, rows):
    """``planned_offsets`` replays the coordinator's schedule without running it: each cell's recorded rows."""
    from studio.core.shared_calls import planned_offsets

    cells = mixed_cells()
    outcomes = run_cells(denoiser, cells, rows=rows)
    assert planned_offsets(cells, rows) == [outcome.record["row_offset"] for outcome in outcomes]


def test_a_process_running_some_cells_at_their_planned_rows_makes_the_same_bits(denoiser):
    """A split grid: each process runs its share at the rows one process would give them, whatever else runs."""
    from studio.core.shared_calls import planned_offsets

    cells = mixed_cells()
    whole = run_cells(denoiser, cells, rows=6)
    offsets = planned_offsets(cells, 6)
    for share in ([0, 3], [1, 2]):
        part = run_cells(denoiser, [cells[i] for i in share], rows=6, offsets=[offsets[i] for i in share])
        for i, outcome in zip(share, part):
            assert torch.equal(outcome.x, whole[i].x)
            assert outcome.record["row_offset"] == whole[i].record["row_offset"]
    with pytest.raises(SettingsError, match="do not place every cell"):
        run_cells(denoiser, cells[:1], rows=6, offsets=[5])
