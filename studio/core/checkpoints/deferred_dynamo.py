"""``torch._dynamo`` entered without running its ``__init__`` while diffusers' model classes are imported.

``diffusers.utils`` does ``from torch._dynamo import allow_in_graph`` at import, for a decorator it puts on its
attention classes: importing ``torch._dynamo`` for it costs about 1 s of every ``studio sample`` on a diffusers
folder (docs/performance.md, start-up), and nothing of Dynamo runs unless a network is compiled. ``defer()`` puts
``torch._dynamo`` in ``sys.modules`` as a ``DeferredDynamo``: the package's own folder, spec and name, nothing
run yet, and one name of its own, ``allow_in_graph``, which notes the callables it is given (weakly) and returns
them unchanged, as Dynamo's own does.

It stays a faithful ``torch._dynamo`` for any later user: the first time a name is missing from it
(``torch._dynamo.reset``, ``torch.compile`` reaching it) or a submodule is imported (``torch._dynamo.config``: a
meta path finder sees it first), it runs the package's own ``__init__`` in its namespace, once, and then hands
every callable it noted to the real ``allow_in_graph``; the ``allow_in_graph`` diffusers kept forwards to the real
one from then on. Dynamo's registry ends the same as if it had been imported first: it holds ids of the callables,
which stay the same objects.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import types
import weakref

NAME = "torch._dynamo"

_lock = threading.RLock()   # re-entered: running the __init__ imports the package's own submodules


class DeferredDynamo(types.ModuleType):
    """``torch._dynamo`` before its ``__init__`` has run; it runs the first time a name is missing."""

    def __getattr__(self, name: str):
        if name.startswith("__") and name != "__all__":
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        if not complete(self):   # already complete (or completing): the name is really missing
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        return getattr(self, name)


class _CompleteFirst:
    """A meta path finder: importing a submodule of a deferred ``torch._dynamo`` runs the package first."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.startswith(NAME + "."):
            module = sys.modules.get(NAME)
            if isinstance(module, DeferredDynamo):
                complete(module)
        return None   # the ordinary finders find it


def defer() -> bool:
    """Enter ``torch._dynamo`` without running it, if nothing has imported it yet; True if it was deferred."""
    with _lock:
        if NAME in sys.modules or "torch" not in sys.modules:
            return False
        module = unrun_package(DeferredDynamo, NAME)
        if module is None:
            return False
        noted: list[weakref.ref] = []
        state = {"done": False}

        def allow_in_graph(fn):
            """Dynamo's ``allow_in_graph`` before Dynamo is loaded: note ``fn`` and return it unchanged."""
            if state["done"]:
                return module.__dict__["allow_in_graph"](fn)
            try:
                noted.append(weakref.ref(fn))
            except TypeError:   # not weakly referable: kept (a function object of diffusers' lives as long anyway)
                noted.append(lambda fn=fn: fn)
            return fn

        module.__dict__.update(allow_in_graph=allow_in_graph, _studio_deferred=(state, noted))
        sys.modules[NAME] = module
        setattr(sys.modules["torch"], "_dynamo", module)   # as the import system binds a submodule to its parent
        if not any(isinstance(finder, _CompleteFirst) for finder in sys.meta_path):
            sys.meta_path.insert(0, _CompleteFirst())
        return True


def unrun_package(kind: type, name: str):
    """A module of ``kind`` (a ModuleType) that is package ``name`` with nothing of it run: its own folder, spec and
    loader, for its ``__init__`` to run in later; None where ``name`` is not a package found on disk."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.submodule_search_locations is None or spec.loader is None:
        return None
    module = kind(name)
    module.__spec__ = spec
    module.__path__ = list(spec.submodule_search_locations)
    module.__package__ = name
    module.__file__ = spec.origin
    module.__loader__ = spec.loader
    return module


def complete(module: DeferredDynamo) -> bool:
    """Run the real ``torch._dynamo`` in ``module`` (once) and register what was noted; False if it had run."""
    with _lock:
        state, noted = module.__dict__["_studio_deferred"]
        if state["done"]:
            return False
        state["done"] = True   # first: the __init__'s own imports and look-ups must not come back here
        del module.__dict__["allow_in_graph"]
        module.__spec__.loader.exec_module(module)
        real = module.__dict__["allow_in_graph"]
        for ref in noted:
            fn = ref()
            if fn is not None:
                real(fn)
        noted.clear()
        return True
