"""The cuda_graph network mode: a recorded forward replayed per call.

The recording itself needs a CUDA GPU; what surrounds it (inputs copied into the graph's buffers, a fresh copy
of its output handed back, calls it cannot take sent to the plain network) is tested here with a stand-in
capture that "replays" by running the network on the buffers into the captured output, as a graph does. On a
machine without CUDA the mode falls back to plain and says why; on one with CUDA the real capture is compared
with the plain network."""

from __future__ import annotations

import pytest
import torch

from studio.core import acceleration
from studio.core.acceleration import accelerate
from studio.core.checkpoints import open_checkpoint
from studio.core.cuda_graphs import GraphedNetwork
from studio.core.engine import Run, sample_final
from studio.core.samplers import DDPMSettings
from studio.core.settings import CLASS_CYCLE, RunSettings


def stand_in_capture(call, device):
    """Like ``cuda_graphs.capture``: the output lives in one buffer that every replay overwrites."""
    output = call()

    def replay():
        output.copy_(call())

    return replay, output


def network(x, t, labels=None):
    out = x * t.float().reshape(-1, *([1] * (x.dim() - 1)))
    return out if labels is None else out + labels.float().reshape(-1, *([1] * (x.dim() - 1)))


def make(labels=True):
    x = torch.randn(3, 2, 4, 4)
    t = torch.tensor([5, 5, 5])
    y = torch.tensor([0, 1, 2]) if labels else None
    return GraphedNetwork(network, x, t, y, capture_fn=stand_in_capture), x, t, y


def test_replays_answer_each_call_and_earlier_outputs_stay_as_they_were():
    graphed, x, t, y = make()
    with torch.inference_mode():
        first = graphed(x, t, y)
        other_x, other_t, other_y = torch.randn_like(x), torch.tensor([9, 8, 7]), torch.tensor([2, 2, 0])
        second = graphed(other_x, other_t, other_y)
    assert torch.equal(first, network(x, t, y))
    assert torch.equal(second, network(other_x, other_t, other_y))   # not the first call's answer again
    assert torch.equal(first, network(x, t, y))   # a replay does not write into an output handed out before
    assert (graphed.replays, graphed.plain_calls) == (2, 0)


def test_calls_the_graph_cannot_take_run_the_plain_network():
    graphed, x, t, y = make()
    cases = [
        (torch.randn(2, 2, 4, 4), t[:2], y[:2]),   # another batch
        (x.double(), t, y),                        # another dtype
        (x, t, None),                              # no labels where the capture had them
    ]
    for inputs in cases:
        assert torch.equal(graphed(*inputs), network(*inputs))
    needs_grad = x.clone().requires_grad_(True)
    out = graphed(needs_grad, t, y)
    assert out.requires_grad   # the gradient path is the plain network's
    assert (graphed.replays, graphed.plain_calls) == (0, 4)
    unlabelled, x, t, _ = make(labels=False)
    assert torch.equal(unlabelled(x, t, torch.tensor([0, 0, 0])), network(x, t, torch.tensor([0, 0, 0])))
    assert unlabelled.plain_calls == 1


def test_the_buffers_are_the_graphs_own():
    graphed, x, t, y = make()
    x_copy = x.clone()
    x.add_(1.0)   # the caller's tensors change after the capture: the graph's buffers do not follow them
    with torch.inference_mode():
        out = graphed(x_copy, t, y)
    assert torch.equal(out, network(x_copy, t, y))


@pytest.mark.skipif(torch.cuda.is_available(), reason="the fall-back is for machines without CUDA")
def test_without_cuda_the_mode_falls_back_to_plain_and_says_why():
    digits = open_checkpoint("digits")
    settings = RunSettings(sampler=DDPMSettings(steps=6), seed=4, batch_size=3, class_label=CLASS_CYCLE,
                           device="cpu", network="cuda_graph")
    run = Run(digits, settings)
    assert run.acceleration.fell_back and run.acceleration.note == "cuda_graph needs a CUDA GPU (the model is on cpu)"
    assert run.record()["settings"]["network"] == "plain"
    x = run.x_T
    for step in run:
        x = step.x_t
    assert torch.equal(x, sample_final(digits, settings.replace(network="plain")))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_the_graph_matches_the_plain_network():
    digits = open_checkpoint("digits")
    settings = RunSettings(sampler=DDPMSettings(steps=20), seed=4, batch_size=8, class_label=CLASS_CYCLE,
                           device="cuda", network="cuda_graph")
    run = Run(digits, settings)
    assert run.acceleration.mode == "cuda_graph", run.acceleration.note
    graphed = digits.network
    x = run.x_T
    for step in run:
        x = step.x_t
    assert graphed.replays >= 20 and graphed.plain_calls == 0
    plain = sample_final(digits, settings.replace(network="plain"))
    assert float((x - plain).abs().max()) <= 1e-4
    assert acceleration.current(digits) == "plain"
    accelerate(digits, "plain")


