"""PII detection: throughput of the `pii` stage on real text against a plain Python loop over the same
patterns, agreement between the two, and recall of values planted into real text.

    python -m bench.pii [--runs 3] [--reference-rows 4000] [--planted 300]

Corpus: every row of `data/stdlib-code` (the Python docs' reST sources, standard-library code, fortunes:
real text with real e-mail addresses in it); `CURATE_BENCH_DATA` names another folder of Parquet shards with a
`text` column.
1. Speed, one process on one core: the stage's `score` over the whole corpus in batches of 8,192 rows, and on
   the first `--reference-rows` rows the same stage against the reference: for each document and kind,
   `regex.sub` with the same pattern and the check as plain Python (the loop a script would write), in
   alternating runs; rows/s and MB/s, min / median / max over `--runs`.
2. Agreement: the rows whose redacted text differs between the stage and the reference.
3. Recall and precision: `--planted` values of each kind (valid by construction: Luhn and mod-97 digits
   computed) and as many near misses planted at random line breaks of random rows; a value counts as found
   when it is gone from the redacted text; precision is found values over the finds the planting added. Also the
   finds in the unplanted corpus by kind, with examples, to judge false positives by eye (they are not labelled).
Writes bench/results/pii.json and bench/results/pii.md.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import glob
import json
import platform
import string
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import regex

from curate.methods.pii import PII, checks
from curate.methods.pii.patterns import KINDS, NAMES

HERE = Path(__file__).parent
RESULTS = HERE / "results"
DATA = Path(os.environ.get("CURATE_BENCH_DATA", HERE.parent / "data" / "stdlib-code"))
BATCH = 8192


def corpus() -> pa.Array:
    files = sorted(glob.glob(str(DATA / "*.parquet")))
    if not files:
        raise SystemExit(f"no Parquet shards in {DATA}: build them with `curate data stdlib-code` or set "
                         "CURATE_BENCH_DATA")
    return pa.concat_arrays([c for f in files for c in pq.read_table(f, columns=["text"]).column("text").chunks])


# --- the reference: a plain Python loop over the same patterns ---------------------------------------------
def _luhn(s: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(s)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _digits(s: str) -> str:
    return "".join(ch for ch in s if ch.isdigit())


def _card(s: str) -> bool:
    d = _digits(s)
    return 13 <= len(d) <= 19 and d[0] in "23456" and _luhn(d)


def _iban(s: str) -> bool:
    c = s.replace(" ", "")
    return 15 <= len(c) <= 34 and int("".join(str(int(ch, 36)) for ch in c[4:] + c[:4])) % 97 == 1


def _ipv4(s: str) -> bool:
    parts = s.split(".")
    return len(parts) == 4 and all(len(p) <= 3 and int(p) <= 255 for p in parts)


def _phone(s: str) -> bool:
    return 9 <= len(_digits(s)) <= 15


_PY_CHECKS = {"iban": _iban, "card": _card, "ip": _ipv4, "phone": _phone}
# RE2's \b is ASCII; `regex`'s is Unicode unless scoped ASCII (the whole-pattern flag would also make \p{L} ASCII).
_COMPILED = [(k.name, k.placeholder, regex.compile(k.pattern.replace(r"\b", r"(?a:\b)")),
              _PY_CHECKS[k.name] if k.check else None) for k in KINDS]


def reference(texts: list[str]) -> list[str]:
    out = []
    for text in texts:
        for _, placeholder, pattern, check in _COMPILED:
            text = pattern.sub(lambda m, c=check, p=placeholder: p if c is None or c(m.group()) else m.group(), text)
        out.append(text)
    return out


def ours(texts: pa.Array) -> pa.Array:
    stage = PII()
    return pa.concat_arrays([stage.score(pa.table({"text": texts.slice(i, BATCH)})).column("text").combine_chunks()
                             for i in range(0, len(texts), BATCH)])


def timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def spread(seconds: list[float], rows: int, mb: float) -> dict:
    s = sorted(seconds)
    return {"seconds": s, "rows_per_s": [rows / x for x in s[::-1]], "mb_per_s": [mb / x for x in s[::-1]]}


# --- planted values, valid by construction ---------------------------------------------------------------
def _luhn_digit(body: str) -> str:
    return str(next(d for d in range(10) if _luhn(body + str(d))))


def planted_value(kind: str, rng: np.random.Generator) -> str:
    digits = lambda n: "".join(map(str, rng.integers(0, 10, n)))  # noqa: E731
    letters = lambda n, pool=string.ascii_lowercase: "".join(rng.choice(list(pool), n))  # noqa: E731
    if kind == "email":
        return f"{letters(6)}.{letters(5)}@{letters(7)}.{rng.choice(['com', 'org', 'de', 'co.uk'])}"
    if kind == "ip":
        if rng.random() < 0.5:
            return ".".join(str(x) for x in rng.integers(0, 256, 4))
        return ":".join(f"{x:x}" for x in rng.integers(256, 65536, 8))
    if kind == "phone":
        return rng.choice([f"+{rng.integers(1, 99)} {digits(3)} {digits(3)} {digits(4)}",
                           f"({digits(3)}) {digits(3)}-{digits(4)}", f"0{digits(3)} {digits(3)} {digits(4)}"])
    if kind == "card":
        prefix, length = [("4", 16), ("51", 16), ("37", 15), ("6011", 16)][int(rng.integers(4))]
        body = prefix + digits(length - 1 - len(prefix))
        number = body + _luhn_digit(body)
        if rng.random() < 0.5:
            return number
        groups = (4, 6, 5) if length == 15 else (4, 4, 4, 4)  # as printed on the card
        cuts = np.cumsum((0, *groups))
        return " ".join(number[a:b] for a, b in zip(cuts[:-1], cuts[1:]))
    if kind == "iban":
        country, bban = str(rng.choice(["DE", "GB", "FR", "NL"])), letters(4, string.ascii_uppercase) + digits(14)
        check = 98 - int("".join(str(int(ch, 36)) for ch in bban + country + "00")) % 97
        value = f"{country}{check:02d}{bban}"
        return " ".join(value[i:i + 4] for i in range(0, len(value), 4)) if rng.random() < 0.5 else value
    prefixes = ["AKIA" + letters(16, string.ascii_uppercase + string.digits), "ghp_" + letters(36, string.ascii_letters),
                "xoxb-" + digits(12) + "-" + letters(24, string.ascii_letters), "sk_live_" + letters(24, string.ascii_letters)]
    return str(rng.choice(prefixes))


def near_miss(kind: str, rng: np.random.Generator) -> str:
    """A value that looks like the kind but is not one: a wrong check digit, an octet over 255, no dotted
    domain, too few digits, a token too short."""
    digits = lambda n: "".join(map(str, rng.integers(0, 10, n)))  # noqa: E731
    if kind in ("card", "iban"):
        value = planted_value(kind, rng)
        while True:  # change one digit: the Luhn digit and mod 97 both catch every single-digit change
            i = int(rng.choice([j for j, ch in enumerate(value) if ch.isdigit() and j >= 2]))
            wrong = value[:i] + str((int(value[i]) + int(rng.integers(1, 10))) % 10) + value[i + 1:]
            if kind == "card" or wrong[2:4] not in ("00", "01", "99"):  # IBAN check digits are 02 to 98
                return wrong
    if kind == "ip":
        return f"{rng.integers(256, 1000)}.{rng.integers(0, 256)}.{rng.integers(0, 256)}.{rng.integers(0, 256)}"
    if kind == "email":
        return f"{planted_value('email', rng).split('.')[0]}@localhost"
    if kind == "phone":
        return f"0{digits(1)} {digits(2)} {digits(4)}"
    return str(rng.choice(["ghp_" + digits(20), "AKIA" + digits(10), "xoxb-" + digits(5), "sk_live_" + digits(8)]))


def plant(texts: list[str], per_kind: int, seed: int = 0) -> tuple[list[str], list[tuple[int, str, str, bool]]]:
    """The texts with values and near misses planted at random line breaks of random rows; (row, kind, value,
    is a real value) of each."""
    rng = np.random.default_rng(seed)
    texts, planted = list(texts), []
    for kind in NAMES:
        for real in [True] * per_kind + [False] * per_kind:
            row, value = int(rng.integers(len(texts))), planted_value(kind, rng) if real else near_miss(kind, rng)
            # at line breaks only: a later value planted inside an earlier one (at one of its spaces) would split it
            breaks = [m.start() for m in regex.finditer(r"\n", texts[row])] or [0]
            at = breaks[int(rng.integers(len(breaks)))]
            texts[row] = f"{texts[row][:at]} {value} {texts[row][at:]}"
            planted.append((row, kind, value, real))
    return texts, planted


def kind_counts(texts: pa.Array) -> dict[str, int]:
    stage = PII()
    out = dict.fromkeys(NAMES, 0)
    for i in range(0, len(texts), BATCH):
        scored = stage.score(pa.table({"text": texts.slice(i, BATCH)}))
        for k in NAMES:
            out[k] += pc.sum(scored.column(k)).as_py() or 0
    return out


def recall(before: list[str], texts: list[str], planted: list[tuple[int, str, str, bool]]) -> dict:
    """Per kind: planted values gone from the redacted text (recall), near misses gone from it (false
    positives), and the finds the planting added to the kind's count; precision is values found over all finds
    added (a near miss redacted, a value split in two, text around a value taken for a find all lower it)."""
    arr = pa.array(texts, pa.large_string())
    redacted = ours(arr).to_pylist()
    old, new = kind_counts(pa.array(before, pa.large_string())), kind_counts(arr)
    out = {}
    for kind in NAMES:
        real = [(r, v) for r, k, v, ok in planted if k == kind and ok]
        fake = [(r, v) for r, k, v, ok in planted if k == kind and not ok]
        missed = [v for r, v in real if v in redacted[r]]
        wrongly = [v for r, v in fake if v not in redacted[r]]
        found, added = len(real) - len(missed), new[kind] - old[kind]
        out[kind] = {"planted": len(real), "found": found, "recall": found / len(real), "near_misses": len(fake),
                     "near_misses_found": len(wrongly), "added_finds": added,
                     "precision": found / max(added, found + len(wrongly), 1), "missed_examples": missed[:5],
                     "near_misses_found_examples": wrongly[:5]}
    return out


def finds(texts: pa.Array) -> dict:
    """Finds by kind in the unplanted corpus, with up to 8 examples each (the matched span and its context)."""
    stage = PII()
    counts = {k: 0 for k in NAMES}
    examples: dict[str, list[str]] = {k: [] for k in NAMES}
    for i in range(0, len(texts), BATCH):
        batch = texts.slice(i, BATCH)
        out = stage.score(pa.table({"text": batch}))
        for kind in NAMES:
            col = out.column(kind).to_numpy(zero_copy_only=False)
            counts[kind] += int(col.sum())
            for row in np.flatnonzero(col)[:8 - len(examples[kind])]:
                text = batch[int(row)].as_py()
                pattern = [k for k in KINDS if k.name == kind]
                for k in pattern:
                    m = regex.search(k.pattern.replace(r"\b", r"(?a:\b)"), text)
                    if m:
                        examples[kind].append(text[max(0, m.start() - 30):m.end() + 30].replace("\n", " "))
                        break
    return {"counts": counts, "examples": examples}


def check_speed(runs: int, n: int = 100_000, seed: int = 1) -> dict:
    """The vectorised card and IBAN checks against the same checks as a Python loop, on n candidates each
    (half valid), min / median / max candidates per second."""
    rng = np.random.default_rng(seed)
    cards = [planted_value("card", rng) for _ in range(n // 2)] + ["4111 1111 1111 111" + str(d) for d in rng.integers(2, 10, n // 2)]
    ibans = [planted_value("iban", rng) for _ in range(n // 2)] + ["GB82 WEST 1234 5698 7654 3" + str(d) for d in rng.integers(3, 10, n // 2)]
    out = {}
    for name, values, vectorised, loop in [("card", cards, checks.card, _card), ("iban", ibans, checks.iban, _iban)]:
        arr = pa.array(values, pa.large_string())
        assert vectorised(arr).tolist() == [loop(v) for v in values], name  # the same answers
        vec, py = [], []
        for _ in range(runs):
            vec.append(timed(vectorised, arr))
            py.append(timed(lambda vs, f=loop: [f(v) for v in vs], values))
        out[name] = {"candidates": n, "vectorised_per_s": [n / x for x in sorted(vec)[::-1]],
                     "python_loop_per_s": [n / x for x in sorted(py)[::-1]]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--reference-rows", type=int, default=4000)
    ap.add_argument("--planted", type=int, default=300)
    args = ap.parse_args()
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    texts = corpus().cast(pa.large_string())
    mb = pc.sum(pc.binary_length(texts)).as_py() / 1e6
    sub = texts.slice(0, args.reference_rows)
    sub_py, sub_mb = sub.to_pylist(), pc.sum(pc.binary_length(sub)).as_py() / 1e6
    ours(sub)  # warm: patterns compiled once per process
    full, stage_sub, ref_sub = [], [], []
    for _ in range(args.runs):
        full.append(timed(ours, texts))
        stage_sub.append(timed(ours, sub))
        ref_sub.append(timed(reference, sub_py))
    differ = [i for i, (a, b) in enumerate(zip(ours(sub).to_pylist(), reference(sub_py))) if a != b]
    planted_texts, planted = plant(sub_py, args.planted)
    result = {
        "corpus": {"path": str(DATA), "rows": len(texts), "mb": mb, "reference_rows": len(sub), "reference_mb": sub_mb},
        "machine": {"python": platform.python_version(), "pyarrow": pa.__version__, "regex": regex.__version__,
                    "cpu": platform.processor() or platform.machine(), "cores_used": 1},
        "stage_full": spread(full, len(texts), mb),
        "stage_sample": spread(stage_sub, len(sub), sub_mb),
        "reference_sample": spread(ref_sub, len(sub), sub_mb),
        "speedup_median": sorted(ref_sub)[len(ref_sub) // 2] / sorted(stage_sub)[len(stage_sub) // 2],
        "rows_differing_from_reference": len(differ),
        "checks": check_speed(args.runs),
        "recall": recall(sub_py, planted_texts, planted),
        "finds": finds(texts),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "pii.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    (RESULTS / "pii.md").write_text(markdown(result))
    print(markdown(result))


def _mmm(values: list[float]) -> str:
    return " / ".join(f"{v:,.1f}" for v in (values[0], values[len(values) // 2], values[-1]))


def markdown(r: dict) -> str:
    c = r["corpus"]
    lines = [
        "# PII detection: throughput, agreement with a Python loop, recall of planted values", "",
        f"Corpus: {c['rows']:,} rows ({c['mb']:.1f} MB of UTF-8) of `{Path(c['path']).name}`; reference sample: the "
        f"first {c['reference_rows']:,} rows ({c['reference_mb']:.1f} MB). `python -m bench.pii`; one process on one "
        f"core ({r['machine']['cpu']}, Python {r['machine']['python']}, pyarrow {r['machine']['pyarrow']}, "
        f"regex {r['machine']['regex']}). min / median / max over {len(r['stage_full']['seconds'])} alternating runs.",
        "", "| what | rows | rows/s | MB/s |", "|---|---|---|---|",
        f"| `pii` stage (Arrow RE2, vectorised checks), whole corpus | {c['rows']:,} | "
        f"{_mmm(r['stage_full']['rows_per_s'])} | {_mmm(r['stage_full']['mb_per_s'])} |",
        f"| `pii` stage, sample | {c['reference_rows']:,} | {_mmm(r['stage_sample']['rows_per_s'])} | "
        f"{_mmm(r['stage_sample']['mb_per_s'])} |",
        f"| reference: `regex.sub` per document and kind, checks in Python, sample | {c['reference_rows']:,} | "
        f"{_mmm(r['reference_sample']['rows_per_s'])} | {_mmm(r['reference_sample']['mb_per_s'])} |", "",
        f"Median speed-up over the reference: **{r['speedup_median']:.1f}x**. Rows whose redacted text differs "
        f"between the stage and the reference: **{r['rows_differing_from_reference']}** of {c['reference_rows']:,}.",
        "", "## The check digits: vectorised (numpy over all candidates) against a Python loop", "",
        "| check | candidates (half valid) | vectorised, candidates/s | Python loop, candidates/s |", "|---|---|---|---|",
        *[f"| {k} | {v['candidates']:,} | {_mmm(v['vectorised_per_s'])} | {_mmm(v['python_loop_per_s'])} |"
          for k, v in r["checks"].items()],
        "", "## Recall of planted values", "",
        "Values valid by construction, and as many near misses (a wrong check digit, an octet over 255, "
        "`name@localhost`, 8-digit numbers, tokens too short), planted at random line breaks of the sample's rows; "
        "found = gone from the redacted text. The values are drawn in the formats the patterns cover (see docs/methods/pii.md for "
        "those they do not), so this measures that real surrounding text does not hide or break a find, not "
        "coverage of every real-world format. Precision: values found over the finds the planting added to the "
        "kind's count (a near miss found, or any other added find, is a false positive).", "", "| kind | values planted | found | recall | near misses planted | found | finds added to the kind's count | "
        "precision | missed (examples) |", "|---|---|---|---|---|---|---|---|---|"]
    for kind, v in r["recall"].items():
        missed = ", ".join(f"`{m}`" for m in v["missed_examples"]) or "-"
        lines.append(f"| {kind} | {v['planted']} | {v['found']} | {v['recall']:.3f} | {v['near_misses']} | "
                     f"{v['near_misses_found']} | {v['added_finds']} | {v['precision']:.3f} | {missed} |")
    lines += ["", "## Finds in the unplanted corpus (not labelled: judge by eye)", "",
              "| kind | finds | examples (the first match in the row, with 30 characters each side) |", "|---|---|---|"]
    for kind, n in r["finds"]["counts"].items():
        shown = "<br>".join("`" + e.replace("`", "'").replace("|", "\\|") + "`" for e in r["finds"]["examples"][kind][:4])
        lines.append(f"| {kind} | {n:,} | {shown or '-'} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
