"""The run directory's commit protocol under faults: each case ends in a manifest identical (sorted by id)
to an uninterrupted run's, or in a clear refusal. Runs are killed with SIGKILL in child processes."""
from __future__ import annotations

import errno
import json
import logging
import os
import random
import threading
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import curate
from curate import storage
from curate.cli import main
from curate.engine.lease import SETTLE_LOCAL_S, Lease
from curate.errors import LeaseLost, RunLocked
from testkit import faults
from testkit.faults import dataset, kill_when, pipeline, reference, sidecars, sorted_manifest, start


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.setenv("CURATE_TEST_SLEEP", "0")
    monkeypatch.setenv("CURATE_TEST_DECIDE_SLEEP", "0")
    return dataset(tmp_path / "data")


@pytest.fixture
def ref(tmp_path, data):
    return reference(tmp_path, data)


def _holder(out) -> dict:
    try:
        return json.loads((out / "lease.json").read_text())
    except (OSError, ValueError):
        return {}


def finish(data, out, fraction=0.5):
    return curate.run(pipeline(fraction), data, out, executor="local")


# --- 1. one writer at a time ---------------------------------------------------------------------
def test_a_second_writer_is_refused_while_the_first_lives_and_takes_over_after_a_kill(tmp_path, data, ref):
    out = tmp_path / "run"
    first = start(data, out, sleep=0.3)
    try:
        kill_when(first, lambda: len(sidecars(out, "scores")) >= 1 and (out / "lease.json").exists(), timeout=60)
    except TimeoutError:
        pytest.fail("the first run never started scoring")
    # it was killed: start another one and, while it lives, try a third
    second = start(data, out, sleep=0.3)
    try:
        deadline = time.time() + 60
        while _holder(out).get("pid") != second.pid:
            assert second.poll() is None and time.time() < deadline, "the second run never took the lease"
            time.sleep(0.02)
        with pytest.raises(RunLocked, match=rf"pid {second.pid} on host"):
            finish(data, out, fraction=0.9)
    finally:
        second.kill()
        second.wait()
    summary = finish(data, out)  # the lease of the killed second run is stale: taken over
    assert summary["phases"]["lease_takeover"]["pid"] == second.pid
    assert sorted_manifest(out).equals(ref)
    assert not (out / "lease.json").exists()


def test_a_lease_removed_under_its_writer_is_reported_as_removed_in_plain_words(tmp_path):
    beating, idle = Lease(tmp_path / "a", ttl=0.3).acquire(), Lease(tmp_path / "b").acquire()
    try:
        for lease in (beating, idle):
            lease.path.unlink()
        time.sleep(0.5)  # the heartbeat (every ttl / 3) notices; the idle one is found out by check()
        assert beating.lost is not None and idle.lost is None
        for lease in (beating, idle):
            with pytest.raises(LeaseLost) as e:
                lease.check()
            assert f"{lease.path.parent}: this run's lease file lease.json was removed while this run held it" in str(
                e.value)
            assert "taken over by" not in str(e.value) and "None" not in str(e.value)
    finally:
        beating.release()
        idle.release()


def test_a_writer_that_loses_its_lease_while_deciding_removes_its_unpublished_generation(tmp_path, data,
                                                                                        monkeypatch):
    out = tmp_path / "run"
    finish(data, out, fraction=0.9)
    before = sorted_manifest(out)
    monkeypatch.setenv("CURATE_TEST_DECIDE_SLEEP", "0.1")
    new_gen = out / "manifest" / "g000002"

    def take_the_lease_over_once_parts_are_written() -> None:
        deadline = time.time() + 60
        while len(list(new_gen.glob("part-*.parquet"))) < 2 and time.time() < deadline:
            time.sleep(0.01)
        holder = _holder(out)  # what a writer that found this one's heartbeat stale writes
        (out / "lease.json").write_text(json.dumps({**holder, "owner": "the-other-writer", "pid": 4242}))

    taker = threading.Thread(target=take_the_lease_over_once_parts_are_written)
    taker.start()
    with pytest.raises(LeaseLost, match=r"this run's lease was taken over by another run: pid 4242 on host"):
        finish(data, out, fraction=0.5)
    taker.join()
    assert not new_gen.exists(), "the unpublished generation is removed at once, not at the next publish"
    assert [p.name for p in (out / "manifest").iterdir()] == ["g000001"]
    assert curate.load_summary(out)["policies"]["wfpp"]["fraction"] == 0.9
    assert sorted_manifest(out).equals(before)


