"""Auto-FuzzyJoin end to end: equivalence with `autofj` 0.0.6 (fixtures made offline by
bench/autofj_reference.py), the stage through the engine, multi-column selection, new entities, bad input
and the CLI (docs/methods/autofj.md checks 5, 8 and "Edge cases")."""
from __future__ import annotations

import csv
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
from curate.methods.autofj.stage import AutoFJ
from testkit.helpers import write_shards

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "bench" / "data" / "autofj"
FIXTURE = ROOT / "tests" / "fixtures" / "autofj" / "reference_outputs.json"


def read(task: str, name: str) -> list[list[str]]:
    with open(DATA / task / name, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))[1:]


def task_tables(task: str):
    left, right = read(task, "left.csv"), read(task, "right.csv")
    return [x[0] for x in left], [x[1] for x in left], [x[0] for x in right], [x[1] for x in right]


@pytest.mark.parametrize("task", ["TennisTournament", "BasketballTeam", "Galaxy"])
def test_reference_mode_selects_the_reference_configurations_and_pairs(task):
    ref = json.loads(FIXTURE.read_text())[task]
    lids, lt, rids, rt = task_tables(task)
    res = autofj.fit(lids, [lt], [rt], ["title"], precision_target=0.9)
    got = [(c["function"], c["theta"]) for c in res.program["configs"]]
    assert [f for f, _ in got] == [f for f, _ in ref["configs"]]
    assert np.allclose([t for _, t in got], [t for _, t in ref["configs"]], rtol=0, atol=1e-12)
    pairs = sorted((int(lids[l]), int(rids[i])) for i, l in enumerate(res.join_l) if l >= 0)
    assert pairs == [tuple(p) for p in ref["pairs"]]
    # The saved program, applied without searching, gives the same pairs.
    program = json.loads(json.dumps(res.program))
    m = autofj.Matcher(program, lids, [lt]).match([rt])
    assert np.array_equal(m.l, res.join_l)


def parquet_task(tmp_path: Path, task: str, shards: int = 3) -> tuple[Path, Path]:
    lids, lt, rids, rt = task_tables(task)
    left = tmp_path / "left.parquet"
    pq.write_table(pa.table({"id": lids, "title": lt}), left)
    data = write_shards(tmp_path / "right", pa.table({"id": rids, "title": rt}), shards)
    return left, data


def test_stage_over_shards_gives_the_reference_pairs_and_explains_every_row(tmp_path):
    left, data = parquet_task(tmp_path, "BasketballTeam")
    p = curate.Pipeline([AutoFJ(reference=str(left), on="title", mode="reference")], id_column="id")
    summary = curate.run(p, data, tmp_path / "run", executor="local")
    m = curate.load_manifest(tmp_path / "run").to_pylist()
    ref = json.loads(FIXTURE.read_text())["BasketballTeam"]
    pairs = sorted((int(r["autofj.match_id"]), int(r["id"])) for r in m if r["autofj.matched"])
    assert pairs == [tuple(x) for x in ref["pairs"]]
    for r in m:
        if r["autofj.matched"]:
            assert 0 < r["autofj.est_precision"] <= 1 and "@" in r["autofj.config"] and r["autofj.n_proposals"] >= 1
        else:
            assert r["autofj.reason"] in ("no_candidate", "above_threshold") or r["autofj.reason"].startswith("vetoed ")
    art = summary["stages"]["autofj"]["artifact"]
    assert art["est_precision"] > 0.9 and art["program"]["configs"] and art["expected_matches"] == len(pairs)


def test_search_on_a_sample_applies_to_every_row(tmp_path):
    left, data = parquet_task(tmp_path, "Legislature")
    p = curate.Pipeline([AutoFJ(reference=str(left), on="title", search_sample=80)], id_column="id")
    summary = curate.run(p, data, tmp_path / "run", executor="local")
    art = summary["stages"]["autofj"]["artifact"]
    assert art["search_rows"] == 80 and art["right_rows"] == 216
    m = curate.load_manifest(tmp_path / "run")
    assert m.num_rows == 216 and sum(m.column("autofj.matched").to_pylist()) > 80


def test_null_and_empty_keys_become_per_row_errors(tmp_path):
    left, _ = parquet_task(tmp_path, "TennisTournament")
    _, _, rids, rt = task_tables("TennisTournament")
    titles = [None, "", "   "] + rt
    data = write_shards(tmp_path / "r", pa.table({"id": ["n0", "n1", "n2"] + rids, "title": titles}), 2)
    curate.run(curate.Pipeline([AutoFJ(reference=str(left), on="title")], id_column="id"), data, tmp_path / "run", executor="local")
    m = {r["id"]: r for r in curate.load_manifest(tmp_path / "run").to_pylist()}
    for i in ("n0", "n1", "n2"):
        assert m[i]["autofj.reason"] == "empty_key" and m[i]["autofj.error"].startswith("empty_key")
        assert not m[i]["autofj.matched"]
    assert sum(r["autofj.matched"] for r in m.values()) == 17  # the other rows join as without the bad ones


