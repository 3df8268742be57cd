"""The denoising-diffusion-pytorch package (lucidrains'), imported only when one of its checkpoints is opened.

The studio needs one class of it, ``Unet``. The package's module also imports torchvision at its top (for its
Trainer's image folder and sample grids, neither of which the studio uses). A torchvision whose compiled operators
were built for another torch build (PyPI's CUDA torchvision beside a CPU-only torch: "operator torchvision::nms does
not exist") cannot even be imported, and breaks every other import of it (diffusers' among them), so on such a
machine torchvision is best uninstalled. Where torchvision is absent or cannot load, the package is imported with an
empty stand-in for ``torchvision``,
``torchvision.transforms`` and ``torchvision.utils`` that raises ImportError on any use, and the stand-in is taken out
of ``sys.modules`` again at once, so any later ``import torchvision`` fails as it would have.
"""

from __future__ import annotations

import sys
import types
import warnings

from .common import fail, one_line

INSTALL_HINT = ("pip install -e '.[ddpm-pytorch]' (the denoising-diffusion-pytorch package; install it after "
                "torch, with the torchvision that matches it)")
_STAND_INS = ("torchvision", "torchvision.transforms", "torchvision.utils")


class _UnusableTorchvision(types.ModuleType):
    """What the package's ``from torchvision import transforms as T, utils`` finds while torchvision cannot load."""

    reason = ""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise ImportError(f"torchvision does not load with this torch ({self.reason}); the studio needs only the "
                          "Unet of denoising-diffusion-pytorch, not its image folders or grids")


def unet_class(path):
    """``denoising_diffusion_pytorch.Unet``; a CheckpointError naming ``path`` and the install when it is absent."""
    return _module(path).Unet


def _module(path):
    try:
        return _import()
    except ImportError as exc:
        raise fail(path, f"opening a denoising-diffusion-pytorch checkpoint needs the package: {INSTALL_HINT} "
                         f"({one_line(exc)})") from None


def _import():
    loaded = sys.modules.get("denoising_diffusion_pytorch.denoising_diffusion_pytorch")
    if loaded is not None:
        return loaded
    reason = _torchvision_problem()
    if reason is None:
        return _quiet_import()
    saved = {name: sys.modules.get(name) for name in _STAND_INS}
    stand_ins = {name: _UnusableTorchvision(name) for name in _STAND_INS}
    for name, module in stand_ins.items():
        module.reason = reason
        sys.modules[name] = module
    stand_ins["torchvision"].transforms = stand_ins["torchvision.transforms"]
    stand_ins["torchvision"].utils = stand_ins["torchvision.utils"]
    try:
        return _quiet_import()
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def _quiet_import():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from denoising_diffusion_pytorch import denoising_diffusion_pytorch as library
    return library


def _torchvision_problem() -> str | None:
    """None when torchvision imports; else why not (absent, or installed but unable to load with this torch)."""
    if "torchvision" in sys.modules:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import torchvision  # noqa: F401
    except ImportError as exc:
        if getattr(exc, "name", None) == "torchvision":
            return "torchvision is not installed"
        return one_line(exc)
    except Exception as exc:   # noqa: BLE001 -- RuntimeError from its operator registrations, whatever it raises
        return one_line(exc)
    return None
