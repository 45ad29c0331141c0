"""Build a real multi-source text corpus from files installed here (dataset `web-text`), for the web-text
pipeline (configs/web-text.yaml: language ID, the Gopher / C4 / FineWeb rules, dedup, token counts).

A web crawl mixes prose, boilerplate, lists, code and other languages; so does this corpus. Sources, each a
`source` value:
- `licence`: the licence texts in /usr/share/common-licenses and every Debian package's `copyright` file
  (/usr/share/doc/*/copyright: many are near-copies of each other, as boilerplate on the web is);
- `manual`: the Linux man pages (Debian `manpages`, sections 2 to 7), roff markup stripped to plain text,
  one document per page (`.so` alias pages left out);
- `docs`: the Python docs' reST sources (Debian `python3.11-doc`);
- `code`: the standard library's `.py` files (test suites included);
- `fortunes`: the English fortunes (Debian `fortunes`), one document per fortune: short texts, many quotes;
- `translations`: the translated messages of every gettext catalogue (/usr/share/locale/*/LC_MESSAGES/*.mo),
  the first 4,000 bytes of each catalogue: dozens of languages and scripts.

Long files are cut into consecutive runs of whole lines of at least `min_bytes` (4,000) UTF-8 bytes (a last
piece of at least 200 bytes is kept). Files that are not valid UTF-8 are decoded with replacement characters
and counted in `.complete`. Shards are JSONL (`id`, `text`, `source`), written in source order.
"""
from __future__ import annotations

import glob
import gzip
import json
import os
import re
import struct
import time
from pathlib import Path

from curate.data.demo import _shard_bounds, package_files, package_version
from curate.data.stdlib_code import _read, chunk_lines, doc_files, fortune_files, stdlib_files
from curate.errors import DataError

COMPLETE = ".complete"
MANPAGES_PACKAGE = "manpages"
PACKAGES = ("python3.11-doc", "fortunes", MANPAGES_PACKAGE)
LICENCES = "/usr/share/common-licenses/*"
COPYRIGHTS = "/usr/share/doc/*/copyright"
LOCALE = Path("/usr/share/locale")
_SHARD = re.compile(r"^\.?part-\d{5}\.jsonl(\.tmp)?$")

Doc = tuple[str, str, str]  # (id, text, source)


def _pieces(source: str, files: list[tuple[str, Path]], min_bytes: int, read=None) -> tuple[list[Doc], int]:
    """Documents of every file (cut into runs of whole lines), and how many files needed replacement characters."""
    out, replaced = [], 0
    for rel, path in files:
        text, bad = read(path) if read else _read(path)
        replaced += bad
        out += [(f"{source}:{rel}#{i}", t, source) for i, t in enumerate(chunk_lines(text, min_bytes, 200))]
    return out, replaced


def licence_files() -> list[tuple[str, Path]]:
    paths = sorted(glob.glob(LICENCES)) + sorted(glob.glob(COPYRIGHTS))
    return [(f"{Path(p).parent.name}/{Path(p).name}", Path(p)) for p in paths
            if Path(p).is_file() and not Path(p).is_symlink()]


# --- man pages --------------------------------------------------------------------------------------------
_NAMED = {"em": "\u2014", "en": "\u2013", "aq": "'", "dq": '"', "lq": '"', "rq": '"', "oq": "'", "cq": "'",
          "bu": "\u2022", "co": "\u00a9", "rg": "\u00ae", "mu": "\u00d7", "+-": "\u00b1", "<=": "\u2264",
          ">=": "\u2265", "->": "\u2192", "ha": "^", "ti": "~", "rs": "\\", "hy": "-"}
_ESCAPE = re.compile(r"\\(\((..)|\[([^\]]*)\]|f(\(..|\[[^\]]*\]|.)|\*(\(..|\[[^\]]*\]|.)|[-e&c ~|^0]|.)")
_TEXT_MACROS = {"SH", "SS", "B", "I", "BR", "RB", "IR", "RI", "BI", "IB", "SM", "SB", "TP", "IP", "UR", "MT"}
_BREAK_MACROS = {"SH", "SS", "PP", "LP", "P", "TP", "IP", "sp", "br"}


def _unescape(m: re.Match) -> str:
    whole, named = m.group(1), m.group(2) or m.group(3)
    if named is not None:
        return _NAMED.get(named, "")
    if whole[0] in "f*":
        return ""
    return {"-": "-", "e": "\\", " ": " ", "~": " "}.get(whole, "")


def roff_text(source: str) -> str:
    """Plain text of a man page's roff source, filled as a reader sees it: comments and layout requests
    dropped, the text of font and heading macros kept, the lines of a paragraph joined by spaces (kept as
    they are between `.nf` and `.fi` or `.EX` and `.EE`), escapes replaced by their characters (named glyphs)
    or dropped (fonts, strings)."""
    paragraphs: list[list[str]] = [[]]
    filled = True
    for line in source.splitlines():
        if line.startswith((".\\\"", "'\\\"")) or line.strip() in (".", "'"):
            continue
        if line.startswith((".", "'")):
            macro, _, args = line[1:].strip().partition(" ")
            filled = {"nf": False, "EX": False, "fi": True, "EE": True}.get(macro, filled)
            if macro in _BREAK_MACROS or macro in ("nf", "EX", "fi", "EE"):
                paragraphs.append([])
            if macro not in _TEXT_MACROS or not args.strip():
                continue
            words = [a.strip('"') for a in re.findall(r'"[^"]*"|\S+', args)]
            line = " ".join(words[:1] if macro == "IP" else words)  # .IP's second argument is an indent
            if macro in ("SH", "SS"):
                paragraphs[-1:] = [paragraphs[-1], [line], []]
                continue
        text = _ESCAPE.sub(_unescape, line)
        if not text.strip():
            paragraphs.append([])
        elif filled:
            paragraphs[-1].append(text.strip())
        else:
            paragraphs[-1:] = [paragraphs[-1], [text], []]
    blocks = [" ".join(p) for p in paragraphs if p]
    return "\n\n".join(blocks) + "\n"


