"""Build the network a file describes without trusting the description's size.

A card or a config.json is a few bytes that can describe any network (an MLP a hundred million blocks deep, a
layer 200,000 wide). Before anything is allocated, the network is built on torch's meta device (no memory, no
initialisation) under a hook that stops the build once it registers more modules than the file's weights could
fill, and the file's tensors must fit it name for name and shape for shape; a forward on the meta device then
measures the activations one sample makes. Only a description that fits its weights (so the real build is no
larger than the file), and whose batch of one fits in memory, is then built for real.
"""

from __future__ import annotations

import math
import threading
from contextlib import contextmanager
from typing import Callable, Mapping

import torch
from torch.nn.modules import module as module_hooks
from torch.overrides import TorchFunctionMode

from ..memory_budget import available_bytes, size_text
from ..models.card import ModelCard
from .common import check_fit, fail

_MODULES_PER_TENSOR = 64   # parameter-free modules (activations, containers) a weight tensor may come with


class _TooLarge(Exception):
    def __init__(self, message: str):
        super().__init__(message)


@contextmanager
def _bounded(max_modules: int):
    """Count the modules this thread registers; stop the build once past the bound (parameters on the meta
    device cost nothing, but each module costs Python time and memory)."""
    thread = threading.get_ident()
    count = [0]

    def on_module(module, name, submodule):
        if threading.get_ident() == thread:
            count[0] += 1
            if count[0] > max_modules:
                raise _TooLarge(f"the architecture in its card has more than {max_modules:,} layers, more than "
                                "its weights could fill")

    handle = module_hooks.register_module_module_registration_hook(on_module)
    try:
        yield
    finally:
        handle.remove()


class _NoInit(TorchFunctionMode):
    """Skips weight initialisation while building on the meta device: a meta tensor has no values to fill, and
    torch's meta path for normal_ would import torch._dynamo (a second of start-up, and a package the desktop
    app does not ship)."""

    SKIPPED = frozenset({torch.nn.init.normal_, torch.nn.init.trunc_normal_, torch.nn.init.kaiming_normal_,
                         torch.nn.init.xavier_normal_, torch.nn.init.orthogonal_, torch.Tensor.normal_})

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.SKIPPED:
            tensor = args[0] if args else kwargs.get("tensor", kwargs.get("self"))
            if isinstance(tensor, torch.Tensor) and tensor.is_meta:
                return tensor
        return func(*args, **kwargs)


def _crude_activation_bound(network: torch.nn.Module, card: ModelCard) -> int:
    """An upper bound of one sample's activations: every module answering the widest layer's channels at the
    sample's full size. Cheap; the meta forward is run only when this bound is large, since torch's meta path
    for some ops (arange, normal_) imports torch._dynamo, a second of start-up for every small model."""
    widest = max((p.shape[0] for p in network.parameters() if p.dim() > 0), default=1)
    modules = sum(1 for _ in network.modules())
    return math.prod(card.data_shape) * widest * modules * 4


def _activation_bytes(network: torch.nn.Module, card: ModelCard) -> int | None:
    """Bytes of every module output of a batch-of-one forward, on the meta device (nothing is computed)."""
    total = [0]
    thread = threading.get_ident()

    def on_output(module, inputs, output):
        if threading.get_ident() == thread and isinstance(output, torch.Tensor):
            total[0] += output.numel() * output.element_size()

    x = torch.zeros((1, *card.data_shape), device="meta")
    t = torch.full((1,), card.num_train_timesteps - 1, dtype=torch.long, device="meta")
    labels = torch.zeros(1, dtype=torch.long, device="meta") if card.conditional else None
    handle = module_hooks.register_module_forward_hook(on_output)
    try:
        with torch.no_grad():
            if card.role == "classifier" and hasattr(network, "log_prob"):
                network.log_prob(x, t, labels)
            else:
                network(x, t, labels)
    except Exception:  # noqa: BLE001 -- an op without a meta kernel: the real probe still guards a batch of one
        return None
    finally:
        handle.remove()
    return total[0]


def checked_build(build: Callable[[], torch.nn.Module], card: ModelCard, state: Mapping[str, torch.Tensor],
                  path, what: str, forward: Callable[[torch.nn.Module], torch.nn.Module] | None = None,
                  inspect: Callable[[torch.nn.Module], None] | None = None) -> torch.nn.Module:
    """``build()`` for real, once a meta-device build has shown that ``state`` (the file's weights) fits it
    tensor for tensor, so the real build is no larger than the file, and that a batch of one fits in memory.
    ``what`` names the network in messages; ``forward`` wraps a built module into the studio's network call;
    ``inspect`` checks the meta-built module before its weights are compared (its own, clearer messages first)."""
    max_modules = _MODULES_PER_TENSOR * (len(state) + 1)
    try:
        with torch.device("meta"), _NoInit(), _bounded(max_modules):
            meta = build()
    except _TooLarge as exc:
        raise fail(path, f"refused: {exc} ({len(state)} tensors); nothing was built") from None
    if inspect is not None:
        inspect(meta)
    check_fit(meta, state, path, what)
    estimate = None
    if _crude_activation_bound(meta, card) > available_bytes() // 8:   # only then worth measuring (see below)
        estimate = _activation_bytes(forward(meta) if forward else meta, card)
    del meta
    if estimate is not None and estimate > available_bytes():
        raise fail(path, f"refused: one sample of shape {' x '.join(map(str, card.data_shape))} needs about "
                         f"{size_text(estimate)} of activations, more than the {size_text(available_bytes())} "
                         "this machine has available")
    return build()
