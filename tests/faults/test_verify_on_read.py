"""Verify on read: a bit flipped in any file of a run directory is found by the next plain run that reads it,
which recomputes that unit (and what was built from it) with a warning naming the file, and publishes the
manifest of an undamaged run. Readers of a finished run refuse a damaged manifest part or summary.json."""
from __future__ import annotations

import json
import logging
import os
import random
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import curate
from curate.cli import main
from curate.methods.dedup import Dedup, ExactDedup
from curate.methods.wfpp import WFPP
from testkit.faults import dataset, sorted_manifest
from testkit.helpers import slow_length

SEEDS = 20
FIT_KINDS = ("fitmap", "shuffle", "reduce")


def pipeline() -> curate.Pipeline:
    """A fit with a map (WFPP), a chain of shuffles (exact dedup), a plain filter; three policies."""
    return curate.Pipeline([WFPP(text_column="caption", min_count=1), slow_length,
                            ExactDedup(hash_column="caption", normalize="whitespace_case", partitions=3)],
                           [curate.KeepFraction("wfpp.score", 0.5), curate.Threshold("slow_length.len", min=10),
                            Dedup("exact_dedup.component")], id_column="id")


def run(data: Path, out: Path) -> dict:
    return curate.run(pipeline(), data, out, executor="local")


@pytest.fixture(scope="module")
def undamaged(tmp_path_factory):
    """One finished run (copied for each damage) and its manifest sorted by id."""
    os.environ["CURATE_TEST_SLEEP"] = "0"
    tmp = tmp_path_factory.mktemp("verify_on_read")
    data = dataset(tmp / "data", rows=160, shards=4)
    run(data, tmp / "run")
    return data, tmp / "run", sorted_manifest(tmp / "run")


def _files(out: Path, kind: str) -> list[Path]:
    patterns = {"ids": "ids/*.parquet", "scores": "scores/*/*.parquet", "fitmap": "fitmap/*/*.parquet",
                "shuffle": "shuffle/*/*.parquet", "reduce": "reduce/*/*.parquet",
                "artifact": "artifacts/*/*/artifact.parquet", "manifest part": "manifest/*/part-*.parquet",
                "summary.json": "summary.json"}
    return sorted(out.glob(patterns[kind]))


def _stopped_after(out: Path, victim: Path) -> None:
    """Forget what the run wrote after the victim's unit, in the victim's stage: as if it were killed right
    after committing it, so that the next run reads the victim (a finished run never reads a fit's maps)."""
    stage = victim.relative_to(out).parts[1].split(".", 1)[0]
    committed = victim.with_suffix(".json").stat().st_mtime_ns
    for folder in ("fitmap", "shuffle", "reduce", "artifacts", "scores"):
        for sidecar in (out / folder).rglob("*.json"):
            if sidecar.relative_to(out / folder).parts[0].split(".", 1)[0] == stage and \
                    sidecar.stat().st_mtime_ns > committed:
                sidecar.unlink()


def _flip(path: Path, rng: random.Random) -> None:
    raw = bytearray(path.read_bytes())
    raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
    path.write_bytes(bytes(raw))


def _same_json(path: Path, before: bytes) -> bool:
    """A flip that leaves a JSON file meaning the same (`1e-05` -> `1E-05`): nothing to warn about."""
    try:
        return json.loads(path.read_bytes()) == json.loads(before)
    except ValueError:
        return False


@pytest.mark.parametrize("kind", ["ids", "scores", "fitmap", "shuffle", "reduce", "artifact", "manifest part",
                                  "summary.json"])
def test_a_flipped_bit_in_any_file_is_recomputed_by_a_plain_rerun_with_a_warning(undamaged, tmp_path, kind, caplog):
    data, source, ref = undamaged
    for seed in range(SEEDS):
        rng = random.Random(f"{kind}-{seed}")
        out = tmp_path / f"run-{seed}"
        shutil.copytree(source, out)
        victim = rng.choice(_files(out, kind))
        if kind in FIT_KINDS:
            _stopped_after(out, victim)
        before = victim.read_bytes()
        _flip(victim, rng)
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            run(data, out)
        where = f"seed {seed}: {victim.relative_to(out)}"
        assert sorted_manifest(out).equals(ref), where
        assert str(victim) in caplog.text or (kind == "summary.json" and _same_json(victim, before)), where
        assert main(["verify", str(out)]) == 0, where  # nothing damaged is left behind
        shutil.rmtree(out)


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_a_damaged_upstream_file_read_inside_a_worker_is_recomputed_and_the_reader_retried(undamaged, tmp_path,
                                                                                          caplog, executor, request):
    """exact_dedup's scoring reads its last shuffle's reduce outputs: one is damaged while the scores are gone
    (on Ray the damage travels back from the worker inside the unit's Failure; the suite's warm shared Ray)."""
    if executor == "ray":
        request.getfixturevalue("shared_ray")
    data, source, ref = undamaged
    out = tmp_path / "run"
    shutil.copytree(source, out)
    for sidecar in (out / "scores" / "exact_dedup").glob("*.json"):
        sidecar.unlink()
    last = max((out / "reduce").rglob("*.json"), key=lambda p: p.stat().st_mtime_ns).with_suffix(".parquet")
    raw = bytearray(last.read_bytes())
    raw[len(raw) // 3] ^= 0x10
    last.write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING):
        curate.run(pipeline(), data, out, executor=executor, **({"workers": 2} if executor == "ray" else {}))
    assert f"recomputing {last}" in caplog.text and "refitting" in caplog.text
    assert sorted_manifest(out).equals(ref)


