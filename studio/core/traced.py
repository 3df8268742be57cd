"""The network traced with TorchScript and frozen: the forward runs as one recorded graph, without Python.

    traced = TracedNetwork(network, tolerance=1e-4)
    out = traced(x_t, t_batch, labels)      # traced, frozen and checked on the first call of each input signature
    TracedNetwork(network, 1e-4, channels_last=True)   # x_t in the channels-last layout (and the weights: the caller's)

``torch.jit.trace`` records the tensor ops one forward runs; ``torch.jit.freeze`` turns the weights into constants
of that graph (the module's own tensors: no second copy) and folds what depends on them alone. A call then runs the graph from C++: on a CPU a small network
spends much of each call in Python (module calls, argument checks, shape arithmetic), which this takes away. The
kernels are the same aten ops in the same order, so the outputs usually equal the plain network's bit for bit;
they are checked all the same, like every faster mode's (``studio.core.acceleration``). With ``channels_last`` the
input goes in in the channels-last layout, and the caller puts the module's weights in it before the first call
(``NetworkDenoiser.use_network``): the convolutions then run oneDNN's channels-last kernels, faster on a CPU still
(docs/performance.md), at the price of plain's last bits (within the tolerance).
``torch.jit.optimize_for_inference`` (oneDNN layouts for the convolutions) is not applied: on the studio's
networks it was slower on the CPU measured and moved outputs (docs/performance.md).

A trace holds only for what it saw: Python branches on shapes, dtypes or missing labels are baked into it. So a
traced network keeps one graph per input *signature* (shape, dtype and device of x, t and the labels, or no
labels), traced at the first call with that signature and checked there against the plain network; later calls
with it run the graph. A graph that moved an output by more than the tolerance, or failed to trace, is
remembered as refused and its signature runs the plain network, as do calls that need gradients and signatures
beyond ``MAX_GRAPHS``. ``graph_calls`` and ``plain_calls`` count which path was taken. The first calls of a
frozen graph are slower (TorchScript profiles them before it optimises), so tracing also makes ``WARMUP_CALLS``.

TorchScript is deprecated in favour of torch.compile and torch.export (torch 2.13 warns; the warning is silenced
here). Should a later torch drop it, tracing fails, and the mode falls back to plain and says so.
"""

from __future__ import annotations

import warnings

import torch

MAX_GRAPHS = 4      # signatures traced per network (a run has one or two: integer and fractional timesteps)
WARMUP_CALLS = 2    # TorchScript's profiling executor optimises a graph after its first calls


def _signature(tensor: torch.Tensor | None):
    return None if tensor is None else (tuple(tensor.shape), tensor.dtype, tensor.device)


class _Forward(torch.nn.Module):
    """The network's call as a module of tensors only (what tracing takes), with or without labels. A network
    that is a module becomes its submodule (freezing then folds its weights); any other callable is traced
    through, its tensors recorded as constants."""

    def __init__(self, network, with_labels: bool):
        super().__init__()
        self.network = network
        self.with_labels = with_labels

    def forward(self, x: torch.Tensor, t: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.network(x, t, class_labels if self.with_labels else None)


def trace_and_freeze(network, x: torch.Tensor, t: torch.Tensor, class_labels: torch.Tensor | None = None):
    """A frozen TorchScript graph of ``network(x, t, class_labels)`` on these inputs, warmed up."""
    inputs = (x, t) if class_labels is None else (x, t, class_labels)
    wrapper = _Forward(network, class_labels is not None).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)   # the Python checks a trace cannot keep
        warnings.filterwarnings("ignore", r".*torch\.jit\.\w+` is deprecated", DeprecationWarning)   # see below
        with torch.inference_mode(False), torch.no_grad():
            graph = torch.jit.freeze(torch.jit.trace(wrapper, inputs, check_trace=False))
    for _ in range(WARMUP_CALLS):
        graph(*inputs)
    return graph


def max_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.shape != b.shape:
        return float("inf")
    return float((a.float() - b.float()).abs().max()) if a.numel() else 0.0


class TracedNetwork:
    """See the module docstring. ``network``: the plain network, traced and what a refused signature runs."""

    def __init__(self, network, tolerance: float, channels_last: bool = False):
        self.network = network
        self.tolerance = float(tolerance)
        self.channels_last = bool(channels_last)
        self._graphs: dict = {}          # signature -> graph, or None where the plain network answers
        self.refusals: dict = {}         # signature -> why it runs plain (a failure, or the difference)
        self.max_difference = 0.0        # the largest difference of a graph kept
        self.graph_calls = 0
        self.plain_calls = 0

    @property
    def graphs(self) -> int:
        """The graphs in use (refused signatures not counted)."""
        return sum(graph is not None for graph in self._graphs.values())

    def __call__(self, x: torch.Tensor, t: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            self.plain_calls += 1
            return self.network(x, t, class_labels)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        key = (_signature(x), _signature(t), _signature(class_labels))
        if key not in self._graphs:
            if len(self._graphs) >= MAX_GRAPHS:
                self.plain_calls += 1
                return self.network(x, t, class_labels)
            return self._first_call(key, x, t, class_labels)
        graph = self._graphs[key]
        if graph is None:
            self.plain_calls += 1
            return self.network(x, t, class_labels)
        self.graph_calls += 1
        return graph(x, t) if class_labels is None else graph(x, t, class_labels)

    def _first_call(self, key, x, t, class_labels) -> torch.Tensor:
        """Trace the signature, check the graph against the plain network on these inputs, keep it or refuse it;
        answers with the output of the path kept."""
        reference = self.network(x, t, class_labels)
        self.plain_calls += 1
        try:
            graph = trace_and_freeze(self.network, x, t, class_labels)
            output = graph(x, t) if class_labels is None else graph(x, t, class_labels)
        except Exception as exc:  # noqa: BLE001 -- an op or a Python construct tracing cannot take: run plain
            lines = str(exc).strip().splitlines() or [""]
            self._graphs[key] = None
            self.refusals[key] = f"tracing failed ({type(exc).__name__}: {lines[0][:200]})"
            return reference
        difference = max_difference(output, reference)
        if not difference <= self.tolerance:
            self._graphs[key] = None
            self.refusals[key] = f"the traced graph moved an output by {difference:.2e} > {self.tolerance:.0e}"
            return reference
        self._graphs[key] = graph
        self.max_difference = max(self.max_difference, difference)
        self.graph_calls += 1
        return output
