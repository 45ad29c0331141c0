"""Two imports that numba and pyarrow make only for an optional check, put off until something needs them
(each ~0.3 s per process, a tenth of a web-text run: bench/results/webtext_pipeline.md).

- numba, at its first compile or cache load, imports `numba.np.arraymath`, whose body imports scipy.linalg
  (scipy's array-API layer with it) only to set `_HAVE_BLAS`, the flag by which np.correlate and
  np.convolve pick BLAS for float inner products. `defer_blas_check` makes that one import without
  scipy.linalg and then sets the flag to whether scipy's BLAS module is installed, which is what numba's
  check finds. np.dot and np.linalg still import
  scipy.linalg themselves when a kernel that uses them compiles (numba's `ensure_blas`).
- pyarrow, at the first array it builds from Python objects or NumPy (`pa.array`, `pa.table`, `pa.scalar`),
  imports pandas to ask whether the input is a pandas object. `defer_pandas` has pyarrow note pandas as
  absent while the process has not imported it, and tell it pandas is there once anything imports it
  (pyarrow's shim retries the import when asked for pandas: pyarrow/pandas-shim.pxi). Until then nothing
  can hand pyarrow a pandas object, so no result changes.

Both lean on the pinned versions' internals (pyproject.toml pins numba and pyarrow); tests/kernels/
test_deferred_imports.py checks each behaviour so that an upgrade that changes them fails there.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
import threading
from collections.abc import Callable
from types import ModuleType


class _Absent(importlib.abc.MetaPathFinder):
    """While first on sys.meta_path: `import <name>` fails as if it were not installed, in this thread only
    (another thread's import of it goes on as usual)."""

    def __init__(self, name: str):
        self.name, self.thread = name, threading.get_ident()

    def find_spec(self, fullname, path=None, target=None):
        if fullname == self.name and threading.get_ident() == self.thread:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None

    def __enter__(self) -> _Absent:
        sys.meta_path.insert(0, self)
        return self

    def __exit__(self, *exc) -> None:
        sys.meta_path.remove(self)


class _Then(importlib.abc.Loader):
    """A module's own loader (with `without` absent while its body runs, if given), then `then(module)`; the
    module keeps its own loader."""

    def __init__(self, loader: importlib.abc.Loader, then: Callable[[ModuleType], None], without: str | None):
        self.loader, self.then, self.without = loader, then, without

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__.loader = module.__loader__ = self.loader
        if self.without:
            with _Absent(self.without):
                self.loader.exec_module(module)
        else:
            self.loader.exec_module(module)
        self.then(module)


class _OnImport(importlib.abc.MetaPathFinder):
    """At the first import of `name`: the module as the other finders find and load it, with `without`
    absent while its body runs (unless already imported), then `then(module)`."""

    def __init__(self, name: str, then: Callable[[ModuleType], None], without: str | None = None):
        self.name, self.then, self.without = name, then, without

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)  # once (the import system stops at the spec returned, or finds none)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            without = self.without if self.without not in sys.modules else None
            spec.loader = _Then(spec.loader, self.then, without)
        return spec


def _scipy_blas_installed() -> bool:
    """Whether scipy's BLAS module is installed (found without importing scipy.linalg)."""
    spec = importlib.util.find_spec("scipy")  # (numba imports scipy itself: one of its critical dependencies)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        linalg = os.path.join(folder, "linalg")
        if os.path.isdir(linalg) and any(f.startswith("cython_blas.") and f.endswith((".so", ".pyd"))
                                         for f in os.listdir(linalg)):
            return True
    return False


def _set_have_blas(arraymath: ModuleType) -> None:
    if "scipy.linalg" not in sys.modules:  # (numba's own check ran when it was)
        arraymath._HAVE_BLAS = _scipy_blas_installed()


def defer_blas_check() -> None:
    """numba's first compile or cache load without importing scipy.linalg (see the module's doc)."""
    if "numba.np.arraymath" not in sys.modules and not any(isinstance(f, _OnImport) and f.name == "numba.np.arraymath"
                                                          for f in sys.meta_path):
        sys.meta_path.insert(0, _OnImport("numba.np.arraymath", _set_have_blas, without="scipy.linalg"))


def _tell_pyarrow(_pandas: ModuleType) -> None:
    import pyarrow as pa

    try:
        pa.lib._pandas_api.pd  # noqa: B018 (asked for pandas, the shim imports it, now in sys.modules, and notes it)
    except ImportError:
        pass  # pandas' import failed: pyarrow goes on without it, as it would have


def defer_pandas() -> None:
    """pyarrow without pandas until the process imports pandas (see the module's doc)."""
    if "pandas" in sys.modules:
        return
    import pyarrow as pa

    with _Absent("pandas"):
        pa.scalar(0)  # pyarrow's first question: "is pandas installed?"; it keeps the answer
    if "pandas" not in sys.modules:
        sys.meta_path.insert(0, _OnImport("pandas", _tell_pyarrow))
