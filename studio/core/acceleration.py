"""The network's speed modes: plain, channels-last memory layout, torch.compile, both, or a CUDA graph.

    done = accelerate(denoiser, "compiled_channels_last", batch_size=16)
    done.mode      # the mode in use: the one asked for, or "plain" when it failed or moved an output too far
    done.note      # why it fell back ("" when it did not)

A faster network is opt-in (``RunSettings.network``; ``Run`` applies it): its outputs differ from the plain
network's in their last bits (other kernels, another summation order), and compiling costs a warm-up (tens of
seconds on a CPU, once per process and shape). It is compared with the plain network on a probe batch and kept
only if no output moves by more than ``tolerance``; otherwise the denoiser stays plain and the note says why.

The compiled modes use TorchInductor with *freezing* (``torch._inductor.config.freezing``, patched only while
our network compiles, at its first call on the probe batch, and restored after; ``torch.compile(options=...)``
does not reach it): the weights become constants of the compiled graph, so inductor folds what depends only on
them and, on a CPU, packs the convolution weights for oneDNN once instead of at every call. The price is a longer
compile and a second, packed copy of the convolution weights.
``cuda_graph`` (a CUDA GPU only; ``studio.core.cuda_graphs``) records the plain network's forward on the run's
shapes once and replays it with one launch per model call: on a GPU a small network is bound by kernel launches,
which this takes away. Anywhere else it falls back to plain and says so. Its check runs the graph on two probe
batches, so a replay that kept anything of the first call's inputs or output would show.
Frozen weights and captured graphs are snapshots: a faster network is dropped whenever the denoiser moves to
another device or dtype (``NetworkDenoiser.to``), and is rebuilt on the next request. The probe batch is made as a
run's inputs are (see ``_probe_inputs``), so a run calls the very graph the probe compiled, never a second, unfrozen
one.

State lives on the denoiser (``NetworkDenoiser.faster``): every network already built for a (mode, batch,
device, dtype, tolerance) and the one in use, so switching back to a mode costs nothing. ``accelerate(d,
"plain")`` undoes everything in place.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, replace

import torch

from . import cuda_graphs
from .checks import require_choice
from .choices import ACCELERATION_TOLERANCE, NETWORK_MODES
from .models.denoiser import NetworkDenoiser

COMPILE_ARGUMENTS: dict = {}   # extra torch.compile arguments (none: the default mode, dynamic shapes as needed)
COMPILE_CONFIG = {"freezing": True}   # inductor config while our network compiles (see the module docstring)


@dataclass(frozen=True)
class Acceleration:
    """What ``accelerate`` did: the mode in use (``plain`` when the one asked for failed or moved an output by
    more than the tolerance), the largest output difference on the probe batch, the seconds it took (a
    compile's warm-up included; 0 when an earlier call's network was reused) and, if it fell back, why."""

    requested: str
    mode: str
    max_difference: float
    seconds: float
    note: str = ""
    reused: bool = False
    probe_rows: int = 0   # the batch the faster network was built and checked on (0: nothing was built)

    @property
    def fell_back(self) -> bool:
        return self.mode != self.requested


def check_network_mode(mode) -> str:
    return require_choice("network mode", mode, NETWORK_MODES)


def network_denoiser(denoiser) -> NetworkDenoiser | None:
    """The NetworkDenoiser inside wrappers such as FixedBatchDenoiser (``.inner``), or None."""
    seen = 0
    while not isinstance(denoiser, NetworkDenoiser) and hasattr(denoiser, "inner") and seen < 8:
        denoiser, seen = denoiser.inner, seen + 1
    return denoiser if isinstance(denoiser, NetworkDenoiser) else None


def accelerate(denoiser, mode: str, batch_size: int = 1, tolerance: float = ACCELERATION_TOLERANCE) -> Acceleration:
    """Put the denoiser's network in ``mode`` (see the module docstring); returns what was done.

    ``batch_size``: the probe batch; give the number of rows the network will be called on (a compiled network
    is specialised to the shapes it saw). Asking again for the mode in use, or for one built before on the same
    batch, device and dtype, reuses it. Wrappers with an ``.inner`` denoiser (FixedBatchDenoiser) are looked
    through; any other denoiser stays as it is (plain)."""
    check_network_mode(mode)
    started = time.perf_counter()
    target = network_denoiser(denoiser)
    if target is None:
        note = "" if mode == "plain" else "only a network denoiser can be accelerated"
        return Acceleration(mode, "plain", 0.0, 0.0, note)
    faster = target.faster
    if mode == "plain":
        if faster.in_use is not None:
            target.use_plain_network()
        return Acceleration(mode, "plain", 0.0, time.perf_counter() - started)
    key = (mode, int(batch_size), str(target.device), target.dtype, float(tolerance))
    if key not in faster.built:
        target.use_plain_network()   # the probe compares against the plain network in its own layout
        faster.built[key] = _build(target, mode, batch_size, tolerance, started)
        network, result = faster.built[key]
    else:
        network, result = faster.built[key]
        result = replace(result, seconds=0.0, reused=True)
    if faster.in_use != key:
        if result.mode == "plain":
            target.use_plain_network()
        else:
            target.use_network(network, channels_last="channels_last" in result.mode)
        faster.in_use = key
    return result


def reset(denoiser: NetworkDenoiser) -> None:
    """Back to the plain network and the contiguous layout; the networks built are kept for a later request."""
    denoiser.use_plain_network()


def forget(denoiser: NetworkDenoiser) -> None:
    """``reset`` and drop every network built for this denoiser."""
    denoiser.use_plain_network(forget=True)


def current(denoiser) -> str:
    """The network mode the denoiser is in now."""
    target = network_denoiser(denoiser)
    if target is None or target.faster.in_use is None:
        return "plain"
    return target.faster.built[target.faster.in_use][1].mode


def _build(target: NetworkDenoiser, mode: str, batch_size: int, tolerance: float, started: float):
    """(network, Acceleration): the faster network, or the plain one and the reason it fell back."""
    plain = target.plain_network

    def fallback(note: str, difference: float = 0.0):
        target.use_plain_network()
        return plain, Acceleration(mode, "plain", difference, time.perf_counter() - started, note,
                                   probe_rows=batch_size)

    if "channels_last" in mode and not target.is_image_module:
        return fallback("channels_last needs an image model given as a torch module")
    if mode == "cuda_graph" and not cuda_graphs.available(target.device):
        return fallback(f"cuda_graph needs a CUDA GPU (the model is on {target.device})")
    probe = _probe_inputs(target, batch_size)
    probes = [probe] + ([_second_probe(target, probe)] if mode == "cuda_graph" else [])
    with torch.inference_mode():
        references = [plain(*inputs).float() for inputs in probes]
    network = plain
    try:
        if "channels_last" in mode:
            target.use_network(plain, channels_last=True)   # the weights' layout the compiled graph will see
            network = _channels_last_inputs(plain)
        compiling = contextlib.nullcontext()
        if mode.startswith("compiled"):
            network = _as_inference_tensors(torch.compile(network, **_compile_arguments()))
            compiling = _inductor_config(COMPILE_CONFIG)   # compiling happens at the first call, here
        with torch.inference_mode(), compiling:
            if mode == "cuda_graph":
                network = cuda_graphs.GraphedNetwork(plain, *probe)
            difference = max(float((network(*inputs).float() - reference).abs().max())
                             for inputs, reference in zip(probes, references))
    except Exception as exc:  # noqa: BLE001 -- no compiler, an op the compiler cannot take, ...: stay plain
        lines = str(exc).strip().splitlines() or [""]
        return fallback(f"{mode} failed ({type(exc).__name__}: {lines[0][:200]})")
    if not difference <= tolerance:
        return fallback(f"{mode} moved an output by {difference:.2e} > {tolerance:.0e}", difference)
    return network, Acceleration(mode, mode, difference, time.perf_counter() - started, probe_rows=batch_size)


def _compile_arguments() -> dict:
    return dict(COMPILE_ARGUMENTS)


def _inductor_config(values: dict):
    """Inductor's config patched for the duration of a with block (restored after, even on an error)."""
    from torch._inductor import config

    return config.patch(values)


