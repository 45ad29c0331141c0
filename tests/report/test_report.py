"""The HTML run report: rendered in headless Chromium on a run over real demo rows, and its numbers
checked against the manifest."""
from __future__ import annotations

import base64
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import curate
from curate.cli import main
from curate.data import demo
from curate.layout import manifest_parts
from curate.methods.icc.stage import ICC
from curate.methods.wfpp.stage import WFPP
from curate.report import SECTIONS, write_report
from curate.report.gallery import THUMB_PX
from curate.report.stats import PER_GALLERY, scan_manifest
from testkit.helpers import caption_length, caption_table, write_shards


@pytest.fixture(scope="module")
def demo_subset(tmp_path_factory) -> Path:
    """~280 real openclipart rows (every 30th SVG) plus 4 whose SVG has no title, so some rows error."""
    if demo._dpkg_list(demo.SVG_PACKAGE) is None or demo._dpkg_list(demo.PNG_PACKAGE) is None:
        pytest.fail("openclipart-svg / openclipart-png not installed: run `make test` (it installs them)")
    svgs = demo.package_files(demo.SVG_PACKAGE, ".svg")
    untitled = [f for f in svgs[::8] if demo.parse_svg_metadata(f)[0] is None][:4]
    out = tmp_path_factory.mktemp("demo-subset")
    demo.build_demo(out, shards=3, svg_files=sorted({*svgs[::30], *untitled}), progress=False)
    return out


PIPELINE_POLICIES = ("wfpp", "caption_length", "icc")
DEMO_POLICIES = (curate.KeepFraction("wfpp.score", 0.8), curate.Threshold("caption_length.len", min=8),
                 curate.KeepFraction("icc.score", 0.9))


@pytest.fixture(scope="module")
def demo_run(demo_subset, tmp_path_factory) -> Path:
    """WFPP, ICC (lexicon) and caption length over the subset: three policies, drops and errors."""
    pipeline = curate.Pipeline([WFPP(t=1e-4, min_count=2), ICC(), caption_length], list(DEMO_POLICIES), id_column="id")
    out = tmp_path_factory.mktemp("demo-run")
    curate.run(pipeline, demo_subset, out, executor="local")
    write_report(out)
    return out


def _uris(page: str, cls: str) -> dict[str, str]:
    """The decoded SVG of every <img class=cls>, by the column of its score block."""
    out = {}
    for block in re.findall(r'<div class="score" data-column="([^"]+)">(.*?)</div>\s*</div>', page, re.DOTALL):
        m = re.search(rf'<img class="{cls}" src="data:image/svg\+xml;base64,([^"]+)"', block[1])
        if m:
            out[block[0]] = base64.b64decode(m.group(1)).decode()
    return out


class _Cards(HTMLParser):
    """Gallery cards: outcome -> list of (id text, reason text, has thumbnail)."""

    def __init__(self):
        super().__init__()
        self.cards: dict[str, list[dict]] = {}
        self.outcome, self.card, self.field = None, None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "details" and "data-outcome" in a:
            self.outcome = a["data-outcome"]
            self.cards[self.outcome] = []
        elif tag == "div" and a.get("class") == "card":
            self.card = {"id": "", "why": "", "thumb": None, "text": ""}
            self.cards[self.outcome].append(self.card)
        elif self.card is not None and tag == "img":
            self.card["thumb"] = a["src"]
        elif self.card is not None and tag == "div":
            self.field = a.get("class") or "text"

    def handle_data(self, data):
        if self.card is not None and self.field in ("id", "why", "text"):
            self.card[self.field] += data

    def handle_endtag(self, tag):
        if tag == "div":
            self.field = None
        elif tag == "details":
            self.card = None


def _cards(page: str) -> dict[str, list[dict]]:
    p = _Cards()
    p.feed(page)
    return p.cards


