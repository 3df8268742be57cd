"""diffusers' own ``UNet2DModel`` class, imported without the rest of diffusers.

``from diffusers import UNet2DModel`` (or ``diffusers.models.unets.unet_2d``) runs the ``__init__`` of
``diffusers.models.unets`` and ``diffusers.models.transformers``, which import every UNet and transformer
diffusers has; ``unet_2d_condition`` pulls in the loaders, the single-file loader brings all the schedulers and
scipy.stats. On 2 busy cores that is about 0.8-1.4 s of a `studio sample` run that needs none of it
(docs/performance.md, start-up). Here those two packages are entered without running their ``__init__``: each is put
in ``sys.modules`` as a ``DeferredPackage`` (the package's own folder, spec and name, nothing run yet), so importing
``unet_2d`` loads only the modules it imports itself. The class is diffusers' own, from diffusers' own file.

A ``DeferredPackage`` stays a faithful package for any later user: the first time a name is missing from it
(``from diffusers.models.unets import UNet2DConditionModel``, ``diffusers.models.unets.UNet1DModel``), it runs the
package's own ``__init__`` in its namespace, once, and looks again. Submodules already loaded are reused, so the
classes stay the same objects. ``diffusers.utils`` imports ``torch._dynamo`` (about 1 s) for the decorator
``maybe_allow_in_graph``: ``deferred_dynamo`` enters it the same way, noting what the decorator is given and
registering it with Dynamo once anything loads Dynamo for real.
"""

from __future__ import annotations

import importlib
import sys
import threading
import types

from .deferred_dynamo import defer as defer_dynamo, unrun_package

UNET_MODULE = "diffusers.models.unets.unet_2d"
# packages whose __init__ imports far more than UNet2DModel needs (their submodules load one by one)
DEFERRED_PACKAGES = ("diffusers.models.unets", "diffusers.models.transformers")

_lock = threading.RLock()   # re-entered when loading unet_2d completes a deferred package


class DeferredPackage(types.ModuleType):
    """A package entered without running its ``__init__``; the ``__init__`` runs when a name is first missed."""

    def __getattr__(self, name: str):
        with _lock:
            if (name.startswith("__") and name != "__all__") or self.__dict__.get("_deferred_done", True):
                raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
            self.__dict__["_deferred_done"] = True   # first: the __init__'s own look-ups must not come back here
            self.__spec__.loader.exec_module(self)
        return getattr(self, name)


def _defer(name: str) -> None:
    if name in sys.modules:
        return
    package = unrun_package(DeferredPackage, name)
    if package is None:
        raise ImportError(f"{name} is not a package")
    package.__dict__["_deferred_done"] = False
    parent_name, _, child = name.rpartition(".")
    sys.modules[name] = package
    parent = sys.modules[parent_name]
    if isinstance(parent, DeferredPackage) or child not in vars(parent):
        setattr(parent, child, package)   # as the import system binds a loaded submodule to its parent


def unet2d_class() -> type:
    """diffusers' ``UNet2DModel``; raises ImportError when diffusers is not installed."""
    if UNET_MODULE not in sys.modules:
        defer_dynamo()   # diffusers.utils imports it for a decorator: about 1 s, for nothing unless compiled
    import diffusers.models   # noqa: F401 -- diffusers' own lazy top levels (and diffusers.utils)

    module = sys.modules.get(UNET_MODULE)
    if module is None:
        with _lock:
            try:
                for name in DEFERRED_PACKAGES:
                    _defer(name)
            except ImportError:   # a diffusers laid out otherwise: the ordinary import below
                pass
            module = importlib.import_module(UNET_MODULE)
    return module.UNet2DModel
