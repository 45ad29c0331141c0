"""What a newcomer reads in the report: where the rows went (each policy's cut on what reached it), SemDeDup's
near-duplicate groups (a kept row beside the rows dropped as its near-duplicates, groups whose pictures
differ flagged), details as tables rather than JSON, plain drop reasons and human numbers. Checked against
the manifest on small runs the tests build, and on the demo config over real demo rows in headless Chromium.
"""
from __future__ import annotations

import html
import io
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image, ImageDraw

import curate
from curate.config import load_config
from curate.data import demo
from curate.methods.semdedup.policy import SemDeDupPolicy
from curate.methods.semdedup.stage import SemDeDup
from curate.presentation import num
from curate.report import write_report
from testkit.helpers import shuffled_shards, spherical_groups, vector_table, write_shards

ROOT = Path(__file__).resolve().parents[2]


def test_numbers_are_written_for_people_not_in_exponent_notation():
    assert num(80010.3) == "80,010"          # a rate: was 8.001e+04
    assert num(999.99) == "1,000"
    assert num(12.3456) == "12.35"
    assert num(0.5) == "0.5"
    assert num(1234567) == "1,234,567"
    assert "e+" not in num(3.2e7)


# --- the story on a run with a dedup policy and a keep_fraction after it ---------------------------------
def _first_drops(m: dict[str, np.ndarray], policies: list[str]) -> tuple[dict[str, int], int]:
    """Rows each policy dropped first (no earlier policy dropped them, no stage error), and errored rows."""
    alive = m["error"] == None  # noqa: E711
    errored = int((~alive).sum())
    first = {}
    for p in policies:
        gone = alive & (m[f"keep.{p}"] == False)  # noqa: E712
        first[p] = int(gone.sum())
        alive &= ~gone
    return first, errored


def _manifest(run: Path) -> dict[str, np.ndarray]:
    t = curate.load_manifest(run)
    return {c: np.array(t.column(c).to_pylist(), dtype=object) for c in t.column_names}


def _text(page: str) -> str:
    page = re.sub(r"<(style|script)>.*?</\1>", "", page, flags=re.S)
    page = re.sub(r"</?(p|div|td|th|tr|h\d|table|summary|details|section)\b[^>]*>", " ", page)  # blocks apart
    text = re.sub(r"<[^>]+>", "", page)  # inline markup (bold) joins its words

    return re.sub(r"\s+", " ", html.unescape(text))


@pytest.fixture(scope="module")
def vector_run(tmp_path_factory) -> Path:
    ids, x, _, _ = spherical_groups()
    root = tmp_path_factory.mktemp("story")
    data = shuffled_shards(root / "data", vector_table(ids, x), 3, seed=1)
    p = curate.Pipeline([SemDeDup("emb", k=4, niter=20)],
                        [SemDeDupPolicy(epsilon=0.002), curate.KeepFraction("semdedup.dist", 0.9, name="far")],
                        id_column="id")
    curate.run(p, data, root / "run", executor="local")
    write_report(root / "run")
    return root / "run"


def test_the_story_gives_each_policy_its_cut_of_what_reached_it_and_says_fractions_are_of_all_rows(vector_run):
    text = _text((vector_run / "report.html").read_text())
    m = _manifest(vector_run)
    first, errored = _first_drops(m, ["semdedup", "far"])
    total = len(m["id"])
    story = text[text.index("Where the rows went"):text.index("Rows per outcome")]
    assert f"{total:,} rows came in" in story
    assert f"semdedup (semdedup on semdedup.max_sim_prev) removed {first['semdedup']:,} of the {total - errored:,} " \
           "rows that reached it" in story
    reached = total - errored - first["semdedup"]
    share = f"{100 * first['far'] / reached:.0f}%"
    assert f"far (keep_fraction on semdedup.dist) removed {first['far']:,} of the {reached:,} rows that reached it " \
           f"({share})" in story
    assert f"is of all the rows it ranks, not of the survivors: it kept 90% of all {total:,} rows ranked, which " \
           f"removed {share} of what was left" in story
    assert f"{int((m['keep'] == True).sum()):,} rows kept" in story  # noqa: E712
    assert "counted once, under the first policy" in story  # "dropped first here" vs "dropped" explained


