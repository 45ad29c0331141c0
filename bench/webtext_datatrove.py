"""datatrove 0.10.1's Gopher, C4 and FineWeb filters on the bench corpus (runs in bench/.venv-datatrove; see
bench/webtext.py).

    python bench/webtext_datatrove.py CORPUS.parquet OUT.json --tokenizer ours|spacy [--time-only]

Each filter with its default parameters, one document at a time through `filter()`, once over the corpus:
keep or drop with datatrove's reason per document, C4's cleaned text of the kept ones, and the seconds each
filter took. `--tokenizer ours` hands the filters our word tokenizer and sentence split (testkit's reference,
as a datatrove WordTokenizer); `spacy` leaves datatrove's English default (spaCy's blank English tokenizer).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
from datatrove.data import Document
from datatrove.pipeline.filters import (
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
)
from datatrove.utils.word_tokenizers import WordTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "testkit"))
import webtext_reference as ref


class OurWords(WordTokenizer):
    """Our tokenizer and sentence split, as datatrove's filters call them."""

    def __init__(self):
        super().__init__("ours")
        self._ours = ref.DatatroveWords()

    def word_tokenize(self, text: str) -> list[str]:
        return self._ours.word_tokenize(text)

    def sent_tokenize(self, text: str) -> list[str]:
        return self._ours.sent_tokenize(text)

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return self._ours.span_tokenize(text)


def filters(language) -> dict:
    kw = {} if language is None else {"language": language}
    return {"gopher_quality": GopherQualityFilter(**kw), "gopher_repetition": GopherRepetitionFilter(**kw),
            "c4": C4QualityFilter(**kw), "fineweb": FineWebQualityFilter(**kw)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("out")
    ap.add_argument("--tokenizer", choices=["ours", "spacy"], default="ours")
    a = ap.parse_args()
    t = pq.read_table(a.corpus, columns=["id", "text"])
    ids, texts = t.column("id").to_pylist(), t.column("text").to_pylist()
    out = {}
    for name, f in filters(OurWords() if a.tokenizer == "ours" else None).items():
        keep, reason, cleaned = [], [], {}
        t0 = time.perf_counter()
        for i, text in zip(ids, texts):
            doc = Document(text=text, id=i)
            res = f.filter(doc)
            ok, why = (res if isinstance(res, tuple) else (res, None))
            keep.append(bool(ok))
            reason.append(why)
            if name == "c4" and ok:
                cleaned[i] = doc.text
        out[name] = {"seconds": time.perf_counter() - t0, "keep": keep, "reason": reason,
                     **({"text": cleaned} if name == "c4" else {})}
    Path(a.out).write_text(json.dumps(out))


if __name__ == "__main__":
    main()
