"""C4's sentence count in one pass (kernels/textwords.py `sentences_in`, used by kernels/c4lines.py) against
the two-pass reference (`count_sentences`: list the tokens with `tokenize_span`, then apply the rule), on
hand-made lines and arbitrary text; and the `c4` stage's cleaned text and counts against a per-line replay
with the reference."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curate.methods.webtext import C4
from curate.methods.webtext.chars import tables
from kernels.textwords import count_sentences, sentences_in

LINES = ["", " ", ".", "...", "Hello.", "Hello. World", "Hello... world! Is it? yes.", "a.b.c. d", "\"Quoted.\" Next",
         "Dr. Smith went home. He slept.", "x ... y", "(a) b. (c) d.", "End.)", "¿Qué? ¡Sí! Bien.", "Ok.. . . ok",
         "日本語。次の文。", "1. 2. 3.", "— dash. — again", "word.word. Word", "tab\tsep.\tNext.", "!!! ??? ...",
         "e\u0301cole. Ecole.", "'Single.' 'Another.'", "mid.dle dots... Then"]


def reference(text: str) -> int:
    flags, _ = tables()
    data = np.frombuffer(text.encode(), np.uint8)
    return count_sentences(data, 0, len(data), flags, np.empty(2 * len(data) + 2, np.int32))


def one_pass(text: str) -> int:
    flags, _ = tables()
    data = np.frombuffer(text.encode(), np.uint8)
    return sentences_in(data, 0, len(data), flags)


def test_hand_made_lines_count_as_the_reference_counts():
    got = [one_pass(t) for t in LINES]
    assert got == [reference(t) for t in LINES]
    assert got[:6] == [0, 0, 1, 1, 1, 2]  # the rule itself: a new sentence after terminal punctuation


ALPHABET = st.sampled_from(list("ab Z.!?,;:'\"()[]-…。！？¿¡ \t1é") + ["e\u0301", "日", "…", "...", "?!"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ALPHABET, max_size=40).map("".join))
def test_arbitrary_text_counts_as_the_reference_counts(text):
    assert one_pass(text) == reference(text)


def test_the_c4_stage_counts_the_sentences_of_its_kept_lines():
    docs = ["First line here is fine. Second sentence too.\nshort\nAnother good line with words! Yes it is.",
            "Cookies: this site uses cookies to work.\nA proper sentence with enough words. And one more?",
            "Citation [12] kept line has words. More text here.\nno punct at all\n\u2028Unicode line ends here.",
            "", "One. Two. Three. Four words in this line.", "lorem ipsum dolor sit amet, consectetur."]
    out = C4().score(pa.table({"text": pa.array(docs, pa.string())})).to_pylist()
    cleaned = [r["text"] for r in out]
    assert cleaned[0] == "First line here is fine. Second sentence too.\nAnother good line with words! Yes it is."
    assert [r["sentences"] for r in out] == [sum(reference(line) for line in c.split("\n")) for c in cleaned]
    assert out[0]["sentences"] == 4 and out[0]["lines_removed"] == 1
