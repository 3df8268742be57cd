"""The network replayed from a CUDA graph: one launch per model call instead of one per kernel.

    graphed = GraphedNetwork(network, x, t, class_labels)     # captures one forward on these shapes
    out = graphed(x_t, t_batch, labels)                       # copy in, replay, a fresh copy of the output out

A small network on a GPU is bound by kernel launches, not arithmetic: the digits UNet makes a few hundred small
kernels per forward, each costing the CPU several microseconds to launch, so the GPU waits on Python. A CUDA graph
records the whole forward once and replays it with a single launch. The graph reads its inputs from fixed
buffers and writes its output to a fixed buffer, so a call copies its inputs into them, replays, and hands back
a *copy* of the output: the engine keeps every step's prediction (the trajectory), and the next replay would
overwrite the buffer under it.

A call the graph cannot take runs the plain network instead (same answer, without the speed-up): other shapes or
dtypes than were captured, class labels where the capture had none (or the other way round), another device,
or a call that needs gradients. ``replays`` and ``plain_calls`` count which path was taken.

The capture itself (``capture``: warm-up on a side stream, then ``torch.cuda.graph``) is the only CUDA-specific
part; everything else is plain tensor code, so the copy-in, copy-out and fall-back logic is tested on any machine
with a stand-in capture (tests/core/test_cuda_graphs.py).
"""

from __future__ import annotations

from typing import Callable

import torch

from .device_previews import available   # noqa: F401 -- a CUDA device this process can use (acceleration asks here)

WARMUP_CALLS = 3   # before capturing: lets cuDNN/cuBLAS pick their algorithms and the allocator settle (torch's advice)


def capture(call: Callable[[], torch.Tensor], device: torch.device):
    """Record ``call()`` (a forward on the static inputs) as a CUDA graph; returns (replay, static output)."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(WARMUP_CALLS):
            call()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    # thread_local: the GUI thread may touch CUDA (previews) while the worker thread captures
    with torch.cuda.graph(graph, capture_error_mode="thread_local"):
        output = call()
    return graph.replay, output


def _signature(tensor: torch.Tensor | None):
    return None if tensor is None else (tuple(tensor.shape), tensor.dtype, tensor.device)


class GraphedNetwork:
    """See the module docstring. ``capture_fn(call, device) -> (replay, output)`` is ``capture`` (looked up at
    each capture, so a test can stand in for it)."""

    def __init__(self, network, x: torch.Tensor, t: torch.Tensor, class_labels: torch.Tensor | None = None,
                 capture_fn=None):
        capture_fn = capture_fn or capture
        self.network = network
        # normal tensors, not inference ones: usable in any grad mode, and a label check that remembers a tensor
        # by its version (ClassEmbedding on a GPU) checks them once, at warm-up, not during the capture
        with torch.inference_mode(False):
            self._x = x.detach().clone()
            self._t = t.detach().clone()
            self._labels = None if class_labels is None else class_labels.detach().clone()
        self._signature = (_signature(x), _signature(t), _signature(class_labels))
        self._replay, self._output = capture_fn(lambda: network(self._x, self._t, self._labels), x.device)
        self.replays = 0
        self.plain_calls = 0

    def __call__(self, x: torch.Tensor, t: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        if (_signature(x), _signature(t), _signature(class_labels)) != self._signature or (
                torch.is_grad_enabled() and x.requires_grad):
            self.plain_calls += 1
            return self.network(x, t, class_labels)
        self._x.copy_(x)
        self._t.copy_(t)
        if class_labels is not None:
            self._labels.copy_(class_labels)
        self._replay()
        self.replays += 1
        return self._output.clone()   # the next replay overwrites the graph's own output
