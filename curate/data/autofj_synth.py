"""Synthetic name tables for Auto-FuzzyJoin at scale: a duplicate-free L of entity names and an R of
corrupted copies plus new entities (the project's own corruption generator, docs/methods/autofj.md check 9).

Names are built from the words of the bundled 50-task benchmark's L titles (real DBpedia names), so
token statistics look like real entity names; every L name is distinct.
"""
from __future__ import annotations

import csv
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

BENCH = Path(__file__).resolve().parents[2] / "bench" / "data" / "autofj"


def word_pool(root: Path = BENCH) -> list[str]:
    words: set[str] = set()
    for f in sorted(root.glob("*/left.csv")):
        with open(f, newline="", encoding="utf-8") as fh:
            for row in list(csv.reader(fh))[1:]:
                words.update(w for w in row[1].split() if w.isalpha() and len(w) > 1)
    return sorted(words)


def names(n: int, rng: random.Random, pool: list[str]) -> list[str]:
    """n distinct names of 2-4 pool words, sometimes with a year or a number."""
    out: set[str] = set()
    while len(out) < n:
        k = rng.choice((2, 2, 3, 3, 4))
        words = [rng.choice(pool) for _ in range(k)]
        r = rng.random()
        if r < 0.15:
            words.insert(rng.randrange(k + 1), str(rng.randint(1900, 2030)))
        elif r < 0.2:
            words.append(str(rng.randint(2, 99)))
        out.add(" ".join(words))
    result = sorted(out)
    rng.shuffle(result)
    return result


def corrupt(name: str, rng: random.Random) -> str:
    """One or two edits a messy table makes: typo, dropped/swapped character, case, punctuation, dropped word."""
    s = name
    for _ in range(rng.choice((1, 1, 2))):
        op = rng.random()
        i = rng.randrange(max(len(s), 1))
        if op < 0.25 and len(s) > 3:
            s = s[:i] + s[i + 1:]
        elif op < 0.4 and len(s) > 3 and i + 1 < len(s):
            s = s[:i] + s[i + 1] + s[i] + s[i + 2:]
        elif op < 0.55:
            s = s[:i] + rng.choice("abcdefghijklmnopqrstuvwxyz") + s[i + 1:]
        elif op < 0.7:
            s = s.lower() if rng.random() < 0.5 else s.upper()
        elif op < 0.85:
            s = s.replace(" ", rng.choice((", ", " - ", "  ")), 1)
        else:
            words = s.split()
            if len(words) > 2:
                del words[rng.randrange(len(words))]
                s = " ".join(words)
    return s


def build(out: str | Path, n_left: int, n_right: int, new_share: float = 0.1, shards: int = 8, seed: int = 0
          ) -> dict:
    """Write `out/left.parquet` (id, name), `out/right/part-*.parquet` (id, name, true_id) and return counts."""
    rng = random.Random(seed)
    pool = word_pool()
    n_new = int(n_right * new_share)
    allnames = names(n_left + n_new, rng, pool)
    left, fresh = allnames[:n_left], allnames[n_left:]
    out = Path(out)
    (out / "right").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"id": [f"l{i}" for i in range(n_left)], "name": left}), out / "left.parquet")
    picks = [rng.randrange(n_left) for _ in range(n_right - n_new)]
    rows = [(corrupt(left[i], rng), f"l{i}") for i in picks] + [(corrupt(s, rng), None) for s in fresh]
    rng.shuffle(rows)
    per = -(-len(rows) // shards)
    for k in range(shards):
        part = rows[k * per:(k + 1) * per]
        pq.write_table(pa.table({"id": [f"r{k * per + j}" for j in range(len(part))],
                                 "name": [p[0] for p in part], "true_id": pa.array([p[1] for p in part], pa.string())}),
                       out / "right" / f"part-{k:05d}.parquet")
    return {"left": n_left, "right": len(rows), "new_entities": n_new}


MULTI_BLANKS = {"name": 0.1, "place": 0.25, "year": 0.4, "kind": 0.3}  # share of blanks per column, L and R alike
KINDS = ("club", "league", "stadium", "museum", "hospital", "school", "church", "bridge", "station", "park",
         "festival", "award", "ship", "river", "mountain", "airport", "library", "theatre", "prison", "castle")


def build_multi(out: str | Path, n_left: int, n_right: int, new_share: float = 0.3,
                blanks: dict[str, float] | None = None, shards: int = 4, seed: int = 0) -> dict:
    """Multi-column tables with blanks: `out/left.parquet` (id, name, place, year, kind) and
    `out/right/part-*.parquet` (the same plus true_id). R rows are corrupted copies of L entities (name
    edits, a place typo now and then, the year off by one now and then) or new entities; each column is
    blank ("") in a share of rows of both tables (`blanks`, default MULTI_BLANKS), never every column of a row."""
    rng = random.Random(seed)
    pool = word_pool()
    blanks = dict(MULTI_BLANKS if blanks is None else blanks)
    cols = ("name", "place", "year", "kind")
    n_new = int(n_right * new_share)
    allnames = names(n_left + n_new, rng, pool)
    places = [rng.choice(pool) for _ in range(max(50, (n_left + n_new) // 20))]

    def entity(name: str) -> dict[str, str]:
        return {"name": name, "place": rng.choice(places), "year": str(rng.randint(1850, 2020)),
                "kind": rng.choice(KINDS)}

    def blank_some(rec: dict[str, str]) -> dict[str, str]:
        out = {c: ("" if rng.random() < blanks.get(c, 0.0) else v) for c, v in rec.items()}
        if not any(out.values()):
            out["name"] = rec["name"]
        return out

    entities = [entity(n) for n in allnames]
    left, fresh = entities[:n_left], entities[n_left:]
    seen: set[tuple[str, ...]] = set()
    left_rows = []
    for e in left:
        rec = blank_some(e)
        if tuple(rec.values()) in seen:  # a blank must not turn two entities into one record
            rec["name"] = e["name"]
        seen.add(tuple(rec.values()))
        left_rows.append(rec)

    def messy(e: dict[str, str]) -> dict[str, str]:
        r = dict(e, name=corrupt(e["name"], rng))
        if rng.random() < 0.2:
            r["place"] = corrupt(e["place"], rng)
        if rng.random() < 0.2:
            r["year"] = str(int(e["year"]) + rng.choice((-1, 1)))
        return blank_some(r)

    picks = [rng.randrange(n_left) for _ in range(n_right - n_new)]
    rows = [(messy(left[i]), f"l{i}") for i in picks] + [(messy(e), None) for e in fresh]
    rng.shuffle(rows)
    out = Path(out)
    (out / "right").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"id": [f"l{i}" for i in range(n_left)],
                             **{c: [r[c] for r in left_rows] for c in cols}}), out / "left.parquet")
    per = -(-len(rows) // shards)
    for k in range(shards):
        part = rows[k * per:(k + 1) * per]
        pq.write_table(pa.table({"id": [f"r{k * per + j}" for j in range(len(part))],
                                 **{c: [p[0][c] for p in part] for c in cols},
                                 "true_id": pa.array([p[1] for p in part], pa.string())}),
                       out / "right" / f"part-{k:05d}.parquet")
    return {"left": n_left, "right": len(rows), "new_entities": n_new, "blanks": blanks}
