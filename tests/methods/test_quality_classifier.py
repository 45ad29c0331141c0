"""The quality classifier: training (DCLM recipe, deterministic for a seed, refusals), the model's labels, the
stage (P(label), per-row errors, keyed by the model's content), runs (local vs Ray, resume), report, CLI."""
from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pyarrow as pa
import pytest

import curate
from curate.cli import main
from curate.errors import ConfigError, DataError
from curate.methods.models import sha256_of
from curate.methods.quality_classifier import QualityClassifier
from curate.methods.quality_classifier import model as ft
from curate.methods.quality_classifier.train import TrainParams, auroc, read_texts, sidecar_path, train
from curate.policy import KeepFraction, Threshold
from curate.report import write_report
from curate.report.view import lines
from testkit.helpers import write_shards

fasttext = pytest.importorskip("fasttext")

DOCS = ("the function returns a list of values from the module import the class attribute raises an exception "
        "when the argument is not an integer the method calls the iterator and yields each item keyword "
        "arguments are passed to the constructor of the object").split()
LEGAL = ("the licensee shall not distribute the software without the prior written permission of the licensor "
         "any warranty of merchantability or fitness for a particular purpose is disclaimed in no event shall "
         "the copyright holder be liable for damages").split()
SMALL = {"dim": 16, "bucket": 20_000, "epoch": 10}


