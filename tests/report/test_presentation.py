"""A stage or policy presents itself (curate/presentation.py): the report renders sections it knows nothing
about, a renamed output still shows, and report/ and cli.py name no method's columns."""
from __future__ import annotations

import ast
import inspect
import io
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from PIL import Image, ImageDraw

import curate
from curate import registry
from curate.cli import main
from curate.methods.dedup import Dedup, ImageHash
from curate.policy import Threshold
from curate.presentation import (
    ID,
    OUTCOME,
    ROW,
    SHARD,
    Card,
    CardGroup,
    Details,
    Facts,
    Gallery,
    Heading,
    Histogram,
    LineChart,
    Part,
    Presenter,
    Table,
    Text,
)
from curate.report import SECTIONS, write_report
from curate.report.blocks import sections
from curate.report.view import RunDirectory, presenters
from curate.stage import Stage
from testkit.helpers import caption_table, write_shards

ROOT = Path(__file__).resolve().parents[2]
# Output names that are also the engine's or the front door's own words: `error` (every stage's error column,
# added by the engine), `config` (summary.json's pipeline config, `curate run CONFIG`), `bytes` (`curate gc`),
# `text` (a gallery card's text), `lines` (the CLI's and the page's printed lines), `count` (a tally), `format`
# (the dataset's shard format, summary.json's `format`).
GENERIC = {"error", "config", "bytes", "text", "lines", "count", "format", "item", "ngrams"}
# Arguments a stage needs to be built beyond placeholders for its required ones (one build per variant).
BUILDS = {"embed": [{"model": "ViT-B-32", "random_init": True, "modality": m} for m in ("text", "image")],
          "decontaminate": [{"benchmarks": ["bench.jsonl"], "remove": m} for m in ("row", "span")],
          # a head's outputs are its `names`; the weights file must exist but is not read for them
          "head": [{"names": ["aesthetic", "nsfw"], "weights": __file__}]}


# --- report/ and cli.py hold no method's column names ---------------------------------------------------
def _outputs() -> dict[str, set[str]]:
    """Every registered stage's output names (stages built with placeholder required arguments)."""
    out: dict[str, set[str]] = {}
    for type_name, cls in registry.types("stage", installed_only=True).items():
        required = {k: "x" for k, s in cls.param_specs().items() if s.default is inspect.Parameter.empty}
        for extra in BUILDS.get(type_name, [{}]):
            try:
                outputs = cls(**{**required, **extra}).outputs
            except curate.CurateError as e:
                pytest.fail(f"stage {type_name} cannot be built to list its outputs (add it to BUILDS): {e}")
            for name in outputs:
                out.setdefault(name, set()).add(type_name)
    return out


def _strings(path: Path) -> set[str]:
    """The string constants of a Python file, f-strings' literal pieces included."""
    return {n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant)
            and isinstance(n.value, str)}


def test_report_and_cli_name_no_method_output_column():
    outputs = _outputs()
    assert {"matched", "component", "dup_of", "hamming", "jaccard"} <= set(outputs)  # the scan sees the methods
    files = [*sorted((ROOT / "curate" / "report").glob("*.py")), ROOT / "curate" / "cli.py"]
    found = []
    for f in files:
        for s in _strings(f):
            for name, types in outputs.items():
                # the name alone (in a list of columns), after a stage's type, or after `{stage name}` in an f-string
                if name not in GENERIC and s in (name, f".{name}", *[f"{t}.{name}" for t in types]):
                    found.append(f"{f.relative_to(ROOT)}: {s!r} (an output of {', '.join(sorted(types))})")
    template = (ROOT / "curate" / "report" / "page.html.j2").read_text()
    used = {w for e in re.findall(r"{[{%](.*?)[}%]}", template, re.S) for w in re.findall(r"\.(\w+)|'(\w+)'", e)}
    found += [f"page.html.j2: {w}" for pair in used for w in pair if w in outputs and w not in GENERIC]
    assert not found, "method columns named outside their method (a presenter should show them):\n" + "\n".join(found)


def test_the_scan_catches_a_column_named_in_the_report(tmp_path):
    leak = tmp_path / "leak.py"
    leak.write_text('COLUMNS = ("component", "size")\nm = f"{name}.dup_of"\n')
    outputs = _outputs()
    assert {s for s in _strings(leak) if s in outputs or s.lstrip(".") in outputs} == {"component", "size", ".dup_of"}