def test_details_are_tables_and_the_epsilon_sweep_shows_every_epsilon(vector_run):
    page = (vector_run / "report.html").read_text()
    details = re.findall(r"<details>.*?</details>", page, flags=re.S)
    assert details and not any("<pre>" in d for d in details)
    summary = curate.load_summary(vector_run)
    sweep = summary["policies"]["semdedup"]["epsilon_sweep"]
    policy = next(d for d in details if "policy semdedup:" in d)
    rows = {re.sub(r"<[^>]+>", "", a): b for a, b in
            re.findall(r"<tr><td class=\"l\">([^<]+)</td><td>([\d,]+)</td><td>[\d,]+</td></tr>", policy)}
    assert {k: int(v.replace(",", "")) for k, v in rows.items()} == {k: v["kept"] for k, v in sweep.items()}


def test_drop_reasons_are_plain_words(vector_run):
    text = _text((vector_run / "report.html").read_text())
    assert "a near-duplicate of an earlier row of its cluster" in text
    assert "is below" in text and ", the cut that keeps the 90% of all rows ranked with the highest semdedup.dist" in text
    assert "below cut" not in text  # in the reasons table and in the galleries


class _Groups(HTMLParser):
    """The semdedup section's card groups: [{attrs, cards: [attrs]}]."""

    def __init__(self):
        super().__init__()
        self.groups: list[dict] = []
        self.inside = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.inside = a.get("data-section") == "semdedup"
        elif self.inside and tag == "div" and a.get("class") == "cardgroup":
            self.groups.append({**a, "cards": []})
        elif self.inside and tag == "div" and (a.get("class") or "").startswith("card") and "data-role" in a:
            self.groups[-1]["cards"].append(a)


def _groups(page: str) -> list[dict]:
    p = _Groups()
    p.feed(page)
    return p.groups


def _check_groups(run: Path, policy: str = "semdedup") -> list[dict]:
    """Every group shown: its kept row is kept by the policy, each other row dropped by it, and following
    dup_of from a dropped row through dropped rows ends at the kept one."""
    groups = _groups((run / "report.html").read_text())
    m = _manifest(run)
    at = {i: k for k, i in enumerate(m["id"])}
    for g in groups:
        kept, *dups = g["cards"]
        assert kept["data-role"] == "kept" and m[f"keep.{policy}"][at[kept["data-id"]]] is True
        assert dups and all(d["data-role"] == "dup" for d in dups)
        for d in dups:
            row = at[d["data-id"]]
            assert m[f"keep.{policy}"][row] is False
            while m[f"keep.{policy}"][row] is False:
                row = at[m["semdedup.dup_of"][row]]
            assert m["id"][row] == kept["data-id"]
    return groups


def test_semdedup_shows_kept_rows_beside_their_dropped_near_duplicates(vector_run):
    groups = _check_groups(vector_run)
    assert len(groups) >= 8
    text = _text((vector_run / "report.html").read_text())
    dropped = int((_manifest(vector_run)["keep.semdedup"] == False).sum())  # noqa: E712
    assert f"rows the policy dropped as near-duplicates {dropped:,}" in text


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _picture(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (64, 64), tuple(rng.integers(0, 256, 3).tolist()))
    draw = ImageDraw.Draw(img)
    for _ in range(5):
        x, y = rng.integers(0, 40, 2).tolist()
        draw.rectangle([x, y, x + 24, y + 24], fill=tuple(rng.integers(0, 256, 3).tolist()))
    return img