# --- the page in a real browser ---------------------------------------------------------------------
def test_demo_report_loads_in_headless_chromium_with_every_section_and_no_console_errors(demo_run, tmp_path):
    from testkit.browser import find_browser, view

    if find_browser() is None:
        pytest.fail("chromium / chromium-driver not installed: run `make test` (it installs them)")
    shot = tmp_path / "report.png"
    v = view(demo_run / "report.html", screenshot=shot,
             selectors=("img.hist", "img.sweep", "details.gallery", ".card img", "section"))
    assert v.console == [], v.console
    assert v.sections == list(SECTIONS)
    assert v.broken_images == 0
    floats = [f.name for f in manifest_parts(demo_run)[0].schema()
              if pa.types.is_floating(f.type)]
    assert v.counts["img.hist"] == v.counts["img.sweep"] == len(floats) >= 3
    summary = curate.load_summary(demo_run)
    stats = scan_manifest(manifest_parts(demo_run))
    # kept, a gallery per dropping policy, one per erroring stage
    assert v.counts["details.gallery"] == len(stats.outcomes) == 1 + len(summary["policies"]) + 2
    assert v.counts[".card img"] >= 3 * 4
    from PIL import Image

    with Image.open(shot) as im:  # a full-page capture, not a blank window
        assert im.height > 2000 and len(set(im.convert("L").resize((64, 256)).getdata())) > 20


def test_the_console_check_catches_a_script_error(demo_run, tmp_path):
    from testkit.browser import find_browser, view

    if find_browser() is None:
        pytest.fail("chromium / chromium-driver not installed: run `make test` (it installs them)")
    broken = tmp_path / "broken.html"
    page = (demo_run / "report.html").read_text()
    broken.write_text(page.replace("</body>", "<script>undefinedFunction();</script></body>"))
    v = view(broken)
    assert any("undefinedFunction" in e["message"] for e in v.console)


# --- the numbers on the page ------------------------------------------------------------------------
def test_outcome_counts_match_the_manifest_and_the_summary(demo_run):
    m = curate.load_manifest(demo_run)
    summary = curate.load_summary(demo_run)
    stats = scan_manifest(manifest_parts(demo_run))
    r = summary["result"]
    assert stats.outcomes["kept"] == r["kept"]
    assert sum(v for k, v in stats.outcomes.items() if k.startswith("dropped: ")) == r["dropped"] > 0
    assert sum(v for k, v in stats.outcomes.items() if k.startswith("errored: ")) == r["errored"] > 0
    page = (demo_run / "report.html").read_text()
    assert re.findall(r'data-policy="([^"]+)"', page) == list(PIPELINE_POLICIES)  # not summary.json's sorted order
    assert re.findall(r'data-stage="([^"]+)"', page) == ["wfpp", "icc", "caption_length"]
    # the first dropping policy in pipeline order (not summary.json's sorted order), from keep.<policy>
    seen = np.zeros(m.num_rows, bool) | pc.is_valid(m.column("error")).to_numpy(zero_copy_only=False)
    for name in PIPELINE_POLICIES:
        dropped = pc.fill_null(pc.invert(m.column(f"keep.{name}")), False).to_numpy(zero_copy_only=False)
        assert stats.outcomes.get(f"dropped: {name}", 0) == int((dropped & ~seen).sum())
        seen |= dropped


def test_histograms_count_every_valid_score_and_mark_each_policy_cut(demo_run):
    m = curate.load_manifest(demo_run)
    summary = curate.load_summary(demo_run)
    stats = scan_manifest(manifest_parts(demo_run))
    for col, s in stats.scores.items():
        v = np.asarray(m.column(col).to_numpy(zero_copy_only=False), np.float64)
        finite = v[np.isfinite(v)]
        counts, edges = s.plot_hist()
        assert counts.sum() == s.valid == len(finite)
        assert edges[0] == finite.min() and edges[-1] == finite.max()
    hists = _uris((demo_run / "report.html").read_text(), "hist")
    wfpp = summary["policies"]["wfpp"]
    assert f"wfpp cut {wfpp['cut']:.4g}" in hists["wfpp.score"]
    assert f"icc cut {summary['policies']['icc']['cut']:.4g}" in hists["icc.score"]


def test_threshold_sweep_equals_an_exact_count_at_every_bin_edge(demo_run):
    m = curate.load_manifest(demo_run)
    stats = scan_manifest(manifest_parts(demo_run))
    s = stats.scores["wfpp.score"]
    v = np.asarray(m.column("wfpp.score").to_numpy(zero_copy_only=False), np.float64)
    v = v[np.isfinite(v)]
    t, kept = s.sweep(keep_above=True)
    assert np.array_equal(kept[:-1], [(v >= x).sum() for x in t[:-1]])
    t, kept = s.sweep(keep_above=False)
    assert np.array_equal(kept[1:-1], [(v < x).sum() for x in t[1:-1]])
    # the policy's cut is the score of its last kept row: a threshold there keeps the same rows, up to ties
    policy = curate.load_summary(demo_run)["policies"]["wfpp"]
    assert (v > policy["cut"]).sum() <= policy["kept"] <= (v >= policy["cut"]).sum()


