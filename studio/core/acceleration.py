"""The network's speed modes: plain, channels-last memory layout, a traced and frozen graph (on either layout),
torch.compile (on either layout), or a CUDA graph; and ``auto``, which picks among them for the run at hand.

    done = accelerate(denoiser, "compiled_channels_last", batch_size=16)
    done.mode      # the mode in use: the one asked for, or "plain" when it failed or moved an output too far
    done.note      # why it fell back ("" when it did not)
    done = accelerate(denoiser, "auto", batch_size=16, calls=400)   # the run makes 400 network calls
    done.mode, done.note   # e.g. "traced_channels_last", "auto: traced_channels_last (plain 12.1 ms/call, ...)"

A faster network's outputs differ from the plain network's in their last bits (other kernels, another summation
order; a traced graph on the plain layout runs the same kernels and has matched plain bit for bit), and each costs
a set-up: tracing about half a second, compiling tens of seconds on a CPU (once per process and shape). It is
compared with the plain network on a probe batch and kept only if no output moves by more than ``tolerance``;
otherwise the denoiser stays plain and the note says why. ``plain`` is the reference: bit for bit diffusers'.
``traced`` and ``traced_channels_last`` are ``studio.core.traced``'s TorchScript graphs.

``auto`` (the default of ``RunSettings.network``) takes the fastest mode whose set-up pays for itself within the
run's ``calls``: ``choose_network`` weighs each candidate of the device (``AUTO_CANDIDATES``: on a CPU the traced
graphs and, for very long runs, the compiled network; on a CUDA GPU the CUDA graph) by its set-up plus ``calls``
times its time per call, against plain. A network module of fewer than ``AUTO_MIN_PARAMETERS`` parameters stays
plain at once. Otherwise auto first times the plain network on the probe batch (one call, and two more only when
the run is long enough for a candidate to pay at all); a candidate not built yet is weighed by ``AUTO_PRIORS``
(its expected set-up and saving, from the measurements in docs/performance.md) and built only if it would pay;
once built (and checked like any mode) it is timed against plain, interleaved, and kept only if it
saved at least ``AUTO_MIN_GAIN`` of a call. A mode whose difference from plain, times the run's ``sensitivity``,
could pass the tolerance is refused; one that even ``AUTO_DIFFERENCE_PRIOR`` (the least difference measured) would
refuse is not built at all. Timings are kept on the denoiser, so a later run with the same batch
decides at once and the same way; a network built earlier in the process (a compiled one's cache warm) costs no
set-up. The result's ``mode`` is what runs, and what the run records; ``note`` says why.

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

from . import cuda_graphs, traced
from .checks import require_choice
from .choices import ACCELERATION_TOLERANCE, NETWORK_MODES
from .models.denoiser import NetworkDenoiser

COMPILE_ARGUMENTS: dict = {}   # extra torch.compile arguments (none: the default mode, dynamic shapes as needed)
COMPILE_CONFIG = {"freezing": True}   # inductor config while our network compiles (see the module docstring)

# auto: the modes it weighs on each device type (docs/performance.md, "What auto chooses on this CPU")
AUTO_CANDIDATES = {"cpu": ("traced_channels_last", "traced", "compiled"), "cuda": ("cuda_graph",)}
# a candidate's expected cost before it is built: (set-up seconds, plus plain calls' worth of set-up, the fraction
# of a plain call it saves). From the measurements on this project's 2-core CPU, set-up on the slow side and
# savings on the low side: tracing 0.3-0.6 s in a process that traced before, 1.6 s in a fresh one (a whole
# `studio sample` process: trace and freeze 1.4 s, the checked first call 0.2 s), and the decision's own calls (the
# check against plain, plain and the graph timed interleaved) about 11 plain calls; traced saving 5-46% (13% for
# the bench's UNet2DModel at 16 rows), on channels-last 16-53%; compiling 35-60 s cold, saving 24-39% (so auto
# compiles only where a run's plain network time is 20 minutes or more); CUDA graphs a few calls (no GPU measured:
# a guess).
AUTO_PRIORS = {"traced": (1.5, 11.0, 0.15), "traced_channels_last": (1.5, 11.0, 0.2), "compiled": (60.0, 10.0, 0.25),
               "compiled_channels_last": (60.0, 10.0, 0.25), "channels_last": (0.05, 4.0, 0.05),
               "cuda_graph": (0.05, 8.0, 0.3)}
# a candidate's expected difference from plain a call before it is built: the least measured (docs/performance.md:
# 2.2e-7 to 2.9e-6 for the channels-last layouts, 2.2e-7 compiled); the traced graph on the plain layout and the
# CUDA graph run plain's kernels. Auto does not build a mode that even this could refuse (a long run's sensitivity).
AUTO_DIFFERENCE_PRIORS = {"traced": 0.0, "cuda_graph": 0.0}
AUTO_DIFFERENCE_PRIOR = 1e-7   # every other mode
AUTO_MIN_GAIN = 0.05     # a built mode must measure at least this much faster per call than plain to be kept
AUTO_MIN_PARAMETERS = 10_000   # a network module with fewer stays plain without a timing call: its calls are cheap
AUTO_TIMING_CALLS = 3    # calls of plain and of a built candidate, interleaved, timed by auto (the fastest counts)


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
        """The mode asked for is not the one in use (auto never falls back: what it chose is in use)."""
        return self.requested != "auto" and self.mode != self.requested


@dataclass(frozen=True)
class Option:
    """A mode auto may take: the set-up it still costs (0 when built before) and its time per call (measured,
    or expected from ``AUTO_PRIORS`` before it is built)."""

    mode: str
    setup_seconds: float
    call_seconds: float


def choose_network(plain_call_seconds: float, calls: int, options, min_gain: float = AUTO_MIN_GAIN) -> tuple[str, str]:
    """(mode, why): the option that makes a run of ``calls`` network calls take the least time, its set-up
    included, or ``plain``. An option is weighed only if its call takes at most (1 - min_gain) of plain's; it
    must then make set-up + calls x its call shorter than calls x plain's call. Pure: the timings are given."""
    calls = max(0, int(calls))
    best, best_total, why = "plain", calls * plain_call_seconds, ""
    for option in options:
        if not option.call_seconds <= plain_call_seconds * (1.0 - min_gain):
            why = why or f"{option.mode} is not faster"
            continue
        total = option.setup_seconds + calls * option.call_seconds
        if total < best_total:
            best, best_total, why = option.mode, total, ""
        elif best == "plain":
            why = why or f"{option.mode}'s set-up would not pay in {calls} calls"
    return best, why


