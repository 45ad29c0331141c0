"""kernels/deferred_imports.py: numba's first compile without scipy.linalg and Arrow without pandas until the
process imports them, with nothing else changed. Each check runs in a fresh interpreter (the state is the
process's imports)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


NUMBA = """
import json, sys
{setup}
import numba, numpy as np

@numba.njit
def total(a):
    s = 0.0
    for x in a:
        s += x
    return s

@numba.njit
def correlate(a, b):
    return np.correlate(a, b, "full")

@numba.njit
def dot(a, b):
    return np.dot(a, b)

r = {{"total": total(np.arange(4.0)), "scipy_linalg_after_first_compile": "scipy.linalg" in sys.modules,
      "have_blas": numba.np.arraymath._HAVE_BLAS}}
a, b = np.linspace(0, 1, 50), np.linspace(1, 2, 50)
r["correlate"] = correlate(a, b).tolist()
r["dot"] = float(dot(a, b))
print(json.dumps(r))
"""


def test_numba_compiles_without_scipy_linalg_and_keeps_its_blas_flag():
    deferred = _run(NUMBA.format(setup="import kernels"))
    plain = _run(NUMBA.format(setup=""))
    assert plain["scipy_linalg_after_first_compile"] is True  # what numba does alone (so the test can fail)
    assert deferred["scipy_linalg_after_first_compile"] is False
    assert deferred["have_blas"] is plain["have_blas"] is True  # np.correlate and np.convolve still pick BLAS
    assert deferred["total"] == 6.0
    assert deferred["correlate"] == plain["correlate"] and deferred["dot"] == plain["dot"]  # BLAS loads when used


ARROW = """
import json, sys
{setup}
import numpy as np, pyarrow as pa
pa.table({{"a": np.arange(3), "b": ["x", "y", "z"]}})
before = "pandas" in sys.modules
import pandas as pd
s = pd.Series(pd.Categorical(["a", "b", "a"]))
print(json.dumps({{"pandas_before": before, "categorical": str(pa.array(s).type),
                  "frame": pa.table({{"a": [1, 2]}}).to_pandas()["a"].tolist(),
                  "from_pandas": pa.Table.from_pandas(pd.DataFrame({{"c": s}})).schema.field("c").type.value_type.__str__()}}))
"""


def test_arrow_without_pandas_until_imported_then_with_it():
    deferred = _run(ARROW.format(setup="import curate"))
    plain = _run(ARROW.format(setup=""))
    assert plain["pandas_before"] is True  # Arrow alone imports pandas at its first array (the test can fail)
    assert deferred["pandas_before"] is False
    # once the process imports pandas, Arrow sees pandas objects as before: a categorical stays a dictionary
    assert deferred["categorical"] == plain["categorical"] and deferred["categorical"].startswith("dictionary<")
    assert deferred["frame"] == plain["frame"] == [1, 2] and deferred["from_pandas"] == plain["from_pandas"]


def test_arrow_to_pandas_imports_pandas_when_asked():
    r = _run("import json, sys\nimport curate\nimport pyarrow as pa\npa.array([1])\n"
             "df = pa.table({'a': [1, 2]}).to_pandas()\n"
             "print(json.dumps({'rows': len(df), 'pandas': 'pandas' in sys.modules}))")
    assert r == {"rows": 2, "pandas": True}


def test_a_module_is_hidden_from_the_blocking_thread_only():
    import importlib
    import threading

    from kernels.deferred_imports import _Absent

    saved = sys.modules.pop("colorsys", None)
    try:
        other: list = []
        with _Absent("colorsys"):
            try:
                importlib.import_module("colorsys")
                here = "imported"
            except ModuleNotFoundError:
                here = "absent"
            t = threading.Thread(target=lambda: other.append(importlib.import_module("colorsys").__name__))
            t.start()
            t.join()
        assert here == "absent" and other == ["colorsys"]
    finally:
        if saved is not None:
            sys.modules["colorsys"] = saved
