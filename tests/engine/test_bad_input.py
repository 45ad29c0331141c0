"""Bad input is refused before any compute with a message naming the shard, row and column."""
from __future__ import annotations

import re
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import curate
from curate.cli import main
from curate.config import pipeline_from_dict
from curate.stage import Stage
from testkit.helpers import caption_length, caption_table, write_shards


def run_expecting(tmp_path, error, match, data=None, pipeline=None):
    pipeline = pipeline or curate.Pipeline([caption_length], id_column="id")
    with pytest.raises(error, match=match):
        curate.run(pipeline, data, tmp_path / "run", executor="local")
    assert not (tmp_path / "run" / "scores").exists(), "nothing may be scored before validation passes"
    assert not (tmp_path / "run" / "manifest").exists()


def test_missing_column_names_shard_column_and_stage(tmp_path):
    data = write_shards(tmp_path / "data", caption_table(30), 3)
    pq.write_table(caption_table(5).drop_columns(["caption"]), data / "part-00001.parquet")
    run_expecting(tmp_path, curate.DataError,
                  r"shard part-00001\.parquet: missing column 'caption' needed by stage 'caption_length'", data)


def test_wrong_column_type_names_shard_and_types(tmp_path):
    data = write_shards(tmp_path / "data", caption_table(30), 3)
    pq.write_table(pa.table({"id": ["x", "y"], "caption": [1, 2]}), data / "part-00002.parquet")
    run_expecting(tmp_path, curate.DataError, r"shard part-00002\.parquet: column 'caption' is int64; needs string", data)


