"""Blank join values (docs/autofj.md, "Missing values"): unknown for their column, never a silent drop,
and `curate join` output that accounts for every row."""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import curate
from curate.cli import main as cli_main
from curate.errors import DataError
from curate.methods.autofj import program as autofj
from curate.methods.autofj.search import weighted
from curate.methods.autofj.stage import AutoFJ
from testkit.helpers import write_shards

DATA = Path(__file__).resolve().parents[2] / "bench" / "data" / "autofj"


def test_weights_are_renormalised_over_the_columns_present():
    cols = [{"f": np.array([0.2, np.nan, np.nan, 0.1])}, {"f": np.array([0.4, 0.6, np.nan, 0.3])}]
    got = weighted(cols, {0: 0.25, 1: 0.75}, ["f"])["f"]
    assert np.allclose(got[[0, 1, 3]], [0.25 * 0.2 + 0.75 * 0.4, 0.6, 0.25 * 0.1 + 0.75 * 0.3])
    assert got[2] == np.inf  # nothing known: cannot join
    # without blanks, the plain weighted sum, bit for bit (mode: reference relies on it)
    plain = [{"f": np.array([0.2, 0.3])}, {"f": np.array([0.4, 0.1])}]
    assert np.array_equal(weighted(plain, {0: 1 / 9, 1: 8 / 9}, ["f"])["f"],
                          np.zeros(2) + plain[0]["f"] * (1 / 9) + plain[1]["f"] * (8 / 9))


def people(n: int, seed: int = 0):
    """L: distinct names with a city; R: the same people, names lightly corrupted, the city kept."""
    rng = random.Random(seed)
    first = ["anna", "boris", "clara", "dmitri", "elena", "farid", "greta", "hugo", "ines", "jonas", "karin", "lars"]
    last = ["berg", "costa", "dahl", "eriksen", "fischer", "garcia", "holm", "ivanova", "jensen", "klein", "lund",
            "moreau", "nilsen", "olsen", "petrov", "quist", "rossi", "smit", "tanaka", "ulrich"]
    cities = ["oslo", "lyon", "porto", "graz", "turku", "gent", "brno", "cork"]
    names = sorted({f"{rng.choice(first)} {rng.choice(last)} {rng.choice(last)}" for _ in range(4 * n)})[:n]
    city = [rng.choice(cities) for _ in names]
    return names, city


def test_a_blank_column_is_unknown_and_only_an_all_blank_row_is_an_error(tmp_path):
    names, city = people(150)
    lcity = ["" if i % 4 == 0 else c for i, c in enumerate(city)]  # L with blanks: no longer refused
    left = tmp_path / "left.parquet"
    pq.write_table(pa.table({"id": [f"l{i}" for i in range(150)], "name": names, "city": lcity}), left)
    rnames = [n.replace(" ", "  ", 1) for n in names[:60]]
    rcity = [None if i % 3 == 0 else c for i, c in enumerate(city[:60])]  # R with nulls in city
    rnames[5] = ""  # name blank, city known: not an error
    ids = [f"r{i}" for i in range(60)] + ["all_blank"]
    data = write_shards(tmp_path / "r", pa.table({"id": ids, "name": rnames + [" "],
                                                  "city": pa.array(rcity + [None], pa.string())}), 2)
    s = curate.run(curate.Pipeline([AutoFJ(reference=str(left), on=["name", "city"], precision_target=0.8)],
                                   id_column="id"), data, tmp_path / "run", executor="local")
    m = {r["id"]: r for r in curate.load_manifest(tmp_path / "run").to_pylist()}
    assert m["all_blank"]["autofj.error"].startswith("empty_key") and not m["all_blank"]["autofj.matched"]
    assert [i for i, r in m.items() if r["autofj.error"]] == ["all_blank"]
    # rows with a blank city (in R, in L or both) still match on the name
    blank_city = [f"r{i}" for i in range(60) if (i % 3 == 0 or i % 4 == 0) and i != 5]
    assert all(m[i]["autofj.match_id"] == f"l{i[1:]}" for i in blank_city)
    ok = [m[f"r{i}"]["autofj.match_id"] == f"l{i}" for i in range(60) if i != 5]
    assert np.mean(ok) > 0.95
    art = s["stages"]["autofj"]["artifact"]
    assert art["right_rows"] == 61 and art["right_rows_with_a_key"] == 60
    assert art["reference"]["blank_values"] == {"name": 0, "city": 38}