def texts(vocab: list[str], n: int, seed: int) -> list[str]:
    """n texts of 12-30 words drawn from `vocab`, one in five with a line break inside."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        words = list(rng.choice(vocab, size=int(rng.integers(12, 31))))
        if i % 5 == 0:
            words.insert(len(words) // 2, "\n")
        out.append(" ".join(words))
    return out


def jsonl(path, rows: list[str]):
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in rows))
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    pos, neg = jsonl(folder / "docs.jsonl", texts(DOCS, 150, 1)), jsonl(folder / "pool.jsonl", texts(LEGAL, 300, 2))
    train([str(pos)], [str(neg)], folder / "model.bin", params=TrainParams(**SMALL))
    return folder / "model.bin"


def test_training_is_deterministic_with_a_seed_and_the_seed_matters(tmp_path):
    pos, neg = jsonl(tmp_path / "p.jsonl", texts(DOCS, 80, 3)), jsonl(tmp_path / "n.jsonl", texts(LEGAL, 120, 4))
    made = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        record = train([str(pos)], [str(neg)], tmp_path / f"{name}.bin", params=TrainParams(seed=seed, **SMALL))
        made.append((hashlib.sha256((tmp_path / f"{name}.bin").read_bytes()).hexdigest(), record["holdout_metrics"]))
    assert made[0] == made[1]
    assert made[0][0] != made[2][0]


def test_the_recipe_balances_negatives_and_records_files_counts_and_metrics(model):
    record = json.loads(sidecar_path(model).read_text())
    c = record["counts"]
    assert (c["positive"], c["negative_read"], c["negative"]) == (150, 300, 150)  # balanced by default
    assert c["holdout_positive"] == c["holdout_negative"] == 15
    assert c["train_positive"] + c["holdout_positive"] == 150
    assert record["model_sha256"] == sha256_of(model)
    assert [f["sha256"] for f in record["positive"]] == [sha256_of(model.parent / "docs.jsonl")]
    assert record["holdout_metrics"]["auroc"] > 0.95 and record["holdout_metrics"]["precision"] > 0.8


def test_max_negatives_and_no_balance_choose_how_many_negatives(tmp_path):
    pos, neg = jsonl(tmp_path / "p.jsonl", texts(DOCS, 40, 5)), jsonl(tmp_path / "n.jsonl", texts(LEGAL, 90, 6))
    every = train([str(pos)], [str(neg)], tmp_path / "a.bin", balance=False, params=TrainParams(**SMALL))
    capped = train([str(pos)], [str(neg)], tmp_path / "b.bin", max_negatives=25, params=TrainParams(**SMALL))
    assert every["counts"]["negative"] == 90 and capped["counts"]["negative"] == 25


def test_empty_and_single_class_input_is_refused_clearly(tmp_path):
    pos = jsonl(tmp_path / "p.jsonl", texts(DOCS, 20, 7))
    blank = jsonl(tmp_path / "blank.jsonl", ["", "   ", "\n"])
    with pytest.raises(DataError, match="negative files .* hold no text"):
        train([str(pos)], [str(blank)], tmp_path / "m.bin")
    with pytest.raises(ConfigError, match="no negative files given"):
        train([str(pos)], [], tmp_path / "m.bin")
    with pytest.raises(DataError, match="does not exist"):
        train([str(pos)], [str(tmp_path / "missing.jsonl")], tmp_path / "m.bin")
    with pytest.raises(DataError, match="has no column 'body'"):
        train([str(pos)], [str(pos)], tmp_path / "m.bin", text_column="body")
    two = jsonl(tmp_path / "two.jsonl", ["a negative text", "another negative text"])
    with pytest.raises(DataError, match="too few texts to train on both classes"):
        train([str(pos)], [str(two)], tmp_path / "m.bin", holdout=0.9)
    with pytest.raises(ConfigError, match="bucket x dim must be at least"):
        train([str(pos)], [str(two)], tmp_path / "m.bin", params=TrainParams(dim=4, bucket=100))
    assert not (tmp_path / "m.bin").exists()


def test_labels_are_read_from_the_file_as_fasttext_reads_them(model, tmp_path):
    assert ft.model_labels(model) == fasttext.load_model(str(model)).labels
    assert sorted(ft.model_labels(model)) == ["__label__hq", "__label__lq"]
    (tmp_path / "not.bin").write_bytes(b"\x00" * 200)
    with pytest.raises(ConfigError, match="not a fastText model"):
        ft.model_labels(tmp_path / "not.bin")


def test_auroc_counts_ties_as_half_and_needs_both_classes():
    assert auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([False, False, True, True])) == 0.75
    assert auroc(np.array([0.5, 0.5]), np.array([True, False])) == 0.5
    assert auroc(np.array([0.5]), np.array([True])) is None


def scored(model, values, **params):
    stage = QualityClassifier(model=str(model), **params)
    stage.setup(None)
    return stage.score(pa.table({"text": pa.array(values, pa.string())})).to_pydict()


def test_the_score_is_p_label_of_the_text_on_one_line_and_blank_rows_are_errors(model):
    doc, legal = "the function returns a list\nof values from the module", "the licensee shall not distribute"
    out = scored(model, [doc, legal, None, "  \n "])
    expect = fasttext.load_model(str(model)).predict(doc.replace("\n", " "), k=-1)
    assert out["score"][0] == pytest.approx(min(1.0, float(dict(zip(*expect))["__label__hq"])), abs=1e-6)
    assert out["score"][0] > 0.5 > out["score"][1]
    assert out["score"][2:] == [None, None]
    assert out["error"] == [None, None, "null_text: text is null", "empty_text: text is blank"]
    low = scored(model, [doc, legal], label="__label__lq")["score"]
    assert low == pytest.approx([1 - out["score"][0], 1 - out["score"][1]], abs=1e-4)


def test_a_label_not_in_the_model_is_refused_with_its_labels(model, tmp_path):
    with pytest.raises(ConfigError, match="label 'good' is not in the model .*; its labels: hq, lq"):
        QualityClassifier(model=str(model), label="good").depends_on()
    with pytest.raises(ConfigError, match="no model file"):
        QualityClassifier(model=str(tmp_path / "absent.bin")).depends_on()


def test_the_key_follows_the_model_content_not_its_path(model, tmp_path):
    base = QualityClassifier(model=str(model)).identity()
    (tmp_path / "moved").mkdir()
    shutil.copy(model, tmp_path / "moved" / model.name)
    shutil.copy(sidecar_path(model), sidecar_path(tmp_path / "moved" / model.name))
    assert QualityClassifier(model=str(tmp_path / "moved" / model.name)).identity() == base
    assert base["training"]["holdout_metrics"]["auroc"] > 0.95
    pos, neg = model.parent / "docs.jsonl", model.parent / "pool.jsonl"
    train([str(pos)], [str(neg)], tmp_path / "other.bin", params=TrainParams(seed=5, **SMALL))
    other = QualityClassifier(model=str(tmp_path / "other.bin")).identity()
    assert other["model_sha256"] != base["model_sha256"] and other != base


def corpus() -> pa.Table:
    values = texts(DOCS, 40, 11) + texts(LEGAL, 40, 12) + [None, ""]
    order = np.random.default_rng(0).permutation(len(values))
    return pa.table({"id": [f"doc-{i:03d}" for i in range(len(values))],
                     "text": pa.array([values[i] for i in order], pa.string())})


def manifest(run_dir) -> pa.Table:
    m = curate.load_manifest(run_dir).drop_columns(["shard"])
    return m.take(pa.compute.sort_indices(m, [("id", "ascending")]))


@pytest.mark.slow
def test_local_and_ray_agree_and_a_second_run_reuses_every_unit(model, tmp_path, shared_ray):
    data = write_shards(tmp_path / "data", corpus(), 3)
    summaries = {}
    for executor in ("local", "ray", "local"):
        pipeline = curate.Pipeline([QualityClassifier(model=str(model))],
                                   [Threshold(column="quality_classifier.score", min=0.5)], id_column="id")
        summaries[executor] = curate.run(pipeline, data, tmp_path / executor, executor=executor)
    assert manifest(tmp_path / "local").equals(manifest(tmp_path / "ray"))
    stage = summaries["local"]["stages"]["quality_classifier"]
    assert stage["units_reused"] == 3 and stage["units_computed"] == 0 and stage["errored"] == 2
    m = manifest(tmp_path / "local").to_pydict()
    assert summaries["local"]["result"]["kept"] == 40
    dropped = [r for r in m["drop_reason"] if r]
    assert len(dropped) == 40 and all(r.startswith("quality_classifier.score 0.") and r.endswith(" below min 0.5")
                                      for r in dropped)


def test_keep_fraction_cuts_and_the_report_shows_the_histogram_cut_and_rows_near_it(model, tmp_path):
    data = write_shards(tmp_path / "data", corpus(), 2)
    pipeline = curate.Pipeline([QualityClassifier(model=str(model))],
                               [KeepFraction(column="quality_classifier.score", fraction=0.25)], id_column="id")
    summary = curate.run(pipeline, data, tmp_path / "run", executor="local")
    assert summary["result"]["kept"] == 20
    html = write_report(tmp_path / "run").read_text()
    assert 'id="quality-classifier"' in html and "just above the cut" in html and "just below the cut" in html
    assert "held-out AUROC" in html
    said = "\n".join(lines(tmp_path / "run"))
    assert "quality_classifier: P(hq), cut" in said and "held-out AUROC" in said


def test_cli_trains_from_jsonl_csv_and_text_files_and_a_run_uses_the_model(tmp_path, capsys):
    pos = jsonl(tmp_path / "docs.jsonl", texts(DOCS, 60, 21))
    (tmp_path / "pool.csv").write_text("body\n" + "".join(f'"{t}"\n' for t in texts(LEGAL, 40, 22)))
    (tmp_path / "txt").mkdir()
    for i, t in enumerate(texts(LEGAL, 20, 23)):
        (tmp_path / "txt" / f"{i}.txt").write_text(t)
    args = ["train-classifier", "--positive", str(pos), "--negative", str(tmp_path / "pool.csv"), str(tmp_path / "txt"),
            "--out", str(tmp_path / "m.bin"), "--dim", "16", "--bucket", "20000", "--epoch", "10", "--seed", "3"]
    assert main(args + ["--text-column", "body"]) == 1  # the JSONL has no `body`
    assert "has no column 'body'" in capsys.readouterr().err
    pos.write_text("".join(json.dumps({"body": t}) + "\n" for t in texts(DOCS, 60, 21)))
    assert main(args + ["--text-column", "body"]) == 0
    said = capsys.readouterr().out
    assert "trained on 54 positive and 54 negative texts (60 of 60 negatives sampled" in said and "AUROC" in said
    record = json.loads((tmp_path / "m.bin.json").read_text())
    assert [f["texts"] for f in record["negative"]] == [40, 20]
    config = tmp_path / "qc.yaml"
    config.write_text(f"name: qc\nid_column: id\nstages:\n  - type: quality_classifier\n    model: {tmp_path / 'm.bin'}\n"
                      "policies:\n  - type: threshold\n    column: quality_classifier.score\n    min: 0.5\n")
    data = write_shards(tmp_path / "data", corpus(), 2)
    assert main(["run", str(config), "--data", str(data), "--out", str(tmp_path / "run"), "--executor", "local"]) == 0
    assert "quality_classifier: P(hq)" in capsys.readouterr().out


def test_a_folder_is_read_as_a_dataset_unless_it_holds_only_text_files(tmp_path):
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "part-0.jsonl").write_text('{"text": "one"}\n{"text": null}\n{"text": "two"}\n')
    (tmp_path / "shards" / "README.txt").write_text("not a document")
    assert read_texts(tmp_path / "shards", "text") == (["one", "two"], 1)
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "a.txt").write_text("first\ndocument")
    (tmp_path / "plain" / "b.txt").write_text("  ")
    assert read_texts(tmp_path / "plain", "text") == (["first\ndocument"], 1)