def test_a_generation_claimed_by_another_writer_at_the_same_moment_is_never_written_into(tmp_path, data, ref,
                                                                                          monkeypatch):
    """Two writers that pick the same generation number at once (one of them a writer whose lease was taken
    over) get different folders: the later claim moves on to the next number."""
    from curate.engine import decide

    out = tmp_path / "run"
    real = decide.create_new

    def another_writer_claims_it_first(path, data):
        if path.parent.name == "g000001":
            real(path, json.dumps({"owner": "another-writer"}).encode())
        return real(path, data)

    monkeypatch.setattr(decide, "create_new", another_writer_claims_it_first)
    seen = []
    monkeypatch.setattr(decide, "_write_part", lambda run, shard, gen, table, write=decide._write_part: (
        seen.append(gen), write(run, shard, gen, table))[1])
    summary = finish(data, out)
    assert set(seen) == {2} and summary["manifest"]["generation"] == 2
    assert sorted_manifest(out).equals(ref)


def test_readers_need_no_lease(tmp_path, data, ref):
    out = tmp_path / "run"
    finish(data, out)
    with Lease(out):  # a writer holds it: readers still read the published generation
        assert sorted_manifest(out).equals(ref)
        assert curate.load_summary(out)["result"]["in"] == faults.ROWS


# --- 2. a killed decide (policy-only re-run) leaves the last published generation -----------------
def test_a_killed_policy_change_leaves_the_published_generation_and_a_rerun_finishes_it(tmp_path, data):
    out = tmp_path / "run"
    finish(data, out, fraction=0.9)
    before = sorted_manifest(out)
    proc = start(data, out, fraction=0.5, sleep=0, decide_sleep=0.3)
    new_gen = out / "manifest" / "g000002"
    assert kill_when(proc, lambda: new_gen.exists() and len(list(new_gen.glob("part-*.parquet"))) >= 2)
    summary = curate.load_summary(out)  # still the 0.9 run, whole
    assert summary["policies"]["wfpp"]["fraction"] == 0.9
    assert sorted_manifest(out).equals(before)
    assert sum(curate.load_manifest(out).column("keep").to_pylist()) == summary["result"]["kept"]
    finish(data, out, fraction=0.5)
    assert sorted_manifest(out).equals(reference(tmp_path, data, 0.5))
    assert [p.name for p in (out / "manifest").iterdir()] == ["g000003"]  # old generations collected


# --- 3. damaged outputs: verify finds them, the next run repairs exactly those ----------------------
def test_verify_finds_a_flipped_byte_a_swapped_file_and_a_truncated_file(tmp_path, data, ref):
    out = tmp_path / "run"
    finish(data, out)
    scores = sorted((out / "scores" / "wfpp").glob("*.parquet"))
    flipped, swapped, truncated = scores[0], scores[2], out / "ids" / "part-00005.parquet"
    raw = bytearray(flipped.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    flipped.write_bytes(bytes(raw))
    swapped.write_bytes(scores[1].read_bytes())
    truncated.write_bytes(truncated.read_bytes()[:100])
    first = {b["unit"]: b["problem"] for b in curate.api.verify(out)["bad"]}
    assert {"scores/wfpp/" + flipped.with_suffix(".json").name, "scores/wfpp/" + swapped.with_suffix(".json").name,
            "ids/part-00005.json"} <= set(first)
    second = {b["unit"]: b["problem"] for b in curate.api.verify(out)["bad"]}
    assert set(second) == set(first), "a second verify before the repairing run still reports the damage"
    assert all(second[u].startswith(first[u]) and "earlier verify" in second[u] for u in first)
    assert main(["verify", str(out)]) == 1
    summary = finish(data, out)
    assert summary["stages"]["wfpp"]["units_computed"] == 2  # the flipped and the swapped unit
    assert summary["phases"]["ids"]["computed"] == 1
    assert summary["stages"]["slow_length"]["units_computed"] == 0
    assert sorted_manifest(out).equals(ref)
    assert main(["verify", str(out)]) == 0


def test_an_edited_sidecar_is_recomputed_not_believed(tmp_path, data, ref, caplog):
    out = tmp_path / "run"
    finish(data, out)
    sidecar = sorted((out / "scores" / "slow_length").glob("*.json"))[3]
    meta = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**meta, "errored": 999}))
    with caplog.at_level(logging.WARNING):
        summary = finish(data, out)
    assert "was modified after it was written" in caplog.text
    assert summary["stages"]["slow_length"]["units_computed"] == 1 and summary["stages"]["slow_length"]["errored"] == 0
    assert sorted_manifest(out).equals(ref)