@pytest.mark.parametrize("damage", ["random", "truncated", "empty_file"])
def test_corrupt_or_truncated_parquet_names_the_shard(tmp_path, damage):
    data = write_shards(tmp_path / "data", caption_table(60), 3)
    victim = data / "part-00001.parquet"
    blob = victim.read_bytes()
    victim.write_bytes({"random": b"\x13\x37" * 500, "truncated": blob[: len(blob) // 2], "empty_file": b""}[damage])
    run_expecting(tmp_path, curate.DataError, r"shard part-00001\.parquet: not a readable Parquet file", data)


def test_null_ids_name_shard_and_rows(tmp_path):
    t = caption_table(20)
    ids = t.column("id").to_pylist()
    ids[4] = ids[7] = None
    data = write_shards(tmp_path / "data", t.set_column(0, "id", pa.array(ids)), 2)
    run_expecting(tmp_path, curate.DataError, r"shard part-00000\.parquet: 2 null id\(s\) in column 'id' at rows \[4, 7\]", data)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_ids_that_are_not_utf8_name_shard_and_rows(tmp_path, fmt, capsys):
    """Issue 27, fault 2: such ids were accepted, and `curate export --kept-ids` then failed with a traceback."""
    t = caption_table(20)
    raw = [i.encode() for i in t.column("id").to_pylist()]
    raw[3], raw[6] = b"row-\xff", b"row-\xc3"
    t = t.set_column(0, "id", pa.array(raw, pa.binary()).view(pa.string()))
    if fmt == "parquet":
        write_shards(tmp_path / "data", t, 2)
    else:
        (tmp_path / "data").mkdir()
        lines = [b"id,caption"] + [i + b"," + c.encode() for i, c in zip(raw, t.column("caption").to_pylist())]
        (tmp_path / "data" / "part-00000.csv").write_bytes(b"\n".join(lines) + b"\n")
    message = rf"shard part-00000\.{fmt}: 2 id\(s\) in column 'id' are not UTF-8, at rows \[3, 6\]"
    run_expecting(tmp_path, curate.DataError, message, data=tmp_path / "data")
    config = tmp_path / "c.yaml"
    config.write_text("stages:\n  - type: testkit.helpers:caption_length\nid_column: id\n")
    assert main(["run", str(config), "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"),
                 "--executor", "local"]) == 1
    err = capsys.readouterr().err
    assert re.search(message, err) and "Traceback" not in err


def test_duplicate_ids_within_and_across_shards(tmp_path):
    t = caption_table(20)
    ids = t.column("id").to_pylist()
    ids[1] = ids[0]
    data = write_shards(tmp_path / "data", t.set_column(0, "id", pa.array(ids)), 2)
    run_expecting(tmp_path, curate.DataError, r"part-00000\.parquet: 1 id\(s\) repeated within the shard", data)

    ids = t.column("id").to_pylist()
    ids[15] = ids[2]
    data = write_shards(tmp_path / "data2", t.set_column(0, "id", pa.array(ids)), 2)
    run_expecting(tmp_path, curate.DataError,
                  r"id 'row-000002' appears in shard part-00000\.parquet \(row 2\) and shard part-00001\.parquet \(row 5\)",
                  data)


class SlowFit(Stage):
    """Counts the captions in a fit whose map takes 0.1 s per shard (the ids of a tiny shard take ~2 ms)."""

    type = "slow_fit"
    inputs = ("caption",)
    outputs = {"n": pa.int64()}

    def fit(self, ctx):
        return pa.table({"n": [sum(t.num_rows for t in ctx.map(self._count, ["caption"]))]})

    def _count(self, t):
        time.sleep(0.1)
        return pa.table({"n": [t.num_rows]})

    def setup(self, artifact):
        self.n = artifact.column("n")[0].as_py()

    def score(self, batch):
        return {"n": pa.array([self.n] * batch.num_rows, pa.int64())}


def test_bad_ids_stop_a_fit_that_runs_beside_their_check(tmp_path):
    """Locally, ids are checked on a second thread while the first stage fits: the same error still stops
    the run before any scoring, and the fit stops at the next unit instead of running to its end."""
    t = caption_table(400)
    ids = t.column("id").to_pylist()
    ids[390] = ids[3]
    data = write_shards(tmp_path / "data", t.set_column(0, "id", pa.array(ids)), 40)
    run_expecting(tmp_path, curate.DataError, r"id 'row-000003' appears in shard part-00000\.parquet", data,
                  curate.Pipeline([SlowFit()], id_column="id"))
    fitted = list((tmp_path / "run").rglob("fitmap/**/*.parquet"))
    assert len(fitted) < 20, f"the fit went on over {len(fitted)} of 40 shards although the ids had failed"


def test_a_failed_id_check_fails_every_later_phase(tmp_path):
    """A retried phase (the Prefect flow retries fit and score) must not run past ids that failed."""
    from curate.engine.executor import as_executor
    from curate.engine.run import Run

    t = caption_table(20)
    ids = t.column("id").to_pylist()
    ids[15] = ids[2]
    data = write_shards(tmp_path / "data", t.set_column(0, "id", pa.array(ids)), 2)
    with Run(curate.Pipeline([caption_length], id_column="id"), data, tmp_path / "run", as_executor("local")) as r:
        r.plan()
        for call in (lambda: r.score("caption_length"), lambda: r.score("caption_length"), r.decide):
            with pytest.raises(curate.DataError, match="id 'row-000002' appears in shard"):
                call()
    assert not (tmp_path / "run" / "manifest").exists()


def test_missing_id_column_and_empty_dataset(tmp_path):
    data = write_shards(tmp_path / "data", caption_table(10).drop_columns(["id"]), 1)
    run_expecting(tmp_path, curate.DataError, r"missing id column 'id'", data)
    (tmp_path / "empty").mkdir()
    run_expecting(tmp_path, curate.DataError, r"no shards \(\*\.parquet, \*\.jsonl", tmp_path / "empty")
    run_expecting(tmp_path, curate.DataError, r"does not exist", tmp_path / "nowhere")


def test_without_id_column_ids_are_shard_content_and_row(tmp_path):
    data = write_shards(tmp_path / "data", caption_table(10).drop_columns(["id"]), 2)
    curate.run(curate.Pipeline([caption_length]), data, tmp_path / "run", executor="local")
    ids = curate.load_manifest(tmp_path / "run").column("id").to_pylist()
    assert len(set(ids)) == 10 and ids[0].endswith(":0") and ids[5].endswith(":0") and ids[0] != ids[5]


CONFIG = {"stages": [{"type": "testkit.helpers:caption_length"}],
          "policies": [{"type": "keep_fraction", "column": "caption_length.len", "fraction": 0.5}]}


@pytest.mark.parametrize("change, match", [
    ({"stages": [{"type": "wfppp"}]}, r"stages\[0\]: unknown stage type 'wfppp' \(did you mean 'wfpp'\?\); known types: .*wfpp"),
    ({"stages": [{"type": "wfpp", "tt": 1}]}, r"stages\[0\] \(wfpp\): unknown parameter 'tt' \(did you mean 't'\?\)"),
    ({"stages": [{"type": "wfpp", "t": 5}]}, r"stages\[0\] \(wfpp\): .*'?t'? (must be|is 5; expected float in \(0, 1\))"),
    ({"policies": [{"type": "keep_fraction", "column": "caption_length.len", "fraction": 0.5, "seeds": 1}]},
     r"policies\[0\] \(keep_fraction\): unknown parameter 'seeds' \(did you mean 'seed'\?\)"),
    ({"policies": [{"type": "keep_ratio", "column": "caption_length.len"}]}, r"unknown policy type 'keep_ratio'"),
    ({"policies": [{"type": "keep_fraction", "column": "caption_length.score", "fraction": 0.5}]},
     r"reads 'caption_length.score', which no stage writes"),
    ({"stagse": []}, r"unknown key 'stagse'"),
    ({"stages": [{"type": "no_such_module:fn"}]}, r"cannot import 'fn' from 'no_such_module'"),
])
def test_config_errors_name_the_key_and_the_allowed_values(change, match):
    with pytest.raises(curate.ConfigError, match=match):
        pipeline_from_dict({**CONFIG, **change}, "demo.yaml")


def test_cli_prints_one_clear_message_without_traceback(tmp_path, capsys):
    data = write_shards(tmp_path / "data", caption_table(10), 1)
    pq.write_table(caption_table(5).drop_columns(["caption"]), data / "part-00001.parquet")
    config = tmp_path / "c.yaml"
    config.write_text("stages:\n  - type: testkit.helpers:caption_length\nid_column: id\n")
    assert main(["run", str(config), "--data", str(data), "--out", str(tmp_path / "run"), "--executor", "local"]) == 1
    err = capsys.readouterr().err
    assert "error: the dataset cannot be processed" in err and "part-00001.parquet" in err
    assert "Traceback" not in err
    assert main(["run", str(tmp_path / "missing.yaml")]) == 1
    assert "config" in capsys.readouterr().err


def test_a_nul_byte_in_a_path_is_refused_by_its_key_without_traceback(tmp_path, capsys):
    data = write_shards(tmp_path / "data", caption_table(10), 1)
    config = tmp_path / "c.yaml"
    config.write_text(f'data: "{data}\\0x"\nstages:\n  - type: testkit.helpers:caption_length\nid_column: id\n')
    assert main(["run", str(config), "--out", str(tmp_path / "run"), "--executor", "local"]) == 1
    err = capsys.readouterr().err
    assert "c.yaml: data: " in err and "NUL byte" in err and "Traceback" not in err
    # (a command line cannot carry a NUL byte; `--set` and library callers can)
    assert main(["run", str(config), "--set", 'data="/tmp/x\\0y"', "--executor", "local"]) == 1
    assert "data: " in capsys.readouterr().err
    p = curate.Pipeline([caption_length], id_column="id")
    with pytest.raises(curate.ConfigError, match=r"`data` \(--data PATH, or `data:` in the config\) is not a usable "
                                                  r"path: it contains a NUL byte"):
        curate.run(p, f"{data}\0", tmp_path / "run", executor="local")
    with pytest.raises(curate.ConfigError, match=r"`out` \(--out DIR\) is not a usable path: it contains a NUL byte"):
        curate.run(p, data, f"{tmp_path}/run\0", executor="local")
    assert not (tmp_path / "run").exists()


def test_naming_a_decorated_function_in_a_config_does_not_rename_it_elsewhere():
    a, _ = pipeline_from_dict({"stages": [{"type": "testkit.helpers:caption_length", "name": "first"}]})
    b, _ = pipeline_from_dict({"stages": [{"type": "testkit.helpers:caption_length", "name": "second"}]})
    assert [a.stages[0].name, b.stages[0].name, caption_length.name] == ["first", "second", "caption_length"]


def test_text_that_is_not_utf8_is_a_per_row_error_naming_the_column(tmp_path):
    from curate.methods.wfpp import WFPP

    raw = pa.array([b"a red car", b"bad \xff\xfe text", b"a blue boat"] * 10, pa.binary())
    text = pa.StringArray.from_buffers(len(raw), raw.buffers()[1], raw.buffers()[2], raw.buffers()[0])
    (tmp_path / "data").mkdir()
    pq.write_table(pa.table({"id": [f"r{i}" for i in range(30)], "caption": text}), tmp_path / "data" / "p.parquet")
    p = curate.Pipeline([WFPP(text_column="caption", min_count=1), caption_length], id_column="id")
    summary = curate.run(p, tmp_path / "data", tmp_path / "run", executor="local")
    m = curate.load_manifest(tmp_path / "run").to_pylist()
    assert summary["result"]["errored"] == 10 and summary["stages"]["wfpp"]["errors"] == {"invalid_utf8": 10}
    assert m[1]["error"] == "wfpp: invalid_utf8: column 'caption' holds bytes that are not UTF-8"
    assert m[0]["error"] is None and m[0]["wfpp.score"] is not None


def test_a_symlink_loop_is_refused_by_name_and_a_linked_shard_is_listed_once(tmp_path):
    from curate.dataset import Dataset

    data = write_shards(tmp_path / "data", caption_table(20), 2)
    (data / "again.parquet").symlink_to(data / "part-00000.parquet")  # the same file under a second name
    shards = [s.rel for s in Dataset(data).shards]
    assert shards == ["again.parquet", "part-00001.parquet"] or shards == ["part-00000.parquet", "part-00001.parquet"]
    (data / "loop").symlink_to(data)
    with pytest.raises(curate.DataError, match=r"symlink loop at loop \(the same folder as \.\)"):
        Dataset(data)


def test_a_run_directory_inside_the_data_folder_is_refused_naming_both(tmp_path, capsys):
    """Issue 27, fault 6: the second run read the first one's files as shards. Refused at the first run (a run
    directory in a folder starting with `_`, which listings skip, is not in the dataset and is allowed)."""
    data = write_shards(tmp_path / "data", caption_table(20), 2)
    p = curate.Pipeline([caption_length], id_column="id")
    with pytest.raises(curate.ConfigError, match=rf"the run directory {data / 'run'} lies inside the data folder {data}"):
        curate.run(p, data, data / "run", executor="local")
    assert not (data / "run").exists()
    config = tmp_path / "c.yaml"
    config.write_text("stages:\n  - type: testkit.helpers:caption_length\nid_column: id\n")
    assert main(["run", str(config), "--data", str(data), "--out", str(data / "sub" / "run"), "--executor", "local"]) == 1
    err = capsys.readouterr().err
    assert f"lies inside the data folder {data}" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(curate.ConfigError, match="inside the data folder"):
        curate.run(p, data, data, executor="local")  # the data folder itself
    for _ in range(2):
        summary = curate.run(p, data, data / "_runs" / "a", executor="local")
        assert summary["inputs"]["shards"] == 2 and summary["result"]["in"] == 20