def test_rows_blank_in_a_noise_column_are_never_dropped(tmp_path):
    names, _ = people(200, seed=1)
    rng = random.Random(2)
    junk = ["".join(rng.choice("xyzw") for _ in range(5)) for _ in names]
    left = tmp_path / "left.parquet"
    pq.write_table(pa.table({"id": [f"l{i}" for i in range(200)], "name": names,
                             "junk": ["" if i % 2 else j for i, j in enumerate(junk)]}), left)
    rjunk = ["" if i % 2 == 0 else "qqqq" for i in range(100)]  # blank in half of R, noise in the rest
    data = write_shards(tmp_path / "r", pa.table({"id": [f"r{i}" for i in range(100)], "name": names[:100],
                                                  "junk": rjunk}), 2)
    s = curate.run(curate.Pipeline([AutoFJ(reference=str(left), on=["name", "junk"], precision_target=0.8)],
                                   id_column="id"), data, tmp_path / "run", executor="local")
    art = s["stages"]["autofj"]["artifact"]
    m = curate.load_manifest(tmp_path / "run").to_pydict()
    assert not any(m["autofj.error"])
    assert m["autofj.match_id"] == [f"l{i}" for i in range(100)] and art["expected_matches"] == 100


def test_an_r_row_blank_in_every_column_the_program_uses_is_unmatched_with_that_reason():
    names, city = people(120, seed=3)
    lids = [f"l{i}" for i in range(120)]
    res = autofj.fit(lids, [names], [names[:50]], ["name"], precision_target=0.8, new_entities=True)
    # the same program over two join columns, of which it uses only the name
    prog = dict(res.program, on=["name", "city"], left=dict(res.program["left"]))
    prog["left"]["fingerprint"] = autofj.fingerprint(lids, [names, city])
    m = autofj.Matcher(prog, lids, [names, city], res.ll_counts).match([["", names[1], ""], [city[0], "", ""]])
    assert autofj.REASONS[m.reason[0]] == "blank_program_columns" and m.l[0] == -1
    assert m.l[1] == 1  # blank only in the column the program does not use: matches as usual
    assert m.l[2] == -1


def test_a_reference_row_blank_in_every_join_column_fails_naming_the_row(tmp_path):
    left = tmp_path / "left.parquet"
    pq.write_table(pa.table({"id": ["1", "2", "3"], "a": ["x y", "", "z"], "b": ["u", None, ""]}), left)
    data = write_shards(tmp_path / "r", pa.table({"id": ["x"], "a": ["x y"], "b": ["u"]}), 1)
    with pytest.raises((DataError, curate.RunFailed), match=r"every join column \['a', 'b'\] null or empty: row 1 \(id '2'\)"):
        curate.run(curate.Pipeline([AutoFJ(reference=str(left), on=["a", "b"])], id_column="id"), data,
                   tmp_path / "run", executor="local")


def test_curate_join_prints_counts_estimate_new_entities_and_warnings(tmp_path, capsys):
    right = tmp_path / "right.csv"
    rows = (DATA / "TennisTournament" / "right.csv").read_text(encoding="utf-8").splitlines()
    right.write_text("\n".join(rows + ["9001,", "9002,   "]) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    rc = cli_main(["join", str(DATA / "TennisTournament" / "left.csv"), str(right), "--on", "title",
                   "--out", str(out), "--executor", "local"])
    text = capsys.readouterr().out
    assert rc == 0
    m = curate.load_manifest(out).to_pydict()
    matched = sum(m["autofj.matched"])
    assert f"{len(rows) - 1 + 2} rows: {matched} matched, {len(rows) - 1 - matched} unmatched" in text
    assert "2 errored (empty_key 2)" in text
    art = json.loads((out / "summary.json").read_text())["stages"]["autofj"]["artifact"]
    assert f"estimated precision {art['est_precision']:.3f} ± {art['est_precision_se']:.3f}" in text
    # the interval, and target_at_risk when its lower end is below the target, on the estimate's own line
    line = next(x for x in text.splitlines() if "estimated precision" in x)
    lo, hi = art["est_precision_interval"]
    assert f"interval [{lo:.3f}, {hi:.3f}]" in line
    assert ("target_at_risk" in line) == (lo < 0.9) == any(w.startswith("target_at_risk") for w in art["warnings"])
    # the share of new entities (the many_new_entities warning's) and π0 (no match within reach), each named
    assert f"estimated share of new entities in R (no match in L): {art['new_share']:.1%}" in text
    assert f"no match within reach (new entities and matches too unlike L to find; the precision estimate counts " \
        f"these): {art['new_entity_share']:.1%}" in text
    assert art["new_share"] is not None and art["new_entity_share"] is not None
    assert (out / "report.html").exists() and 'data-section="join"' in (out / "report.html").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["policies"]["matched"]["kept"] == matched  # kept means matched
    # 17 joined rows: the standard error is above 0.05, and the CLI says so with every other warning
    assert any(w.startswith("imprecise_estimate") for w in art["warnings"])
    assert all(f"warning: {w}" in text for w in art["warnings"])