def _read_man(path: Path) -> tuple[str, bool]:
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    try:
        return roff_text(data.decode("utf-8")), False
    except UnicodeDecodeError:
        return roff_text(data.decode("utf-8", errors="replace")), True


def man_files() -> list[tuple[str, Path]]:
    """(section/page, file) of the Linux man pages, alias pages (`.so` only) left out."""
    out = []
    for f in package_files(MANPAGES_PACKAGE, ".gz"):
        if f.parent.name.startswith("man") and f.parent.parent.name == "man" and not f.is_symlink():
            head = gzip.decompress(f.read_bytes())[:200].lstrip()
            if not head.startswith(b".so "):
                out.append((f"{f.parent.name}/{f.name[:-3]}", f))
    return out


# --- fortunes and translations -------------------------------------------------------------------------------
def fortunes() -> tuple[list[Doc], int]:
    """One document per fortune (the files separate them with a line holding `%`)."""
    out, replaced = [], 0
    for topic, path in fortune_files():
        text, bad = _read(path)
        replaced += bad
        parts = [p.strip("\n") for p in re.split(r"^%$", text, flags=re.M)]
        out += [(f"fortunes:{topic}#{i}", p + "\n", "fortunes") for i, p in enumerate(parts) if p.strip()]
    return out, replaced


def catalogue_messages(path: Path) -> list[str]:
    """The translated messages of a GNU .mo file (plural forms: the first; the header entry left out), read
    directly (Python's gettext refuses some headers); [] for a catalogue that is not one or not UTF-8."""
    data = path.read_bytes()
    order = "<" if data[:4] == b"\xde\x12\x04\x95" else ">" if data[:4] == b"\x95\x04\x12\xde" else None
    if order is None or len(data) < 20:
        return []
    n, _, translations = struct.unpack(order + "3I", data[8:20])
    out = []
    try:
        for i in range(n):
            length, offset = struct.unpack(order + "2I", data[translations + 8 * i: translations + 8 * i + 8])
            text = data[offset:offset + length].split(b"\0")[0].decode("utf-8")
            if text and not text.startswith("Project-Id-Version"):
                out.append(text)
    except (UnicodeDecodeError, struct.error):
        return []
    return out


def translations(min_bytes: int) -> list[Doc]:
    """The first >= min_bytes of each catalogue's messages, one message per line."""
    out = []
    for mo in sorted(LOCALE.glob("*/LC_MESSAGES/*.mo")):
        text = "\n".join(catalogue_messages(mo))
        rel = f"{mo.parts[-3]}/{mo.stem}"
        first = chunk_lines(text, min_bytes, 200)[:1]  # one document per catalogue: the sources stay balanced
        out += [(f"translations:{rel}#0", t, "translations") for t in first]
    return out


# --- the dataset ------------------------------------------------------------------------------------------
def documents(min_bytes: int = 4000) -> tuple[list[Doc], dict[str, int], int]:
    """Every document in source order, the count per source, and files decoded with replacement characters."""
    docs: list[Doc] = []
    counts, replaced = {}, 0
    for source, make in (("licence", lambda: _pieces("licence", licence_files(), min_bytes)),
                         ("manual", lambda: _pieces("manual", man_files(), min_bytes, _read_man)),
                         ("docs", lambda: _pieces("docs", doc_files(), min_bytes)),
                         ("code", lambda: _pieces("code", stdlib_files(), min_bytes)),
                         ("fortunes", fortunes),
                         ("translations", lambda: (translations(min_bytes), 0))):
        part, bad = make()
        docs += part
        counts[source] = len(part)
        replaced += bad
    return docs, counts, replaced


def build_web_text(out: str | Path, shards: int = 16, min_bytes: int = 4000) -> dict:
    """Write the corpus as JSONL shards under `out` and return the `.complete` info."""
    started = time.monotonic()
    out = Path(out)
    docs, counts, replaced = documents(min_bytes)
    if not docs:
        raise DataError(["web-text: no documents found in any source"])
    out.mkdir(parents=True, exist_ok=True)
    (out / COMPLETE).unlink(missing_ok=True)
    for entry in out.iterdir():
        if entry.is_file() and _SHARD.match(entry.name):
            entry.unlink()
    names = []
    for i, (a, b) in enumerate(_shard_bounds(len(docs), max(1, min(shards, len(docs))))):
        name = f"part-{i:05d}.jsonl"
        with open(out / f".{name}.tmp", "w", encoding="utf-8") as f:
            for id_, text, source in docs[a:b]:
                f.write(json.dumps({"id": id_, "text": text, "source": source}, ensure_ascii=False) + "\n")
        os.replace(out / f".{name}.tmp", out / name)
        names.append(name)
    info = {"dataset": "web-text", "rows": len(docs), "shards": len(names), "files": names, "documents": counts,
            "files_decoded_with_replacement": replaced, "min_bytes": min_bytes,
            "packages": {p: package_version(p) for p in PACKAGES}, "seconds": round(time.monotonic() - started, 2)}
    (out / f"{COMPLETE}.tmp").write_text(json.dumps(info, indent=2) + "\n")
    os.replace(out / f"{COMPLETE}.tmp", out / COMPLETE)
    return info