# --- a section the report knows nothing about ------------------------------------------------------------
class Loudness(Presenter):
    id = "loudness"
    title = "Loudness <of captions>"

    def section(self, run, members):
        (stage,) = members
        n = pa.concat_tables(run.manifest([ID, SHARD, ROW, OUTCOME, stage.column("n")]))
        lengths = n.column(stage.column("n")).to_numpy()
        longest = int(np.argmax(lengths))
        card = Card(n.column(SHARD)[longest].as_py(), n.column(ROW)[longest].as_py(), n.column(ID)[longest].as_py(),
                    [f"n {lengths[longest]}"], highlight=True, attrs={"role": "longest"})
        shortest = int(np.argmin(lengths))  # its words missing from the longest caption marked
        other = Card(n.column(SHARD)[shortest].as_py(), n.column(ROW)[shortest].as_py(), n.column(ID)[shortest].as_py(),
                     attrs={"role": "shortest"}, compare_with=card.id)
        counts, edges = np.histogram(lengths, 10)
        return [Heading(f"stage {stage.name}"), Text("the **longest** caption <b>wins</b>"),
                Facts([("rows", len(lengths), "rows"), ("outcomes", ", ".join(sorted(run.outcomes())), "outcomes")]),
                Details("all lengths", [Table(["id", "n"], [[i, int(v)] for i, v in
                                                              zip(n.column(ID).to_pylist(), lengths)])]),
                Histogram(stage.column("n"), {"all": counts}, edges, caption="lengths"),
                LineChart("rows up to n", "n", "rows", {"rows": (np.sort(lengths).tolist(), list(range(len(lengths))))},
                          [("loud", "cut", 20.0)], alt="rows up to each length"),
                Part([Gallery([CardGroup("the longest", [card, other], {"group": "longest"})])], {"loud": stage.name})]

    def lines(self, run, members):
        return [f"  loudest of {m.name}: {max(pc.max(t.column(m.column('n'))).as_py() for t in run.manifest([m.column('n')]))}"
                for m in members]


class Loud(Stage):
    type = "loud"
    presenter = Loudness()

    def __init__(self, text_column: str = "caption", name: str | None = None):
        super().__init__(name)
        self.text_column = text_column

    @property
    def inputs(self):
        return (self.text_column,)

    @property
    def outputs(self):
        return {"n": pa.int64()}

    def score(self, batch):
        return pa.table({"n": pc.cast(pc.utf8_length(batch.column(self.text_column)), pa.int64())})


class CutSays(Presenter):
    id = "cut"
    title = "Cut"

    def section(self, run, members):
        return [Text(f"policy {p.name} keeps {p.column} >= {p.min}") for p in members]

    def lines(self, run, members):
        return [f"  policy {p.name} cut at {p.min}" for p in members]


class SayingThreshold(Threshold):
    presenter = CutSays()


@pytest.fixture(scope="module")
def loud_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("loud")
    table = caption_table(60)
    data = write_shards(root / "data", table, 2)
    curate.run(curate.Pipeline([Loud(name="shout")], [SayingThreshold("shout.n", min=20.0, name="long")], id_column="id"),
               data, root / "run", executor="local")
    return root / "run", table


class _Marks(HTMLParser):
    """Sections in order, and the text, data attributes and images inside the `loudness` section."""

    def __init__(self):
        super().__init__()
        self.sections, self.nav, self.text, self.attrs, self.imgs, self.bold, self.marked = [], [], "", [], [], [], []
        self.inside = self.in_nav = self.in_b = self.in_mark = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a["id"])
            self.inside = a["id"] == "loudness"
        self.in_nav = tag == "nav" or self.in_nav
        if self.in_nav and tag == "a":
            self.nav.append(a["href"].lstrip("#"))
        if self.inside:
            self.text += " "  # elements apart, as a reader sees them
            self.attrs += [(k, v) for k, v in attrs if k.startswith("data-")]
            self.imgs += [a.get("alt")] if tag == "img" else []
            self.in_b = tag == "b"
            self.in_mark = tag == "mark"

    def handle_endtag(self, tag):
        self.inside = self.inside and tag != "section"
        self.in_nav = self.in_nav and tag != "nav"
        self.in_b = self.in_b and tag != "b"
        self.in_mark = self.in_mark and tag != "mark"

    def handle_data(self, data):
        if self.inside:
            self.text += data
            if self.in_b:
                self.bold.append(data)
            if self.in_mark:
                self.marked += data.split()


def test_a_section_the_report_knows_nothing_about_is_rendered_from_its_blocks(loud_run):
    run, table = loud_run
    page = _Marks()
    page.feed(write_report(run).read_text())
    assert page.sections == [*SECTIONS[:3], "loudness", "cut", *SECTIONS[3:]] == page.nav
    text = " ".join(page.text.split())
    assert "Loudness <of captions>" in text and "the longest caption <b>wins</b>" in text and page.bold == ["longest"]
    m = curate.load_manifest(run).to_pylist()
    lengths = {r["id"]: r["shout.n"] for r in m}
    longest = max(lengths, key=lambda i: (lengths[i], -list(lengths).index(i)))
    caption = dict(zip(table.column("id").to_pylist(), table.column("caption").to_pylist()))
    assert f"{caption[longest]} n {lengths[longest]} {longest} · " in text  # the card shows the row's own caption, from its shard
    assert ("data-k", "rows") in page.attrs and f"rows {len(m)} outcomes dropped: long, kept" in text
    assert ("data-loud", "shout") in page.attrs and ("data-role", "longest") in page.attrs
    assert page.imgs == ["histogram of shout.n", "rows up to each length"]  # text rows: no thumbnail
    shortest = min(lengths, key=lambda i: (lengths[i], list(lengths).index(i)))
    short_words, long_words = caption[shortest].split(), caption[longest].split()
    assert {w for w in short_words if w not in long_words} <= set(page.marked) <= set(short_words)
    assert page.marked  # (the generated captions differ)
    assert "<p>policy long keeps shout.n &gt;= 20.0</p>" in write_report(run).read_text()  # escaped