def check_network_mode(mode) -> str:
    return require_choice("network mode", mode, NETWORK_MODES)


def network_denoiser(denoiser) -> NetworkDenoiser | None:
    """The NetworkDenoiser inside wrappers such as FixedBatchDenoiser (``.inner``), or None."""
    seen = 0
    while not isinstance(denoiser, NetworkDenoiser) and hasattr(denoiser, "inner") and seen < 8:
        denoiser, seen = denoiser.inner, seen + 1
    return denoiser if isinstance(denoiser, NetworkDenoiser) else None


def accelerate(denoiser, mode: str, batch_size: int = 1, tolerance: float = ACCELERATION_TOLERANCE,
               calls: int | None = None, sensitivity: float | None = None) -> Acceleration:
    """Put the denoiser's network in ``mode`` (see the module docstring); returns what was done.

    ``batch_size``: the probe batch; give the number of rows the network will be called on (a compiled network
    is specialised to the shapes it saw). Asking again for the mode in use, or for one built before on the same
    batch, device and dtype, reuses it. Wrappers with an ``.inner`` denoiser (FixedBatchDenoiser) are looked
    through; any other denoiser stays as it is (plain). ``calls``: the network calls the run will make, which
    ``auto`` weighs set-ups against (None or 0: auto stays plain). ``sensitivity``: how far a difference of 1 in
    every network output of one trajectory can move its final sample (the engine's ``run_sensitivity``: the sum of
    sigma_t over its calls, as x0_pred moves by sigma_t times a change of the predicted noise): ``auto`` refuses a
    mode whose difference from plain on the probe batch, times that, could pass the tolerance (an exact mode, as
    the traced graph on the plain layout, always passes)."""
    check_network_mode(mode)
    started = time.perf_counter()
    target = network_denoiser(denoiser)
    if target is None:
        note = {"plain": "", "auto": "auto: plain (not a network denoiser)"}.get(
            mode, "only a network denoiser can be accelerated")
        return Acceleration(mode, "plain", 0.0, 0.0, note)
    if mode == "plain":
        if target.faster.in_use is not None:
            target.use_plain_network()
        return Acceleration(mode, "plain", 0.0, time.perf_counter() - started)
    if mode == "auto":
        return _auto(target, max(1, int(batch_size)), float(tolerance), max(0, int(calls or 0)), started,
                     float(sensitivity or 0.0))
    return _install(target, mode, batch_size, tolerance, started)


