"""Start-up cost: building a pipeline from its config loads only what its stages run (issue 28's fixed costs)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("polars", "PIL", "imagehash", "matplotlib")  # the reports' and the image stages' modules

PROBE = """
import json, sys, yaml
from curate.config import pipeline_from_dict
pipeline_from_dict(yaml.safe_load(open(sys.argv[1])))
print(json.dumps(sorted(m for m in sys.argv[2:] if m in sys.modules)))
"""


def test_the_web_text_config_loads_no_report_or_image_module():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", PROBE, str(ROOT / "configs" / "web-text.yaml"), *HEAVY],
                         capture_output=True, text=True, env=env, cwd=ROOT, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []


def test_the_probe_sees_a_module_that_is_loaded():  # (else the test above could not fail)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    probe = PROBE.replace("pipeline_from_dict(yaml", "import polars; pipeline_from_dict(yaml")
    out = subprocess.run([sys.executable, "-c", probe, str(ROOT / "configs" / "web-text.yaml"), *HEAVY],
                         capture_output=True, text=True, env=env, cwd=ROOT, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == ["polars"]