@pytest.mark.parametrize("ids,titles,expect", [
    (["1", "2", "3"], ["a b", None, "c"], "every join column ['title'] null or empty: row 1 (id '2')"),
    (["1", "1", "3"], ["a b", "c d", "e"], "repeated id(s) in column 'id'"),
    (["1", "2", "3"], ["a b", "a b", "e"], "duplicate record(s) on ['title']: id '2' repeats id '1'"),
])
def test_a_bad_reference_table_fails_before_any_search_naming_the_row(tmp_path, ids, titles, expect):
    left = tmp_path / "left.parquet"
    pq.write_table(pa.table({"id": ids, "title": pa.array(titles, pa.string())}), left)
    data = write_shards(tmp_path / "r", pa.table({"id": ["x"], "title": ["a b"]}), 1)
    with pytest.raises((DataError, curate.RunFailed)) as e:
        curate.run(curate.Pipeline([AutoFJ(reference=str(left), on="title")], id_column="id"), data, tmp_path / "run", executor="local")
    assert expect in str(e.value)


def test_dedupe_reference_keeps_the_first_duplicate(tmp_path):
    left = tmp_path / "left.parquet"
    pq.write_table(pa.table({"id": ["1", "2", "3", "4"], "title": ["new york", "new york", "boston", "paris"]}), left)
    data = write_shards(tmp_path / "r", pa.table({"id": ["x", "y"], "title": ["New York", "Boston"]}), 1)
    s = curate.run(curate.Pipeline([AutoFJ(reference=str(left), on="title", dedupe_reference=True,
                                           precision_target=0.5)], id_column="id"), data, tmp_path / "run", executor="local")
    assert s["stages"]["autofj"]["artifact"]["reference"]["duplicates_dropped"] == 1