def test_galleries_show_real_thumbnails_and_each_rows_own_reason(demo_run):
    page = (demo_run / "report.html").read_text()
    cards = _cards(page)
    m = curate.load_manifest(demo_run).to_pylist()
    by_id = {r["id"]: r for r in m}
    data = pq.read_table(curate.load_summary(demo_run)["data"], columns=["id", "caption"]).to_pylist()
    caption = {r["id"]: r["caption"] for r in data}
    stats = scan_manifest(manifest_parts(demo_run))
    assert list(cards) == list(stats.outcomes)  # kept, then drops in pipeline order, then errors
    assert [o for o in cards if o.startswith("dropped: ")] == [f"dropped: {p}" for p in PIPELINE_POLICIES]
    import io

    from PIL import Image

    for outcome, rows in cards.items():
        assert 0 < len(rows) <= PER_GALLERY
        for card in rows:
            row = by_id[card["id"].split(" · ")[0]]
            if outcome == "kept":
                assert row["keep"] and not card["why"]
            elif outcome.startswith("dropped: "):
                policy = outcome.removeprefix("dropped: ")
                decider = next(p for p in DEMO_POLICIES if p.name == policy)
                # the row's own reason, in its policy's plain words where it has a presenter (numbers kept)
                words = decider.presenter.reason(decider, row["drop_reason"]) if decider.presenter else row["drop_reason"]
                assert not row["keep"] and card["why"] == words
                cut = re.search(r" cut (\S+?),? ", row["drop_reason"])
                assert cut is None or cut.group(1) in words  # the wording keeps the row's numbers
                earlier = PIPELINE_POLICIES[:PIPELINE_POLICIES.index(policy)]
                assert row[f"keep.{policy}"] is False and all(row[f"keep.{q}"] for q in earlier)
            else:
                assert card["why"] == row["error"]
            text = caption[row["id"]]
            assert card["text"] == (text if text is not None else "(null)")
            assert card["thumb"] and card["thumb"].startswith("data:image/webp;base64,")
            with Image.open(io.BytesIO(base64.b64decode(card["thumb"].split(",", 1)[1]))) as im:
                assert max(im.size) <= THUMB_PX


def test_same_run_renders_the_same_sample_and_a_seed_changes_it(demo_run, tmp_path):
    again = write_report(demo_run, tmp_path / "again.html")
    other = write_report(demo_run, tmp_path / "other.html", seed=7)
    def ids(p):
        return [c["id"] for rows in _cards(p.read_text()).values() for c in rows]

    assert ids(again) == ids(demo_run / "report.html")
    assert ids(other) != ids(again)


# --- other data, and data that went away -----------------------------------------------------------
def test_text_only_run_shows_snippets_of_the_first_string_column(tmp_path):
    table = caption_table(120).rename_columns(["id", "body"])
    data = write_shards(tmp_path / "data", table, 2)
    length = curate.stage(inputs=["body"], outputs={"len": pa.float64()}, name="body_len")(
        lambda b: {"len": pc.cast(pc.utf8_length(b.column("body")), pa.float64())})
    p = curate.Pipeline([length], [curate.TopK("body_len.len", 60)], id_column="id")
    curate.run(p, data, tmp_path / "run", executor="local")
    page = write_report(tmp_path / "run").read_text()
    cards = _cards(page)
    body = dict(zip(table.column("id").to_pylist(), table.column("body").to_pylist()))
    assert set(cards) == {"kept", "dropped: body_len"}
    for rows in cards.values():
        for card in rows:
            assert card["thumb"] is None and card["text"] == body[card["id"].split(" · ")[0]]
    assert "body_len cut" in _uris(page, "hist")["body_len.len"]
    assert 'data-section="dedup"' not in page and 'data-section="join"' not in page  # no stage presents itself


