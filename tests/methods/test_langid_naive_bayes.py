"""The batched py3langid backend (curate/methods/langid/naive_bayes.py, kernels/naive_bayes_lid.py) against
py3langid itself on a few hundred varied texts: the same features in the same order, the same three best
languages with the same probabilities, and the same `langid` stage output as py3langid's per-text `rank`."""
from __future__ import annotations

import random
import unicodedata

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from curate.methods.langid import LangID
from curate.methods.langid.detectors import _result
from curate.methods.langid.naive_bayes import NaiveBayes, prepared
from kernels import naive_bayes_lid

langid = pytest.importorskip("py3langid.langid")

SENTENCES = [
    "The committee will publish its annual report on water quality at the end of next month.",
    "Die Stadtverwaltung hat beschlossen, die alte Brücke im kommenden Frühjahr vollständig zu erneuern.",
    "Le conseil municipal a décidé de rénover entièrement la vieille bibliothèque du quartier cet été.",
    "Rada miasta postanowiła całkowicie odnowić starą bibliotekę w dzielnicy jeszcze tego lata.",
    "Городской совет решил полностью отремонтировать старую библиотеку района этим летом.",
    "Το δημοτικό συμβούλιο αποφάσισε να ανακαινίσει πλήρως την παλιά βιβλιοθήκη της γειτονιάς.",
    "市議会は、地区の古い図書館を今年の夏に全面的に改修することを決定しました。",
    "市议会决定今年夏天全面翻修这个街区的旧图书馆，并增加新的阅览室。",
    "시의회는 올여름 동네의 오래된 도서관을 전면적으로 개조하기로 결정했습니다.",
    "قرر المجلس البلدي تجديد المكتبة القديمة في الحي بالكامل هذا الصيف.",
    "מועצת העיר החליטה לשפץ לחלוטין את הספרייה הישנה של השכונה בקיץ הזה.",
    "नगर परिषद ने इस गर्मी में मोहल्ले के पुराने पुस्तकालय का पूरी तरह से नवीनीकरण करने का फैसला किया है।",
    "สภาเมืองตัดสินใจปรับปรุงห้องสมุดเก่าของชุมชนทั้งหมดในฤดูร้อนนี้",
    "def main(argv):\n    for i in range(10):\n        print(f'{i:>4}', argv[i] if i < len(argv) else None)\n",
    "Copyright (C) 1991 Free Software Foundation, Inc. Everyone is permitted to copy and distribute verbatim.",
]
# Blocks of code points to draw random text from: Latin with accents, Greek, Cyrillic, Arabic, Devanagari,
# CJK, Hangul, symbols and emoji, combining marks, control characters.
BLOCKS = [(0x20, 0x7E), (0xC0, 0x17F), (0x370, 0x3FF), (0x400, 0x4FF), (0x600, 0x6FF), (0x900, 0x97F),
          (0x4E00, 0x4FFF), (0xAC00, 0xACFF), (0x2000, 0x206F), (0x1F600, 0x1F64F), (0x300, 0x36F), (0x0, 0x1F)]


