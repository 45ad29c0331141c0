"""Install the project (with extras) into the Makefile's virtualenv: uv where it can be had, pip otherwise.

    python tools/install.py VENV SPEC [--no-deps] [--no-compile]     e.g. tools/install.py .venv '.[embed,ray]'

--no-compile leaves bytecode to the first import (for a throwaway virtualenv, e.g. tests/test_install.py's:
compiling SciPy and pandas is most of its install time).

A SPEC starting with `.` is the project, installed editable; anything else is a requirement.

uv resolves the same pins as pip about 4x faster (bench/results/install.md), but it does not read pip's
configuration. Where this machine's pip is set up with local mirrors (find-links, extra indexes, constraints:
`pip config list`, files and PIP_* variables alike), they are handed to uv, and the index strategy is pip's
(best match over all indexes), so both pick the same versions. Stdlib only: it runs before anything is installed.
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

UV = "uv==0.13.9"


def pip_settings(python: Path) -> dict[str, list[str]]:
    """pip's effective find-links, extra-index-url, index-url and constraint settings, as lists of values."""
    out = subprocess.run([str(python), "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    settings: dict[str, list[str]] = {}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        name = key.rsplit(".", 1)[-1]
        if name in ("find-links", "extra-index-url", "index-url", "constraint"):
            values = settings.setdefault(name, [])   # a setting may come from a file and a PIP_* variable alike
            values += [v for v in ast.literal_eval(value).split() if v not in values]   # printed as literals
    return settings


def uv_arguments(settings: dict[str, list[str]]) -> list[str]:
    args = ["--index-strategy", "unsafe-best-match"]   # pip's rule: the best version over every index
    for name, flag in (("find-links", "--find-links"), ("extra-index-url", "--extra-index-url"),
                       ("index-url", "--index-url"), ("constraint", "--constraint")):
        for value in settings.get(name, []):
            if name != "find-links" or Path(value).exists() or "://" in value:
                args += [flag, value]
    return args


def main(venv: str, spec: str, *flags: str) -> int:
    compile_bytecode = "--no-compile" not in flags
    flags = tuple(f for f in flags if f != "--no-compile")
    python = Path(venv) / "bin" / "python"
    uv = Path(venv) / "bin" / "uv"
    pip = [str(python), "-m", "pip", "install", "-q"]
    target = ["-e", spec] if spec.startswith(".") else [spec]
    if not uv.exists() and subprocess.run([*pip, UV]).returncode != 0:
        print("tools/install.py: uv could not be installed; installing with pip (slower)", file=sys.stderr)
    if uv.exists():
        env = {**os.environ, "VIRTUAL_ENV": str(Path(venv).resolve())}
        # --compile-bytecode: as pip does. uv leaves it to the first import, and where bytecode is not written
        # (PYTHONDONTWRITEBYTECODE, a read-only venv) every process compiles its imports from source: seconds of
        # each run's start-up (and of each Ray worker's), bench/results/engine-overhead.md.
        cmd = [str(uv), "pip", "install", "-q", *(["--compile-bytecode"] if compile_bytecode else []),
               *uv_arguments(pip_settings(python)), *flags, *target]
        if subprocess.run(cmd, env=env).returncode == 0:
            return 0
        print("tools/install.py: uv failed (above); installing with pip", file=sys.stderr)
    return subprocess.run([*pip, *([] if compile_bytecode else ["--no-compile"]), *flags, *target]).returncode


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