def test_cli_prints_what_stages_and_policies_present(loud_run, capsys):
    run, _ = loud_run
    assert main(["summary", str(run)]) == 0
    out = capsys.readouterr().out
    longest = max(r["shout.n"] for r in curate.load_manifest(run).to_pylist())
    assert f"  loudest of shout: {longest}\n  policy long cut at 20.0\n" in out
    assert out.index("policy long (threshold)") < out.index("loudest of shout") < out.index("manifest:")


def test_a_class_that_cannot_be_loaded_is_named_and_the_rest_still_renders(loud_run):
    run, _ = loud_run
    summary = curate.load_summary(run)
    summary["stages"]["shout"]["class"] = "no_such_module_here:Loud"
    found, problems = presenters(RunDirectory(run, summary))
    assert [type(p) for p, _ in found] == [CutSays]
    assert problems == ["stage shout: its own section cannot be shown here (ModuleNotFoundError: No module named "
                        "'no_such_module_here')"]
    del summary["policies"]["long"]["class"]  # a run written before presenters: the generic tables only
    own, _ = sections(RunDirectory(run, summary), set(SECTIONS))
    assert own == []


# --- a renamed output still shows ------------------------------------------------------------------------
class DistanceHash(ImageHash):
    """An image_hash whose similarity column is renamed."""

    similarity_name = "bits_apart"


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def test_a_stage_subclass_with_a_renamed_output_still_renders_its_dedup_section(tmp_path):
    pics = {}
    for k in range(4):
        img = Image.new("RGB", (64, 64), (40 * k, 200 - 40 * k, 90))
        ImageDraw.Draw(img).ellipse([8 + 6 * k, 8, 40 + 4 * k, 50], fill=(250, 250, 10 * k))
        pics[f"p{k}"] = _png(img)
        marked = img.copy()
        ImageDraw.Draw(marked).rectangle([58, 58, 62, 62], fill=(0, 0, 0))
        pics[f"p{k}_marked"] = _png(marked)
    t = pa.table({"id": list(pics), "image": pa.array(list(pics.values()), pa.binary())})
    data = write_shards(tmp_path / "data", t, 2)
    stage = DistanceHash(radius=8, name="near")
    assert "bits_apart" in stage.outputs and "hamming" not in stage.outputs
    curate.run(curate.Pipeline([stage], [Dedup(column="near.component")], id_column="id"), data, tmp_path / "run",
               executor="local")
    rows = {r["id"]: r for r in curate.load_manifest(tmp_path / "run").to_pylist()}
    dups = {i: r["near.bits_apart"] for i, r in rows.items() if r["near.dup_of"] is not None}
    assert len(dups) == 4 and max(dups.values()) > 0
    page = write_report(tmp_path / "run").read_text()
    section = page[page.index('<section id="dedup"'):]
    section = section[:section.index("</section>")]
    assert 'data-dedup="near"' in section and "least similar merged row (bits_apart)" in section
    assert f'<td data-k="weakest">{max(dups.values()):g}</td>' in section
    shown = dict(re.findall(r'data-id="([^"]+)" data-role="dup" data-sim="([^"]+)"', section))
    assert shown and {i: float(v) for i, v in shown.items()} == {i: dups[i] for i in shown}
    assert "hamming" not in section


def test_an_autofj_stage_under_another_name_presents_itself_in_the_report_and_the_cli(tmp_path, capsys):
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    from curate.methods.autofj import AutoFJ

    task = ROOT / "bench" / "data" / "autofj" / "TennisTournament"
    strings = pcsv.ConvertOptions(column_types={"id": pa.string(), "title": pa.string()})
    pq.write_table(pcsv.read_csv(task / "left.csv", convert_options=strings), tmp_path / "left.parquet")
    data = write_shards(tmp_path / "right", pcsv.read_csv(task / "right.csv", convert_options=strings), 2)
    stage = AutoFJ(reference=str(tmp_path / "left.parquet"), on="title", name="link")
    curate.run(curate.Pipeline([stage], id_column="id"), data, tmp_path / "run", executor="local")
    m = curate.load_manifest(tmp_path / "run").to_pylist()
    matched = sum(r["link.matched"] for r in m)
    assert main(["summary", str(tmp_path / "run")]) == 0
    assert f"link: {len(m)} rows: {matched} matched" in capsys.readouterr().out
    page = write_report(tmp_path / "run").read_text()
    section = page[page.index('<section id="join"'):]
    section = section[:section.index("</section>")]
    assert "stage link (Auto-FuzzyJoin)" in section and "no matches" not in section
    shown = re.findall(r'<tr><td class="l">([^<]+)</td><td class="l">[^<]*</td><td class="l">([^<]+)</td>', section)
    pairs = {(r["id"], r["link.match_id"]) for r in m if r["link.matched"]}
    assert shown and set(shown) <= pairs