def names_with_noise(n: int, seed: int = 0):
    """L: real entity names with a random-noise second column; R: corrupted names, fresh noise."""
    rng = random.Random(seed)
    names = [x[1] for x in read("Country", "left.csv")][:n]

    def noise() -> str:
        return "".join(rng.choice("abcdefghij") for _ in range(6))

    def corrupt(s: str) -> str:
        i = rng.randrange(len(s))
        return s[:i] + s[i + 1:] if rng.random() < 0.5 else s.upper()

    picks = rng.sample(range(n), n // 3)
    return ([str(i) for i in range(n)], [names, [noise() for _ in range(n)]],
            [[corrupt(names[i]) for i in picks], [noise() for _ in picks]], picks)


def test_forward_selection_picks_the_name_column_first_and_noise_only_if_it_pays():
    lids, lcols, rcols, truth = names_with_noise(600)
    res = autofj.fit(lids, lcols, rcols, ["name", "noise"], precision_target=0.8)
    steps = res.program["column_selection"]
    assert list(steps[0]["weights"]) == ["name"] and steps[0]["kept"]  # best single column: the names
    grid = [a / 9 for a in range(1, 9)]
    if len(steps) > 1:  # the step adding noise: weights from the α grid, kept only if P̂·|J| rose
        w = steps[1]["weights"]
        assert any(abs(w["noise"] - (1 - a)) < 1e-12 and abs(w["name"] - a) < 1e-12 for a in grid)
        assert steps[1]["kept"] == (steps[1]["reward"] > steps[0]["reward"])
    kept = [s for s in steps if s["kept"]][-1]
    assert res.program["column_weights"] == kept["weights"]
    hits = [(int(lids[l]) == truth[i]) for i, l in enumerate(res.join_l) if l >= 0]
    assert len(hits) > 100 and np.mean(hits) > 0.8


def test_several_join_columns_run_through_the_stage(tmp_path):
    lids, lcols, rcols, _ = names_with_noise(300, seed=1)
    left = tmp_path / "left.parquet"
    pq.write_table(pa.table({"id": lids, "name": lcols[0], "noise": lcols[1]}), left)
    data = write_shards(tmp_path / "r", pa.table({"id": [f"r{i}" for i in range(len(rcols[0]))],
                                                  "name": rcols[0], "noise": rcols[1]}), 2)
    s = curate.run(curate.Pipeline([AutoFJ(reference=str(left), on=["name", "noise"], precision_target=0.8)],
                                   id_column="id"), data, tmp_path / "run", executor="local")
    assert s["stages"]["autofj"]["artifact"]["program"]["on"] == ["name", "noise"]
    assert sum(curate.load_manifest(tmp_path / "run").column("autofj.matched").to_pylist()) > 50


@pytest.mark.parametrize("task,unmatched", [("Reptile", 819 - 562), ("ShoppingMall", 227 - 159)])
def test_new_entity_tasks_report_the_share_far_beyond_theta(task, unmatched):
    lids, lt, _, rt = task_tables(task)
    res = autofj.fit(lids, [lt], [rt], ["title"])
    far = res.program["search"]["far_beyond_theta_share"]
    assert far is not None and 0 < far < 1
    assert len(rt) - len({g[2] for g in read(task, "gt.csv")}) == unmatched  # the task has new entities


def test_cli_join_reads_csv_and_writes_a_manifest(tmp_path, capsys):
    out = tmp_path / "run"
    rc = cli_main(["join", str(DATA / "TennisTournament" / "left.csv"), str(DATA / "TennisTournament" / "right.csv"),
                   "--on", "title", "--precision-target", "0.9", "--out", str(out), "--executor", "local"])
    assert rc == 0
    m = curate.load_manifest(out).to_pylist()
    ref = json.loads(FIXTURE.read_text())["TennisTournament"]
    assert sorted((int(r["autofj.match_id"]), int(r["id"])) for r in m if r["autofj.matched"]) == \
        [tuple(p) for p in ref["pairs"]]
    assert "estimated precision" in capsys.readouterr().out
    rc = cli_main(["join", str(DATA / "TennisTournament" / "left.csv"), str(DATA / "TennisTournament" / "right.csv"),
                   "--on", "title", "--out", str(tmp_path / "run2"), "--blocking-budget", "5000", "--minhash-lsh",
                   "--executor", "local"])
    prog = json.loads((tmp_path / "run2" / "summary.json").read_text())["stages"]["autofj"]["artifact"]["program"]
    assert rc == 0 and prog["blocking_budget"] == 5000 and prog["minhash_lsh"]["bands"] == 20


def test_config_and_synthetic_builder_run_end_to_end(tmp_path):
    from curate.data.autofj_synth import build

    info = build(tmp_path / "synth", 400, 300, shards=2)
    assert info == {"left": 400, "right": 300, "new_entities": 30}
    pipeline, data = curate.load_config(ROOT / "configs" / "autofj.yaml")
    stage = pipeline.stages[0]
    assert stage.type == "autofj" and data == "data/autofj-synth/right"
    stage.reference = str(tmp_path / "synth" / "left.parquet")
    s = curate.run(pipeline, tmp_path / "synth" / "right", tmp_path / "run", executor="local")
    m = curate.load_manifest(tmp_path / "run")
    truth = dict(zip(*[pq.read_table(tmp_path / "synth" / "right").column(c).to_pylist() for c in ("id", "true_id")]))
    pred = [(r, l) for r, l in zip(m.column("id").to_pylist(), m.column("autofj.match_id").to_pylist()) if l]
    assert s["result"]["kept"] == len(pred) > 150  # the threshold policy keeps the matched rows
    assert np.mean([truth[r] == l for r, l in pred]) > 0.85


@pytest.mark.slow
def test_local_and_ray_executors_give_the_same_manifest(tmp_path, shared_ray):
    left, data = parquet_task(tmp_path, "TennisTournament", shards=3)
    p = curate.Pipeline([AutoFJ(reference=str(left), on="title")], id_column="id")
    curate.run(p, data, tmp_path / "local", executor="local")
    curate.run(p, data, tmp_path / "ray", executor="ray")
    assert curate.load_manifest(tmp_path / "local").equals(curate.load_manifest(tmp_path / "ray"))


def test_a_blocking_budget_runs_through_the_stage_and_is_recorded(tmp_path):
    from curate.data.autofj_synth import build
    from curate.errors import ConfigError

    build(tmp_path / "synth", 3000, 600, shards=2)
    stage = AutoFJ(reference=str(tmp_path / "synth" / "left.parquet"), on="name", blocking_budget=300)
    s = curate.run(curate.Pipeline([stage], id_column="id"), tmp_path / "synth" / "right", tmp_path / "run", executor="local")
    assert s["stages"]["autofj"]["artifact"]["program"]["blocking_budget"] == 300
    m = curate.load_manifest(tmp_path / "run")
    truth = dict(zip(*[pq.read_table(tmp_path / "synth" / "right").column(c).to_pylist() for c in ("id", "true_id")]))
    pred = [(r, l) for r, l in zip(m.column("id").to_pylist(), m.column("autofj.match_id").to_pylist()) if l]
    assert len(pred) > 400 and np.mean([truth[r] == l for r, l in pred]) > 0.85
    # auto stays exact at this size; nonsense fails at plan time
    assert AutoFJ(reference="x", on="name").blocking_budget == "auto"
    with pytest.raises(ConfigError, match="budget"):
        AutoFJ(reference="x", on="name", blocking_budget="lots")


@pytest.mark.parametrize("n_rules, n_rows", [(0, 3), (2, 5), (7, 3), (9, 3)])
def test_negative_rules_ride_in_list_columns_of_the_artifact(n_rules, n_rows):
    from curate.methods.autofj.stage import _rule_columns

    rules = [[f"a{i}", f"b{i}"] for i in range(n_rules)]
    cols = _rule_columns(rules, n_rows)
    assert all(len(c) == n_rows for c in cols.values())
    back = [list(p) for p in zip(cols["rule_a"].flatten().to_pylist(), cols["rule_b"].flatten().to_pylist())]
    assert back == rules


def test_chunked_pair_passes_give_the_same_program_and_counts(monkeypatch):
    from curate.methods.autofj import functions, rules

    lids, lt, _, rt = task_tables("BasketballTeam")
    whole = autofj.fit(lids, [lt], [rt], ["title"])
    for mod in (functions, rules, autofj):
        monkeypatch.setattr(mod, "PAIR_CHUNK", 97)
    chunked = autofj.fit(lids, [lt], [rt], ["title"])
    assert chunked.program["rules"] == whole.program["rules"] and len(whole.program["rules"]) > 0
    assert chunked.program["configs"] == whole.program["configs"]
    assert np.array_equal(chunked.ll_counts, whole.ll_counts) and whole.ll_counts.sum() > 0


def test_every_autofj_parameter_is_a_curate_join_option_under_its_yaml_name():
    import argparse

    from curate.cli import parser
    from curate.methods.autofj import AutoFJ

    sub = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)).choices["join"]
    flags = {o for a in sub._actions for o in a.option_strings}
    for name in AutoFJ.param_names():
        if name not in ("reference", "on", "name"):  # L is the first argument, --on is repeated, name is fixed
            assert "--" + name.replace("_", "-") in flags, name
    args = parser().parse_args(["join", "l.csv", "r.csv", "--on", "t", "--out", "o", "--dedupe-reference",
                                "--precision-target", "0.95", "--blocking-budget", "5000"])
    assert (args.p_dedupe_reference, args.p_precision_target, args.p_blocking_budget) == (True, 0.95, 5000)