def varied_texts(n: int = 300, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    words = [w for s in SENTENCES for w in s.split()]
    texts = ["", " ", "\n\n", "a", "É", "12345", "!!!", "HELLO WORLD, THIS IS SHOUTED TEXT", "ΚΑΛΗΜΈΡΑ ΚΌΣΜΕ",
             unicodedata.normalize("NFD", SENTENCES[2]), "🙂" * 40, "\x00\x01\x02 text",
             " ".join(SENTENCES) * 150]  # ~150 kB
    texts += SENTENCES + [s.upper() for s in SENTENCES]
    while len(texts) < n:
        kind = rng.random()
        if kind < 0.4:  # word salad across languages
            texts.append(" ".join(rng.choice(words) for _ in range(rng.randint(1, 60))))
        elif kind < 0.7:  # random code points from one or two blocks
            blocks = rng.sample(BLOCKS, rng.randint(1, 2))
            texts.append("".join(chr(rng.randint(*rng.choice(blocks))) for _ in range(rng.randint(1, 300))))
        else:  # a sentence cut at a random character, or repeated
            s = rng.choice(SENTENCES)
            texts.append(s[:rng.randint(0, len(s))] if kind < 0.85 else s * rng.randint(2, 40))
    return texts


@pytest.fixture(scope="module")
def reference():
    return langid.LanguageIdentifier.from_model_file(langid.MODEL_FILE, norm_probs=True)


def test_the_kernel_lists_the_features_py3langid_counts_in_its_order(reference):
    nb = NaiveBayes()
    m = nb._model
    data = [prepared(t) for t in varied_texts(120)]
    offsets = np.concatenate(([0], np.cumsum([len(b) for b in data])))
    starts, features, counts = naive_bayes_lid.visits(np.frombuffer(b"".join(data), np.uint8), offsets,
                                                      m.nextmove, m.rowbase, m.out_feat, len(m.weights))
    for i, b in enumerate(data):
        want = langid.visit_counts(reference.tk_nextmove, reference._rowbase, reference.tk_output, b) or {}
        got = dict(zip(features[starts[i]:starts[i + 1]].tolist(), counts[starts[i]:starts[i + 1]].tolist()))
        assert list(got.items()) == list(want.items()), i


def test_every_text_gets_py3langids_languages_and_probabilities(reference):
    texts = varied_texts()
    ours = NaiveBayes().ranked(texts)
    assert len(ours) == len(texts)
    for text, got in zip(texts, ours):
        want = reference.rank(text)[:3]
        assert [c for c, _ in got] == [c for c, _ in want], text[:80]
        np.testing.assert_allclose([p for _, p in got], [p for _, p in want], rtol=0, atol=1e-6)
    exact = sum(got == reference.rank(t)[:3] for t, got in zip(texts, ours))
    assert exact == len(texts)  # the same float32 operations: bit for bit


def test_chunks_give_the_same_results_as_one_batch(monkeypatch):
    texts = varied_texts(80, seed=3)
    whole = NaiveBayes().ranked(texts)
    monkeypatch.setattr("curate.methods.langid.naive_bayes.CHUNK", 50)
    assert NaiveBayes().ranked(texts) == whole


def test_the_stage_reports_what_py3langid_reports(reference):
    texts = [*varied_texts(150, seed=11), None]
    stage = LangID()
    stage.setup(None)
    column = pa.array(texts, pa.string())
    out = stage.score(pa.table({"text": column})).to_pylist()
    letters = pc.match_substring_regex(column, r"\pL").to_pylist()
    assert sum(bool(x) for x in letters) > 100
    for text, has_letter, row in zip(texts, letters, out):
        if text is None:
            assert row["error"] is not None and row["language"] is None
        elif not has_letter:  # the stage answers `und` without asking the identifier
            assert (row["language"], row["confidence"]) == ("und", 0.0)
        else:
            assert (row["language"], row["confidence"], row["second"], row["second_confidence"]) == \
                _result(reference.rank(text)[:3])


def test_the_cached_copy_of_the_model_is_the_model(tmp_path, monkeypatch):
    from curate.methods.langid import naive_bayes

    monkeypatch.setenv("CURATE_CACHE", str(tmp_path / "cache"))
    naive_bayes.load.cache_clear()
    path = naive_bayes.model_file()
    first = naive_bayes.load(path)  # decompressed, and copied to the cache
    folder = naive_bayes.cache_folder(path)
    assert folder.is_relative_to(tmp_path) and (folder / "weights.npy").is_file()
    naive_bayes.load.cache_clear()
    second = naive_bayes.load(path)  # memory-mapped from the copy
    assert isinstance(second.weights.base, np.memmap) and not isinstance(first.weights.base, np.memmap)
    for name in ("weights", "priors", "nextmove", "rowbase", "out_feat"):
        assert np.array_equal(getattr(first, name), getattr(second, name)), name
    assert first.classes == second.classes
    texts = varied_texts(40, seed=5)
    assert NaiveBayes(path).ranked(texts) == [t for t in _with(first, texts)]
    naive_bayes.load.cache_clear()


def test_a_cache_that_cannot_be_written_is_skipped(tmp_path, monkeypatch):
    from curate.methods.langid import naive_bayes

    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("CURATE_CACHE", str(blocked))
    naive_bayes.load.cache_clear()
    model = naive_bayes.load(naive_bayes.model_file())
    assert not isinstance(model.weights.base, np.memmap) and len(model.classes) == len(model.priors)
    naive_bayes.load.cache_clear()


def _with(model, texts):
    nb = NaiveBayes.__new__(NaiveBayes)
    nb._model = model
    return nb.ranked(texts)


def test_the_batch_probabilities_are_the_per_text_ones_bit_for_bit():
    m = NaiveBayes()._model
    data = [prepared(t) for t in varied_texts(200, seed=5)]
    lengths = np.array([len(b) for b in data], np.int64)
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    starts, features, counts = naive_bayes_lid.visits(np.frombuffer(b"".join(data), np.uint8), offsets,
                                                      m.nextmove, m.rowbase, m.out_feat, len(m.weights))
    batch = naive_bayes_lid.probabilities(starts, features, counts, lengths, m.weights, m.priors, m.aliases)
    assert (starts[1:] == starts[:-1]).any() and (starts[1:] > starts[:-1]).sum() > 150  # empty rows and not
    for i in range(len(data)):
        a, b = starts[i], starts[i + 1]
        one = naive_bayes_lid.scores(features[a:b], counts[a:b], int(lengths[i]), m.weights, m.priors, m.aliases)
        assert batch[i].tobytes() == one.tobytes(), i