def _probe_inputs(denoiser: NetworkDenoiser, batch_size: int):
    """Inputs shaped and made as a run's are: x_t an inference tensor (the sampler makes it in inference mode),
    t and the labels normal tensors (made once, outside it). A compiled network guards on such properties: a
    call with inputs of another kind compiles the network again (without freezing)."""
    card = denoiser.card
    batch_size = max(1, int(batch_size))
    generator = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        x = torch.randn((batch_size, *card.data_shape), generator=generator).to(denoiser.device, denoiser.dtype)
    t = torch.full((batch_size,), card.num_train_timesteps // 2, dtype=torch.long, device=denoiser.device)
    labels = None
    if card.conditional:
        label = card.null_class if card.null_class is not None else 0
        labels = torch.full((batch_size,), label, dtype=torch.long, device=denoiser.device)
    return x, t, labels


def _second_probe(denoiser: NetworkDenoiser, probe):
    """Other values on the same shapes (x negated, another t): a network that replays a recording must answer
    these too, not the first probe again."""
    x, t, labels = probe
    with torch.inference_mode():
        x = -x
    with torch.inference_mode(False):
        t = torch.full_like(t, denoiser.card.num_train_timesteps // 4)
    return x, t, labels


def _as_inference_tensors(network):
    """In inference mode, hand the compiled network x_t as an inference tensor, as it was compiled for (see
    ``_probe_inputs``): a run's first x_t (x_T, drawn before sampling) is a normal tensor, and would otherwise
    compile the network a second time, without freezing. Costs one copy of x_T per run."""
    def inference_tensor_network(x, t, class_labels=None):
        if not x.is_inference() and torch.is_inference_mode_enabled():
            x = x.clone()
        return network(x, t, class_labels)

    return inference_tensor_network


def _channels_last_inputs(network):
    def channels_last_network(x, t, class_labels=None):
        return network(x.contiguous(memory_format=torch.channels_last), t, class_labels)

    return channels_last_network