def _install(target: NetworkDenoiser, mode: str, batch_size: int, tolerance: float, started: float) -> Acceleration:
    """Build ``mode`` (or reuse the one built before) and put it in use; plain when it falls back."""
    faster = target.faster
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


def _auto(target: NetworkDenoiser, batch_size: int, tolerance: float, calls: int, started: float,
          sensitivity: float = 0.0) -> Acceleration:
    """``auto``: see the module docstring. Costs one plain call on the probe batch when no candidate could pay
    in ``calls`` calls, three when one could, and more only where a candidate is built and timed."""
    where = (batch_size, str(target.device), target.dtype, float(tolerance))
    faster = target.faster
    built = {key[0]: entry for key, entry in faster.built.items() if key[1:] == where}
    candidates = [mode for mode in AUTO_CANDIDATES.get(target.device.type, ()) if _may_try(target, mode)]
    candidates += [mode for mode, (_, result) in built.items()   # built before (a warm cache): free to use
                   if mode not in candidates and result.mode == mode]
    refused: dict[str, str] = {}
    for mode in list(candidates):   # what even the least difference measured would refuse is not built
        expected = AUTO_DIFFERENCE_PRIORS.get(mode, AUTO_DIFFERENCE_PRIOR)
        if mode not in built and expected * sensitivity > tolerance:
            candidates.remove(mode)
            refused[mode] = (f"not tried: a difference from plain of {expected:.2g} a call, the least measured, "
                             f"could move the final samples past {tolerance:g} (the run's sensitivity "
                             f"{sensitivity:.3g})")
    setup: dict[str, float] = {}   # mode -> the seconds building it took in this decision

    def done(mode: str, why: str, plain_call: float = 0.0) -> Acceleration:
        if mode == "plain":
            if target.faster.in_use is not None:
                target.use_plain_network()
            timing = f"; plain {_ms(plain_call)}/call, {calls} calls" if plain_call else ""
            return Acceleration("auto", "plain", 0.0, time.perf_counter() - started, f"auto: plain ({why}{timing})",
                                probe_rows=batch_size)
        result = _install(target, mode, batch_size, tolerance, started)
        return replace(result, requested="auto", seconds=time.perf_counter() - started, note=f"auto: {mode} ({why})",
                       reused=mode not in setup)

    if not candidates:
        return done("plain", "; ".join(f"{mode}: {note}" for mode, note in refused.items())
                    or f"no faster mode for this network on {target.device.type}")
    if target.module is not None and _parameters(target) < AUTO_MIN_PARAMETERS:
        return done("plain", f"a network of under {AUTO_MIN_PARAMETERS:,} parameters: nothing to gain")
    if calls == 0:
        return done("plain", "the run's length is not known")
    target.use_plain_network()   # plain is timed (and compared with) in its own layout
    probe = _probe_inputs(target, batch_size)
    timings = faster.timings
    plain_call = timings.get(("plain", *where[:3]))
    if plain_call is None:
        # one call first (a first call's costs included, an upper bound, kept for the next run): enough to see
        # that no candidate could pay, else two more calls time plain
        usable = {mode for mode, (_, result) in built.items() if result.mode == mode}
        bound = timings.get(("plain", *where[:3], "bound"))
        if bound is None:
            bound = timings[("plain", *where[:3], "bound")] = _seconds_per_call(target.plain_network, probe,
                                                                               target.device)
        if not any(_could_pay(mode, bound, calls, mode in usable) for mode in candidates):
            return done("plain", "no faster mode's set-up would pay", bound)
        plain_call = min(bound, *(_seconds_per_call(target.plain_network, probe, target.device) for _ in range(2)))
        timings[("plain", *where[:3])] = plain_call
    for _ in range(len(candidates) + 1):
        options = []
        for mode in candidates:
            key = (mode, *where)
            if key in faster.built:
                network, result = faster.built[key]
                if result.mode != mode:
                    refused[mode] = result.note
                    continue
                if result.max_difference * sensitivity > tolerance:   # a trajectory carries each call's difference on
                    refused[mode] = (f"its difference from plain, {result.max_difference:.2g} a call, could move the "
                                     f"final samples past {tolerance:g} (the run's sensitivity {sensitivity:.3g})")
                    continue
                if key[:4] not in timings:
                    timings[key[:4]] = _timed_against_plain(target, network, probe, plain_call,
                                                            "channels_last" in mode)
                options.append(Option(mode, 0.0, timings[key[:4]]))
            else:
                fixed, plain_calls, saving = AUTO_PRIORS.get(mode, (60.0, 10.0, 0.3))
                options.append(Option(mode, fixed + plain_calls * plain_call, plain_call * (1.0 - saving)))
        choice, why = choose_network(plain_call, calls, options)
        if choice == "plain" or (choice, *where) in faster.built:
            break
        began = time.perf_counter()
        _install(target, choice, batch_size, tolerance, began)   # builds and checks it (plain if it falls back)
        target.use_plain_network()
        setup[choice] = time.perf_counter() - began
    if choice == "plain":
        reasons = [f"{mode}: {note}" for mode, note in refused.items() if note]
        return done("plain", "; ".join([why] * bool(why) + reasons) or "nothing faster", plain_call)
    call = timings[(choice, *where[:3])]
    paid = f"set-up {setup[choice]:.2g} s" if choice in setup else "built before"
    return done(choice, f"plain {_ms(plain_call)}/call, {choice} {_ms(call)}, {paid}, {calls} calls")