def test_run_verify_repairs_a_flipped_byte_that_a_size_check_cannot_see(tmp_path, data, ref):
    out = tmp_path / "run"
    finish(data, out)
    victim = sorted((out / "scores" / "slow_length").glob("*.parquet"))[1]
    raw = bytearray(victim.read_bytes())
    raw[-200] ^= 0xFF
    victim.write_bytes(bytes(raw))
    summary = curate.run(pipeline(), data, out, executor="local", verify=True)
    assert summary["stages"]["slow_length"]["units_computed"] == 1
    assert sorted_manifest(out).equals(ref)


# --- 4. inputs rewritten in place with the same size and mtime -----------------------------------------
def test_a_shard_rewritten_with_the_same_size_and_mtime_is_rescored(tmp_path, data):
    shard = data / "part-00003.parquet"
    table = pq.read_table(shard)
    plain = {"compression": "none", "use_dictionary": False, "write_statistics": False}
    pq.write_table(table, shard, **plain)
    out = tmp_path / "run"
    finish(data, out)
    captions = table.column("caption").to_pylist()
    captions[0] = captions[0][::-1]  # same length, other content
    st = shard.stat()
    pq.write_table(table.set_column(1, "caption", pa.array(captions)), shard, **plain)
    os.utime(shard, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert shard.stat().st_size == st.st_size and shard.stat().st_mtime_ns == st.st_mtime_ns
    summary = finish(data, out)
    assert summary["phases"]["ids"]["computed"] == 1
    assert sorted_manifest(out).equals(reference(tmp_path, data))


# --- 5. truncated, empty and missing outputs heal -------------------------------------------------------
def test_truncated_empty_and_missing_outputs_are_recomputed_with_a_warning(tmp_path, data, ref, caplog):
    out = tmp_path / "run"
    finish(data, out)
    (out / "ids" / "part-00001.parquet").write_bytes(b"")
    score = out / "scores" / "slow_length" / "part-00002.parquet"
    score.write_bytes(score.read_bytes()[:-30])
    artifact = next((out / "artifacts" / "wfpp").rglob("artifact.parquet"))
    artifact.unlink()
    with caplog.at_level(logging.WARNING):
        summary = finish(data, out)
    assert "artifact.parquet is missing" in caplog.text and "truncated or replaced" in caplog.text
    assert summary["phases"]["fit:wfpp"]["reused"] is False
    assert sorted_manifest(out).equals(ref)


# --- 6. a full disk ------------------------------------------------------------------------------------
def test_a_full_disk_ends_with_one_clear_message_and_a_rerun_after_freeing_space_is_correct(
        tmp_path, data, ref, monkeypatch, capsys):
    out = tmp_path / "run"
    config = tmp_path / "c.yaml"
    config.write_text(f"id_column: id\ndata: {data}\nstages:\n  - type: wfpp\n    text_column: caption\n"
                      "    min_count: 1\n  - type: testkit.helpers:slow_length\npolicies:\n"
                      "  - type: keep_fraction\n    column: wfpp.score\n    fraction: 0.5\n"
                      "  - type: testkit.faults:SlowThreshold\n    column: slow_length.len\n    min: 10\n")
    real = os.replace

    def full(src, dst):
        if "manifest" in str(dst):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(storage.os, "replace", full)
    assert main(["run", str(config), "--out", str(out), "--executor", "local"]) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "needed" in err and "Traceback" not in err
    assert not list(out.rglob("*.tmp"))
    monkeypatch.setattr(storage.os, "replace", real)
    assert main(["run", str(config), "--out", str(out), "--executor", "local"]) == 0
    assert sorted_manifest(out).equals(ref)


# --- 8. leftovers ---------------------------------------------------------------------------------------
def test_temporary_files_of_a_dead_writer_are_removed_by_the_next_run(tmp_path, data, ref):
    out = tmp_path / "run"
    finish(data, out)
    left = out / "scores" / "wfpp" / ".part-00000.parquet.dead.tmp"
    left.write_bytes(b"half")
    finish(data, out)
    assert not left.exists()


def test_a_stage_without_artifact_recomputes_only_the_changed_shard(tmp_path, monkeypatch):
    from curate.methods.icc import ICC

    monkeypatch.setenv("CURATE_TEST_SLEEP", "0")
    data = dataset(tmp_path / "data", rows=80, shards=4)
    p = curate.Pipeline([ICC(text_column="caption")], id_column="id")
    curate.run(p, data, tmp_path / "run", executor="local")
    t = pq.read_table(data / "part-00002.parquet")
    pq.write_table(t.set_column(1, "caption", pa.array(["a red car"] * t.num_rows)), data / "part-00002.parquet")
    again = curate.run(p, data, tmp_path / "run", executor="local")
    assert again["stages"]["icc"]["units_computed"] == 1 and again["stages"]["icc"]["units_reused"] == 3


# --- kill -9 at random moments of every phase ------------------------------------------------------------
@pytest.mark.parametrize("seed", range(3))
def test_kill_at_a_random_moment_then_rerun_gives_the_uninterrupted_manifest(tmp_path, data, ref, seed):
    """Each attempt is killed once it has written a random number k of files (ids, fit maps, artifact,
    scores, manifest parts, summary: any phase), one attempt during a policy change."""
    rng = random.Random(seed)
    out = tmp_path / "run"

    def files() -> int:
        return sum(1 for p in out.rglob("*") if p.is_file()) if out.exists() else 0

    kills = 0
    for attempt in range(3):
        proc = start(data, out, sleep=0.1, decide_sleep=0.05, fraction=0.9 if attempt == 1 else 0.5)
        k, base = rng.randint(1, 8 if attempt else 60), files()
        if kill_when(proc, lambda k=k, base=base: files() - base >= k):
            kills += 1
        else:
            assert proc.returncode == 0, proc.stderr.read()[-2000:]
    assert kills >= 2
    finish(data, out)
    assert sorted_manifest(out).equals(ref)
    assert not list(out.rglob("*.tmp"))


@pytest.mark.parametrize("executor", ["local", pytest.param("ray", marks=pytest.mark.slow)])
def test_sigterm_ends_a_run_cleanly_and_releases_the_lease(tmp_path, data, ref, executor):
    import signal
    import subprocess
    import sys

    import psutil

    config = tmp_path / "c.yaml"
    config.write_text(f"id_column: id\ndata: {data}\nstages:\n  - type: wfpp\n    text_column: caption\n"
                      "    min_count: 1\n  - type: testkit.helpers:slow_length\npolicies:\n"
                      "  - type: keep_fraction\n    column: wfpp.score\n    fraction: 0.5\n"
                      "  - type: testkit.faults:SlowThreshold\n    column: slow_length.len\n    min: 10\n")
    out = tmp_path / "run"
    env = {**os.environ, "CURATE_TEST_SLEEP": "0.3", "PYTHONPATH": str(faults.ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "curate.cli", "run", str(config), "--out", str(out),
                             "--executor", executor], cwd=faults.ROOT, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while len(sidecars(out, "scores")) < 2 and time.time() < deadline:
        time.sleep(0.02)
    services = _services(out)  # the Ray run's processes (none for local)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 143 and "terminated (SIGTERM)" in err and "Traceback" not in err, err[-3000:]
    assert "SIGTERM received" not in err, "no native crash dump (Ray's signal handler)"
    assert not (out / "lease.json").exists() and not (out / "state" / "processes.json").exists()
    assert (executor == "ray") == bool(services)
    assert not psutil.wait_procs(services, timeout=15)[1], "Ray's services and workers are stopped"
    finish(data, out)
    assert sorted_manifest(out).equals(ref)


def _services(out) -> list:
    """The live processes a run recorded in state/processes.json (its Ray services and workers)."""
    from curate.engine.leftovers import _same

    record = out / "state" / "processes.json"
    found = [_same(pid, started) for pid, started in json.loads(record.read_text())["processes"]] if (
        record.exists()) else []
    return [p for p in found if p is not None]


def test_a_local_lease_is_created_atomically_and_waits_only_where_a_rival_could_have_written(tmp_path, monkeypatch):
    waits = []
    monkeypatch.setattr("curate.engine.lease.time.sleep", waits.append)
    assert storage.create_new(tmp_path / "x.json", b"{}") is True  # hard-linked into place: whole or absent
    with pytest.raises(FileExistsError):
        storage.create_new(tmp_path / "x.json", b"{}")
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # the file written aside is gone
    fresh = Lease(tmp_path / "a").acquire()
    fresh.release()
    assert waits == []  # nobody else can hold a lease created atomically: no settling wait
    stale = tmp_path / "b" / "lease.json"
    stale.parent.mkdir()
    stale.write_text(json.dumps({"owner": "dead", "heartbeat_at": 0, "ttl": 1}))
    taken = Lease(tmp_path / "b").acquire()  # a takeover is a plain write: a rival may have written too
    taken.release()
    assert waits == [SETTLE_LOCAL_S]
