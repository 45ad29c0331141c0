"""tests/module_seconds.json from a pytest `--durations=N` report: the seconds of each test module's listed
setups, calls and teardowns. tests/conftest.py runs the costliest modules first, so that under pytest-xdist a
long test does not start last and leave one worker running alone at the end.

    python -m pytest -q -n auto --durations=0 | python tools/test_order.py

Modules the report does not list keep their place after the listed ones (in pytest's order).
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

LINE = re.compile(r"^\s*([0-9.]+)s\s+(?:setup|call|teardown)\s+(\S+?\.py)::")
OUT = Path(__file__).resolve().parents[1] / "tests" / "module_seconds.json"


def module_seconds(report: str) -> dict[str, float]:
    seconds: dict[str, float] = {}
    for line in report.splitlines():
        m = LINE.match(line)
        if m:
            seconds[m.group(2)] = round(seconds.get(m.group(2), 0.0) + float(m.group(1)), 1)
    return dict(sorted(seconds.items(), key=lambda kv: -kv[1]))


if __name__ == "__main__":
    found = module_seconds(sys.stdin.read())
    if not found:
        sys.exit("tools/test_order.py: no `--durations` lines in the input")
    OUT.write_text(json.dumps(found, indent=1) + "\n")
    print(f"{OUT}: {len(found)} modules")