def _ms(seconds: float) -> str:
    milliseconds = seconds * 1e3
    return f"{milliseconds:.3g} ms" if milliseconds < 100 else f"{milliseconds:.0f} ms"


def _may_try(target: NetworkDenoiser, mode: str) -> bool:
    """Whether ``mode`` can work for this network at all (auto does not build what would only fall back), and is
    worth weighing: auto traces or compiles only a network given as a torch module (any other callable is a
    stand-in or a function of the user's, left as it is)."""
    if target.module is None and mode != "cuda_graph":
        return False
    if mode == "cuda_graph":
        return cuda_graphs.available(target.device)
    return not ("channels_last" in mode and not target.is_image_module)


def _parameters(target: NetworkDenoiser) -> int:
    """The network module's parameter count (counted once: kept with the timings)."""
    count = target.faster.timings.get("parameters")
    if count is None:
        count = target.faster.timings["parameters"] = sum(p.numel() for p in target.module.parameters())
    return count


def _could_pay(mode: str, plain_call: float, calls: int, built) -> bool:
    """Whether ``mode`` could save its set-up in ``calls`` calls of ``plain_call`` seconds (built: no set-up)."""
    if built:
        return calls > 0
    fixed, plain_calls, saving = AUTO_PRIORS.get(mode, (60.0, 10.0, 0.3))
    return calls * plain_call * saving > fixed + plain_calls * plain_call


def _seconds_per_call(network, inputs, device: torch.device) -> float:
    """The seconds one call of ``network`` on ``inputs`` takes (a GPU waited for before and after)."""
    cuda = device.type == "cuda"
    with torch.inference_mode():
        if cuda:
            torch.cuda.synchronize(device)
        began = time.perf_counter()
        network(*inputs)
        if cuda:
            torch.cuda.synchronize(device)
    return time.perf_counter() - began


def _timed_against_plain(target: NetworkDenoiser, network, probe, plain_call: float,
                         channels_last: bool = False) -> float:
    """A built network's seconds per call, as plain's (``plain_call``) times the ratio of their fastest calls,
    timed interleaved on the probe batch (a machine's load then weighs on both alike); each in the weights' layout
    it runs in. Leaves the denoiser plain."""
    def use(fast: bool) -> None:
        if channels_last:
            target.use_network(network, channels_last=True) if fast else target.use_plain_network()

    plain, fast = [], []
    try:
        use(True)
        _seconds_per_call(network, probe, target.device)   # warm
        for _ in range(AUTO_TIMING_CALLS):
            use(False)
            plain.append(_seconds_per_call(target.plain_network, probe, target.device))
            use(True)
            fast.append(_seconds_per_call(network, probe, target.device))
    finally:
        target.use_plain_network()
    return plain_call * min(fast) / max(min(plain), 1e-9)


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
    if mode.startswith("traced") and target.module is None:
        return fallback(f"{mode} needs a network given as a torch module")
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
            if mode.startswith("traced"):   # traces and checks at its first call, here
                network = traced.TracedNetwork(plain, tolerance, channels_last="channels_last" in mode)
            difference = max(float((network(*inputs).float() - reference).abs().max())
                             for inputs, reference in zip(probes, references))
            if mode.startswith("traced") and not network.graphs:
                return fallback(f"{mode}: {next(iter(network.refusals.values()), 'no graph')}")
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