def test_a_group_whose_pictures_differ_is_flagged_and_one_of_copies_is_not(tmp_path):
    """Identical vectors (as for one generic caption): group `same` holds one picture four times, group `mixed`
    four different pictures. Only `mixed` is flagged; columns no policy reads say so."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=(2 + 30, 16))
    vecs, ids, images = [], [], []
    for g, name in enumerate(("same", "mixed")):
        for i in range(4):
            ids.append(f"{name}{i}")
            vecs.append(base[g])
            images.append(_png(_picture(1 if name == "same" else 10 + i)))
    for i in range(30):
        ids.append(f"other{i}")
        vecs.append(base[2 + i])
        images.append(_png(_picture(100 + i)))
    x = np.array(vecs, np.float32)
    table = vector_table(ids, x).append_column("image", pa.array(images, pa.binary()))
    data = write_shards(tmp_path / "data", table, 2)
    p = curate.Pipeline([SemDeDup("emb", k=2, niter=10)], [SemDeDupPolicy(epsilon=0.01)], id_column="id")
    curate.run(p, data, tmp_path / "run", executor="local")
    write_report(tmp_path / "run")
    groups = {g["cards"][0]["data-id"][:-1]: g for g in _check_groups(tmp_path / "run")}
    assert set(groups) == {"same", "mixed"}
    assert groups["mixed"]["data-flagged"] == "1" and groups["same"]["data-flagged"] == "0"
    assert all(c["data-far"] == "1" for c in groups["mixed"]["cards"][1:])
    page = (tmp_path / "run" / "report.html").read_text()
    blocks = dict(re.findall(r'<div class="score" data-column="([^"]+)">\s*<h3>(.*?)</h3>', page, flags=re.S))
    assert "not used by any policy" in blocks["semdedup.dist"]
    assert "not used by any policy" not in blocks["semdedup.max_sim_prev"]


# --- the demo config over real demo rows, in a browser ---------------------------------------------------
@pytest.fixture(scope="module")
def demo_config_run(tmp_path_factory) -> Path:
    """configs/demo.yaml (MiniLM captions, SemDeDup, DBP, WFPP, ICC) over ~270 real openclipart rows (every 30th
    SVG: templated captions such as "gramastar" repeat with different pictures), fewer clusters."""
    if demo._dpkg_list(demo.SVG_PACKAGE) is None or demo._dpkg_list(demo.PNG_PACKAGE) is None:
        pytest.fail("openclipart-svg / openclipart-png not installed: run `make test` (it installs them)")
    out = tmp_path_factory.mktemp("demo-config")
    demo.build_demo(out / "data", shards=3, svg_files=demo.package_files(demo.SVG_PACKAGE, ".svg")[::30],
                    progress=False)
    pipeline, _ = load_config(ROOT / "configs" / "demo.yaml", ["stages.semdedup.k=2", "stages.dbp.k=4", "export={}"])
    curate.run(pipeline, out / "data", out / "run", executor="local")
    write_report(out / "run")
    return out / "run"


def test_demo_report_in_chromium_tells_where_the_rows_went_shows_semdedup_groups_and_no_raw_json(demo_config_run,
                                                                                                  tmp_path):
    from testkit.browser import find_browser, view

    if find_browser() is None:
        pytest.fail("chromium / chromium-driver not installed: run `make test` (it installs them)")
    sel = ("[data-story]", "[data-section=semdedup] .cardgroup", "[data-section=semdedup] .cardgroup[data-flagged='1']",
           "details pre", "details table")
    v = view(demo_config_run / "report.html", screenshot=tmp_path / "demo.png", selectors=sel)
    assert v.console == [], v.console
    assert v.counts["[data-story]"] == 1
    assert v.counts["details pre"] == 0 and v.counts["details table"] > 0  # details as tables, no JSON
    assert v.counts["[data-section=semdedup] .cardgroup"] >= 3
    assert v.counts["[data-section=semdedup] .cardgroup[data-flagged='1']"] >= 1  # "gramastar": other pictures
    summary = curate.load_summary(demo_config_run)
    policies = list(summary["policies"])
    m = _manifest(demo_config_run)
    order = [c.removeprefix("keep.") for c in curate.load_manifest(demo_config_run).column_names
             if c.startswith("keep.")]
    first, errored = _first_drops(m, order)
    assert first["semdedup"] > 0 and set(order) == set(policies)
    reached = len(m["id"]) - errored
    story = v.text[v.text.index("Where the rows went"):]
    for p in order:
        assert f"{p} ({summary['policies'][p]['type']} on {summary['policies'][p]['column']}) removed " \
               f"{first[p]:,} of the {reached:,} rows that reached it" in story, p
        reached -= first[p]
    assert "not of the survivors" in story
    assert "not among the kept (" not in v.text  # DBP's reasons in plain words
    assert "e+0" not in v.text
    _check_groups(demo_config_run)
