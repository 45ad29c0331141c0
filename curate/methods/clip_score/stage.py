"""`clip_score`: the cosine between each row's image vector and caption vector, both from one open_clip model.

The vectors are the embed stages' stored outputs (`<embed>.vector`, L2-normalised), so the score costs a dot
product per row: no image is decoded and no model runs a second time. Both towers must be the same model with
the same weights, or the cosine means nothing; the pipeline refuses the config otherwise (`check_upstream`,
from what each embed stage records in `file_metadata`). This is the score LAION-400M/5B filtered by (ViT-B/32,
keep >= 0.28; 0.26 for LAION-5B's non-English part) and DataComp's "CLIP score" baselines rank by (ViT-L/14,
keep the top 30%): the `clip_score` policy and `keep_fraction` apply them.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import numpy as np
import pyarrow as pa
from pydantic import Field

from curate.methods.clip_score.presentation import ClipScorePresenter
from curate.methods.hints import StageName
from curate.stage import Stage
from kernels.vectors import unit_vectors, vector_type_problem

# What an embed stage records about its model (Embed.file_metadata); vectors agreeing on all of these came
# from the same weights.
_SAME = ("backend", "model", "weights_sha256", "random_init", "dim")


class ClipScore(Stage):
    """Cosine between the image vector and the text vector of each row (embed stages' outputs, one model)."""

    type = "clip_score"
    version = "1"
    presenter = ClipScorePresenter()

    def __init__(self,
                 image_embedding: Annotated[str, Field(min_length=1, description="the image embed stage's vector "
                                                                                "column")] = "embed_image.vector",
                 text_embedding: Annotated[str, Field(min_length=1, description="the text embed stage's vector "
                                                                               "column")] = "embed_text.vector",
                 name: StageName = None):
        super().__init__(name)
        self.image_embedding, self.text_embedding = image_embedding, text_embedding

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.image_embedding, self.text_embedding)

    @property
    def outputs(self) -> dict[str, pa.DataType]:
        return {"score": pa.float32(), "error": pa.string()}

    def check_input(self, column: str, type: pa.DataType) -> str | None:
        return vector_type_problem(type)

    def check_upstream(self, producers: Mapping[str, Stage]) -> str | None:
        """Both columns from earlier open_clip embed stages of the right modality and the same model and weights."""
        facts = {}
        for column, modality in ((self.image_embedding, "image"), (self.text_embedding, "text")):
            problem = _tower_problem(column, modality, producers.get(column))
            if problem:
                return problem
            facts[modality] = (producers[column].name, producers[column].file_metadata())
        (iname, image), (tname, text) = facts["image"], facts["text"]
        differ = [k for k in _SAME if image.get(k) != text.get(k)]
        if differ:
            return (f"image vectors from stage {iname!r} ({_model(image)}) and text vectors from stage {tname!r} "
                    f"({_model(text)}) come from different models; a CLIP score compares the two towers of one "
                    f"model: give both embed stages the same `model` and `weights` (or `package`)")
        return None

    def score(self, batch: pa.Table) -> pa.Table:
        image, image_errors = unit_vectors(batch.column(self.image_embedding))
        text, text_errors = unit_vectors(batch.column(self.text_embedding))
        n = batch.num_rows
        errors = np.full(n, None, dtype=object)
        for side, column, found in (("text", self.text_embedding, text_errors),
                                    ("image", self.image_embedding, image_errors)):  # the image's reason wins
            bad = np.flatnonzero(found != None)  # noqa: E711 (elementwise on an object array)
            errors[bad] = [f"no_{side}_vector: {column} {_detail(e)}" for e in found[bad]]
        ok = errors == None  # noqa: E711
        score = np.einsum("ij,ij->i", image, text, dtype=np.float64) if image.shape == text.shape \
            else np.zeros(n)  # (only with no valid row: a shard of nulls on both sides)
        return pa.table({"score": pa.array(score.astype(np.float32), pa.float32(), mask=~ok),
                         "error": pa.array(errors.tolist(), pa.string())})


def _detail(error: str) -> str:
    """`invalid_embedding: null` -> `is null (its stage's error column says why)`."""
    what = error.split(": ", 1)[-1]
    return "is null (its stage's error column says why)" if what == "null" else f"has {what}"


def _model(meta: Mapping[str, str]) -> str:
    weights = meta.get("weights_sha256")
    shown = "random init" if meta.get("random_init") == "true" and weights in (None, "None") else \
        f"weights sha256 {str(weights)[:12]}"
    return f"{meta.get('backend')} model {meta.get('model')}, {shown}, dim {meta.get('dim')}"


def _tower_problem(column: str, modality: str, stage: Stage | None) -> str | None:
    how = (f"add, before it, a stage `type: embed, backend: open_clip, modality: {modality}` with the same `model` "
           f"and `weights` as the other tower, and name its vector column here")
    if stage is None:
        return f"{modality} vectors {column!r}: no earlier stage writes this column; {how}"
    meta: dict[str, Any] = stage.file_metadata()
    if not all(k in meta for k in _SAME) or "modality" not in meta:
        return f"{modality} vectors {column!r} come from stage {stage.name!r} (type {stage.type}), which does not " \
               f"record its model; {how}"
    if meta["backend"] != "open_clip":
        return f"{modality} vectors {column!r} come from stage {stage.name!r} with backend {meta['backend']}; {how}"
    if meta["modality"] != modality:
        return f"{modality} vectors {column!r} come from stage {stage.name!r}, which embeds {meta['modality']}s; {how}"
    return None
