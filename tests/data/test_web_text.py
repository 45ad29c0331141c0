"""The web-text corpus builder: man pages to plain text, gettext catalogues read directly, fortunes one per
document, JSONL shards with id/text/source and a .complete that counts every document; the shipped config
builds a pipeline in the published order."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import curate.data.web_text as web_text
from curate.config import pipeline_from_dict
from curate.data.web_text import build_web_text, catalogue_messages, roff_text

ROOT = Path(__file__).resolve().parents[2]

ROFF = r""".\" a comment line
.TH OPEN 2 2023-01-01 "Linux man-pages 6.03"
.SH NAME
open \- open and possibly create a file
.SH DESCRIPTION
The
.BR open ()
system call opens the file specified by
.IR pathname .
It returns \(lqa descriptor\(rq\(emor \-1.
.PP
.IP \(bu 3
first point
.nf
int fd;
char *p;
.fi
"""


def test_roff_becomes_filled_paragraphs_with_headings_and_escapes_replaced():
    text = roff_text(ROFF)
    assert text.split("\n\n") == [
        "NAME", "open - open and possibly create a file", "DESCRIPTION",
        "The open () system call opens the file specified by pathname . It returns \"a descriptor\"\u2014or -1.",
        "\u2022 first point", "int fd;", "char *p;\n"]
    assert "comment" not in text and "TH" not in text


def _mo(path: Path, pairs: list[tuple[bytes, bytes]]) -> Path:
    """A little-endian GNU .mo file holding `pairs` (msgid, msgstr)."""
    n, head = len(pairs), 28
    originals, translations = head, head + 8 * len(pairs)
    data, table_o, table_t = b"", b"", b""
    offset = head + 16 * n
    for msgid, _ in pairs:
        table_o += struct.pack("<2I", len(msgid), offset + len(data))
        data += msgid + b"\0"
    for _, msgstr in pairs:
        table_t += struct.pack("<2I", len(msgstr), offset + len(data))
        data += msgstr + b"\0"
    path.write_bytes(struct.pack("<7I", 0x950412DE, 0, n, originals, translations, 0, 0) + table_o + table_t + data)
    return path


def test_a_catalogue_gives_its_translations_and_not_its_header(tmp_path):
    mo = _mo(tmp_path / "a.mo", [(b"", b"Project-Id-Version: x\n"), (b"File", "Datei \u00fcbrig".encode()),
                                 (b"one\0many", b"eins\0viele")])
    assert catalogue_messages(mo) == ["Datei \u00fcbrig", "eins"]
    assert catalogue_messages(_mo(tmp_path / "b.mo", [(b"x", b"\xff\xfe")])) == []  # not UTF-8: skipped
    (tmp_path / "c.mo").write_bytes(b"not a catalogue")
    assert catalogue_messages(tmp_path / "c.mo") == []


def test_the_shards_hold_every_document_once_with_its_source(tmp_path, monkeypatch):
    docs = [(f"s{i % 3}:f#{i}", f"text {i}\n", f"s{i % 3}") for i in range(10)]
    monkeypatch.setattr(web_text, "documents", lambda min_bytes: (docs, {"s0": 4, "s1": 3, "s2": 3}, 0))
    (tmp_path / "part-00009.jsonl").write_text("{}\n")  # an earlier build's shard is removed
    info = build_web_text(tmp_path, shards=4)
    rows = [json.loads(line) for p in sorted(tmp_path.glob("part-*.jsonl")) for line in p.read_text().splitlines()]
    assert [(r["id"], r["text"], r["source"]) for r in rows] == docs
    assert info["rows"] == 10 and info["shards"] == 4 and json.loads((tmp_path / ".complete").read_text()) == info


def test_the_fortunes_are_one_document_each():
    docs, _ = web_text.fortunes()
    assert docs and all(d[2] == "fortunes" and "\n%\n" not in d[1] and d[1].strip() for d in docs)


def test_the_shipped_config_runs_the_published_order():
    import yaml

    pipeline, _ = pipeline_from_dict(yaml.safe_load((ROOT / "configs" / "web-text.yaml").read_text()))
    assert [s.type for s in pipeline.stages] == ["langid", "words", "gopher_quality", "gopher_repetition", "c4",
                                                 "fineweb", "exact_dedup", "minhash_dedup", "tokens"]
    assert [p.type for p in pipeline.policies] == ["languages", "gopher_quality", "gopher_repetition", "c4",
                                                   "fineweb", "dedup", "dedup"]