def test_a_file_damaged_again_after_each_recompute_stops_the_run_naming_the_storage(undamaged, tmp_path, monkeypatch):
    from curate import layout

    data, source, _ = undamaged
    out = tmp_path / "run"
    shutil.copytree(source, out)
    victim = sorted((out / "scores" / "slow_length").glob("*.parquet"))[1]
    real = layout.read_buffer

    def rotten(path):  # this storage flips a bit of the file on every read
        data = real(path)
        if path != victim:
            return data
        raw = bytearray(data.to_pybytes())
        raw[10] ^= 1
        return pa.py_buffer(bytes(raw))

    monkeypatch.setattr(layout, "read_buffer", rotten)
    with pytest.raises(curate.CurateError, match=rf"{victim.name}.*does not keep what is written"):
        run(data, out)


# --- readers of a finished run -------------------------------------------------------------------------------
def _damaged_part(source: Path, tmp_path: Path) -> tuple[Path, Path]:
    out = tmp_path / "run"
    shutil.copytree(source, out)
    part = sorted((out / "manifest").rglob("part-*.parquet"))[2]
    raw = bytearray(part.read_bytes())
    raw[len(raw) // 2] ^= 0x04
    part.write_bytes(bytes(raw))
    return out, part


def test_load_manifest_refuses_a_flipped_manifest_part_by_name(undamaged, tmp_path):
    _, source, _ = undamaged
    out, part = _damaged_part(source, tmp_path)
    with pytest.raises(curate.CurateError, match=rf"{part.name}.*hash mismatch.*plain `curate run`"):
        curate.load_manifest(out)


def test_export_refuses_a_flipped_manifest_part_by_name(undamaged, tmp_path, capsys):
    _, source, _ = undamaged
    out, part = _damaged_part(source, tmp_path)
    assert main(["export", str(out), "--kept-ids", str(tmp_path / "kept.txt")]) == 1
    err = capsys.readouterr().err
    assert part.name in err and "curate run" in err and "Traceback" not in err
    assert not (tmp_path / "kept.txt").exists()


def test_summary_refuses_an_edited_summary_json(undamaged, tmp_path, capsys):
    _, source, _ = undamaged
    out = tmp_path / "run"
    shutil.copytree(source, out)
    summary = json.loads((out / "summary.json").read_text())
    summary["result"]["kept"] += 1
    (out / "summary.json").write_text(json.dumps(summary))
    assert main(["summary", str(out)]) == 1
    err = capsys.readouterr().err
    assert "summary.json was modified after it was published" in err and "curate run" in err
    with pytest.raises(curate.CurateError, match="summary.json"):
        curate.load_manifest(out)


# --- Parquet page checksums -------------------------------------------------------------------------------------
def test_the_engine_writes_parquet_with_page_checksums(undamaged, tmp_path):
    """A page whose bytes changed fails to decode even without the sidecar (exports carry their own check)."""
    _, source, _ = undamaged
    part = sorted((source / "manifest").rglob("part-*.parquet"))[0]
    meta = pq.read_metadata(part)
    chunk = meta.row_group(0).column(meta.schema.to_arrow_schema().get_field_index("id"))
    raw = bytearray(part.read_bytes())
    raw[chunk.data_page_offset + chunk.total_compressed_size - 3] ^= 0x01  # inside the id column's data page
    (tmp_path / "p.parquet").write_bytes(bytes(raw))
    with pytest.raises(OSError, match="CRC"):
        pq.read_table(tmp_path / "p.parquet", page_checksum_verification=True)


def test_a_flipped_page_of_a_materialised_dataset_is_refused_when_read_as_input(undamaged, tmp_path):
    """Exports carry their own protection: a run over a curated dataset checks its pages' checksums."""
    _, source, _ = undamaged
    curate.export(source, materialize=tmp_path / "curated")
    shard = sorted((tmp_path / "curated").glob("*.parquet"))[1]
    meta = pq.read_metadata(shard)
    chunk = meta.row_group(0).column(meta.schema.to_arrow_schema().get_field_index("caption"))
    raw = bytearray(shard.read_bytes())
    start = min(chunk.data_page_offset, chunk.dictionary_page_offset or chunk.data_page_offset)
    raw[start + chunk.total_compressed_size - 2] ^= 0x20  # inside the caption column's last data page
    shard.write_bytes(bytes(raw))
    with pytest.raises(curate.RunFailed, match=rf"(?s){shard.name}: stage slow_length: .*CRC checksum verification failed"):
        curate.run(curate.Pipeline([slow_length], id_column="id"), tmp_path / "curated", tmp_path / "again",
                   executor="local")


def test_an_edited_fingerprint_cache_is_not_trusted(undamaged, tmp_path):
    """A wrong cached fingerprint would change every key (and `<fingerprint>:<row>` ids): it is re-hashed."""
    data, source, ref = undamaged
    out = tmp_path / "run"
    shutil.copytree(source, out)
    cache = out / "state" / "fingerprints.json"
    entries = json.loads(cache.read_text())
    stamp = next(k for k in entries if k != "seal")
    entries[stamp] = ("0" if entries[stamp][0] != "0" else "1") + entries[stamp][1:]
    cache.write_text(json.dumps(entries))
    summary = run(data, out)
    assert summary["phases"]["ids"]["computed"] == 0 and summary["stages"]["wfpp"]["units_computed"] == 0
    assert summary["inputs"] == curate.load_summary(source)["inputs"]
    assert sorted_manifest(out).equals(ref)