def test_changed_or_missing_input_shards_are_named_not_shown(demo_run, demo_subset, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(demo_run, copy)
    summary = curate.load_summary(copy)
    moved = tmp_path / "data"
    shutil.copytree(demo_subset, moved)
    first = min(moved.glob("part-*.parquet"))
    t = pq.read_table(first)
    pq.write_table(t.slice(1).append_column("x", pa.array([1] * (t.num_rows - 1))), first)  # rows shifted
    import json

    from curate.storage import seal

    summary["data"] = str(moved)  # (re-sealed: an edit alone is refused as damage)
    (copy / "summary.json").write_text(json.dumps(seal(summary)))
    page = write_report(copy).read_text()
    assert f"shard {first.name} changed since the run" in page
    summary["data"] = str(tmp_path / "gone")
    (copy / "summary.json").write_text(json.dumps(seal(summary)))
    page = write_report(copy).read_text()
    assert "input data not readable here" in page and 'data-section="galleries"' in page


def test_undecodable_image_bytes_get_a_note_not_a_crash(tmp_path):
    table = caption_table(40).append_column("image", pa.array([b"not a png"] * 40, pa.binary()))
    data = write_shards(tmp_path / "data", table, 2)
    curate.run(curate.Pipeline([caption_length], [curate.Threshold("caption_length.len", min=10)], id_column="id"),
               data, tmp_path / "run", executor="local")
    page = write_report(tmp_path / "run").read_text()
    assert "image cannot be decoded (UnidentifiedImageError)" in page
    assert "no float score columns" in page  # caption_length.len is an integer: nothing to histogram


def test_text_that_is_not_utf8_is_shown_with_replacement_characters_and_the_run_exits_0(tmp_path, capsys):
    """Issue 27, fault 2: such rows are per-row errors in the manifest; the report once crashed on them."""
    raw = pa.array([b"a red car", b"bad \xff\xfe text", b"a blue boat"] * 10, pa.binary())
    text = raw.view(pa.string())  # (Parquet writers let such bytes through as text)
    (tmp_path / "data").mkdir()
    pq.write_table(pa.table({"id": [f"r{i}" for i in range(30)], "caption": text}), tmp_path / "data" / "p.parquet")
    config = tmp_path / "c.yaml"
    config.write_text("id_column: id\nstages:\n  - type: wfpp\n    text_column: caption\n    min_count: 1\n"
                      "policies:\n  - type: keep_fraction\n    column: wfpp.score\n    fraction: 0.5\n")
    rc = main(["run", str(config), "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"),
               "--executor", "local"])
    assert rc == 0, capsys.readouterr().err
    cards = _cards((tmp_path / "run" / "report.html").read_text())
    assert [c["text"] for c in cards["errored: wfpp"]] and \
        all(c["text"] == "bad \ufffd\ufffd text" for c in cards["errored: wfpp"])
    assert curate.load_summary(tmp_path / "run")["stages"]["wfpp"]["errors"] == {"invalid_utf8": 10}


def test_report_refuses_a_directory_that_is_not_a_finished_run(tmp_path):
    with pytest.raises(curate.CurateError, match="no summary.json"):
        write_report(tmp_path)


# --- the command line -------------------------------------------------------------------------------
def test_curate_run_writes_the_report_and_curate_report_rewrites_it(tmp_path, capsys):
    data = write_shards(tmp_path / "data", caption_table(100), 2)
    config = tmp_path / "c.yaml"
    config.write_text("name: rep\nid_column: id\nstages:\n  - type: wfpp\n    t: 1.0e-4\n    min_count: 2\n"
                      "policies:\n  - type: keep_fraction\n    column: wfpp.score\n    fraction: 0.5\n")
    assert main(["run", str(config), "--data", str(data), "--out", str(tmp_path / "run"), "--executor", "local"]) == 0
    report = tmp_path / "run" / "report.html"
    assert f"report:   {report}" in capsys.readouterr().out and 'id="scores"' in report.read_text()
    report.unlink()
    assert main(["report", str(tmp_path / "run")]) == 0
    assert report.exists()
    assert main(["report", str(tmp_path / "run"), "--out", str(tmp_path / "x.html")]) == 0
    assert (tmp_path / "x.html").read_text().count("<section") == len(SECTIONS)
    assert main(["report", str(tmp_path / "nothing")]) == 1
