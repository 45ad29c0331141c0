"""What the command line says when something is wrong: the place and the reason, never a traceback or a secret."""
from __future__ import annotations

import os
import sys

import pytest

from curate.cli import main
from testkit.helpers import caption_table, write_shards

SECRET = "wJalrXUtnFEMIK7MDENGbPxRfiCYSECRETKEY"


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # (closed again when this returns: nothing listens there)


def test_credentials_in_an_s3_uri_query_are_used_and_never_printed(tmp_path, capsys):
    """`s3://bucket/x?access_key=...&secret_key=...` (README): pyarrow refuses them in the query (ArrowInvalid);
    curate passes them as the URI's user part, and shows the URI without them."""
    from testkit.s3 import s3_server, unique_prefix

    data = write_shards(tmp_path / "data", caption_table(30), 2)
    config = tmp_path / "c.yaml"
    config.write_text("name: creds\nid_column: id\nstages:\n  - type: wfpp\n    min_count: 1\npolicies: []\n")
    with s3_server() as s3:
        host = s3.endpoint.removeprefix("http://")
        uri = (f"s3://{s3.bucket}/{unique_prefix('creds')}?access_key=testing&secret_key={SECRET}"
               f"&endpoint_override={host}&scheme=http&region=us-east-1")
        assert main(["run", str(config), "--data", str(data), "--out", uri, "--executor", "local"]) == 0
        assert main(["summary", uri]) == 0
        assert main(["verify", uri]) == 0
    out = capsys.readouterr()
    assert "creds: 30 rows" in out.out and "0 damaged" in out.out
    assert SECRET not in out.out + out.err


def test_a_bad_storage_uri_is_a_clear_error_without_the_secret(capsys):
    assert main(["summary", f"s3://bucket/x?access_key=AK&secret_key={SECRET}&no_such_option=1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: s3://bucket/x?no_such_option=1: not a usable storage URI")
    assert SECRET not in err and "Traceback" not in err
    assert main(["summary", f"s3://bucket/x?secret_key={SECRET}"]) == 1
    err = capsys.readouterr().err
    assert "access_key and secret_key together" in err and SECRET not in err


def test_an_unreachable_store_names_the_uri_and_a_reader_says_nothing_of_half_written_files(capsys, monkeypatch):
    import pyarrow.fs as pafs

    from curate.storage import ObjectPath

    real = ObjectPath.from_uri.__func__

    def trying_once(cls, uri: str) -> ObjectPath:  # (the SDK's retries on a refused connection: ~6 s per request)
        at = real(cls, uri)
        _, (options,) = at.fs.__reduce__()
        at.fs = pafs.S3FileSystem(**options, retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=1))
        return at

    monkeypatch.setattr(ObjectPath, "from_uri", classmethod(trying_once))
    uri = f"s3://bucket/run?endpoint_override=127.0.0.1:{_closed_port()}&scheme=http&region=us-east-1"
    assert main(["summary", uri]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: s3://bucket/run/summary.json?endpoint_override=127.0.0.1"), err
    assert "half-written" not in err and "re-run" not in err


def test_a_broken_pipe_ends_quietly(tmp_path, monkeypatch, capsys):
    """`curate summary RUN --json | head -c 10`: the reader closed the pipe; nothing to report."""
    r, w = os.pipe()
    os.close(r)
    pipe = os.fdopen(w, "w", buffering=1)
    monkeypatch.setattr(sys, "stdout", pipe)
    try:
        assert main(["stages"]) == 141
    finally:
        monkeypatch.undo()
        pipe.close()
    assert capsys.readouterr().err == ""


def test_files_of_another_format_than_format_are_named_on_every_run(tmp_path, capsys):
    """`format: jsonl` over a folder that also holds a CSV: the CSV is not read, and each run's result says so
    (a warning once per process is not enough: a served deployment runs many times in one process)."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.jsonl").write_text('{"id": "a", "caption": "a cat on a mat"}\n{"id": "b", "caption": "a dog"}\n')
    (data / "b.csv").write_text("id,caption\nc,a bird in the sky\n")
    config = tmp_path / "c.yaml"
    config.write_text("name: mixed\nformat: jsonl\nid_column: id\nstages:\n  - type: wfpp\n    min_count: 1\n"
                      "policies: []\n")
    for out in ("run1", "run2"):
        assert main(["run", str(config), "--data", str(data), "--out", str(tmp_path / out), "--executor", "local"]) == 0
        printed = capsys.readouterr().out
        assert "1 file(s) in" in printed and "are not jsonl" in printed and "b.csv" in printed, printed
    assert main(["summary", str(tmp_path / "run2")]) == 0
    assert "b.csv" in capsys.readouterr().out


@pytest.fixture(autouse=True)
def _no_aws_env(monkeypatch):
    for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