def test_a_column_with_one_value_in_all_of_l_is_not_used_in_the_default_mode():
    # Every distance on such a column is the same (slightly negative under idf: θ < 0, so no neighbour is
    # within 2θ), the reference estimate calls any join on it certain (P̂ = 1) and forward selection prefers
    # it to the names. The default mode leaves it out and says so;
    # the reference estimator (mode: reference) keeps the reference's behaviour.
    lids, lcols, rcols, truth = names_with_noise(600)
    left, right = [lcols[0], ["USA"] * len(lids)], [rcols[0], ["USA"] * len(rcols[0])]
    ref = autofj.fit(lids, left, right, ["name", "country"], precision_target=0.8)
    assert ref.program["column_weights"] == {"country": 1.0}  # the bug (θ < 0, P̂ = 1), kept in the reference estimator
    res = autofj.fit(lids, left, right, ["name", "country"], precision_target=0.8, new_entities=True,
                     skip_constant_columns=True)
    assert res.program["column_weights"] == {"name": 1.0}
    assert [w.split(":")[0] for w in res.program["warnings"]][:1] == ["constant_columns"]
    hits = [(int(lids[l]) == truth[i]) for i, l in enumerate(res.join_l) if l >= 0]
    assert len(hits) > 100 and np.mean(hits) > 0.8
    # Blanks aside: a column with one value and some blanks is still constant; nothing usable joins nothing.
    only = autofj.fit(lids, [["USA" if i % 3 else "" for i in range(len(lids))]], [["USA"] * len(rcols[0])],
                      ["country"], precision_target=0.8, new_entities=True, skip_constant_columns=True)
    assert (only.join_l < 0).all() and only.program["column_weights"] == {}


@pytest.mark.parametrize("mode,used", [("default", {"name"}), ("reference", {"country"})])
def test_the_stage_leaves_a_constant_column_out_in_the_default_mode_only(tmp_path, mode, used):
    lids, lcols, rcols, _ = names_with_noise(300, seed=1)
    left = tmp_path / "left.parquet"
    pq.write_table(pa.table({"id": lids, "name": lcols[0], "country": ["USA"] * len(lids)}), left)
    data = write_shards(tmp_path / "r", pa.table({"id": [f"r{i}" for i in range(len(rcols[0]))],
                                                  "name": rcols[0], "country": ["USA"] * len(rcols[0])}), 2)
    s = curate.run(curate.Pipeline([AutoFJ(reference=str(left), on=["name", "country"], precision_target=0.8,
                                           mode=mode)], id_column="id"), data, tmp_path / "run", executor="local")
    art = s["stages"]["autofj"]["artifact"]
    assert set(art["program"]["column_weights"]) == used
    assert any(w.startswith("constant_columns") for w in art["warnings"]) == (mode == "default")