@pytest.fixture
def stand_in_gpu(monkeypatch):
    """The whole cuda_graph mode on this machine: the model counts as being on a CUDA GPU, and the stand-in
    records the capture."""
    from studio.core import cuda_graphs

    monkeypatch.setattr(cuda_graphs, "available", lambda device: True)
    monkeypatch.setattr(cuda_graphs, "capture", stand_in_capture)
    return cuda_graphs


def test_a_run_in_cuda_graph_mode_replays_every_step_and_plain_comes_back(stand_in_gpu):
    digits = open_checkpoint("digits")
    settings = RunSettings(sampler=DDPMSettings(steps=8), seed=5, batch_size=4, class_label=CLASS_CYCLE,
                           device="cpu", network="cuda_graph")
    plain = sample_final(digits, settings.replace(network="plain"))
    run = Run(digits, settings)
    assert (run.acceleration.mode, run.acceleration.note) == ("cuda_graph", "")
    assert run.acceleration.max_difference == 0.0 and run.record()["settings"]["network"] == "cuda_graph"
    graphed = digits.network
    assert isinstance(graphed, GraphedNetwork)
    x = run.x_T
    for step in run:
        x = step.x_t
    assert torch.equal(x, plain)   # the stand-in replays the plain network on the same values
    assert graphed.plain_calls == 0 and graphed.replays >= 8
    assert torch.equal(sample_final(digits, settings.replace(network="plain")), plain)
    assert digits.network is digits.module


def test_a_guided_run_replays_every_call_on_its_doubled_batch(stand_in_gpu):
    from studio.core.settings import GuidanceSettings

    digits = open_checkpoint("digits")
    settings = RunSettings(sampler=DDPMSettings(steps=5), seed=6, batch_size=3, class_label=CLASS_CYCLE,
                           device="cpu", network="cuda_graph", guidance=GuidanceSettings("classifier_free", 3.0))
    plain = sample_final(digits, settings.replace(network="plain"))
    run = Run(digits, settings)
    x = run.x_T
    for step in run:
        x = step.x_t
    assert torch.equal(x, plain)
    assert digits.network.plain_calls == 0   # the graph was recorded on the 6 rows each call has
    accelerate(digits, "plain")


def test_a_graph_that_replays_a_stale_answer_is_caught_by_the_second_probe(stand_in_gpu, monkeypatch):
    def stale_capture(call, device):   # replay does nothing: every call answers the first probe
        return (lambda: None), call()

    monkeypatch.setattr(stand_in_gpu, "capture", stale_capture)
    digits = open_checkpoint("digits")
    done = accelerate(digits, "cuda_graph", batch_size=4)
    assert done.fell_back and "moved an output" in done.note and digits.network is digits.module
    accelerate(digits, "plain")


def test_a_capture_that_fails_leaves_the_run_plain_and_says_why(stand_in_gpu, monkeypatch):
    def failing_capture(call, device):
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(stand_in_gpu, "capture", failing_capture)
    digits = open_checkpoint("digits")
    done = accelerate(digits, "cuda_graph", batch_size=4)
    assert done.fell_back and done.note.startswith("cuda_graph failed (RuntimeError: operation not permitted")
    assert digits.network is digits.module


def test_the_benchs_cuda_graph_rows(stand_in_gpu, tmp_path):
    from studio.bench.section_gpu import cuda_graph_rows
    from studio.bench.sizes import QUICK
    from studio.bench.workspace import Workspace

    rows = cuda_graph_rows(Workspace(tmp_path, QUICK, device="cpu"), 7)
    assert [row.name.split(" · ")[0] for row in rows] == [
        "engine (cuda_graph network) / bare loop of plain calls", "engine (cuda_graph network) / engine (plain network)"]
    assert all(row.value > 0 for row in rows) and "capture" in rows[0].detail
