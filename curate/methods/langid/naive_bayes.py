"""The `py3langid` backend, batched: langid.py's naive Bayes model as py3langid's wheel ships it, scored by
kernels/naive_bayes_lid.py over a whole batch (one compiled pass over the bytes instead of py3langid's
Python loop per byte), with py3langid's own results: the same language and the same confidence for every text
(tests/methods/test_langid_naive_bayes.py compares them with `py3langid` itself).

Texts are prepared as py3langid prepares a `str`: lower-cased when `str.isupper()`, NFC-normalised, UTF-8.
"""
from __future__ import annotations

import importlib.util
import io
import lzma
import unicodedata
from functools import lru_cache
from pathlib import Path

import numpy as np

from curate.errors import ConfigError
from curate.methods import models
from kernels import naive_bayes_lid

MODEL = "data/model.npz.xz"  # inside the py3langid package (its MODEL_FILE)
FORMAT = 2  # layout of the cached copy (one .npy per array)
ARRAYS = ("weights", "priors", "nextmove", "rowbase", "out_feat", "classes")
CHUNK = 1 << 22  # bytes of text per kernel call (its working lists take 8 bytes per byte)


def model_file() -> Path:
    """The model inside the installed py3langid wheel (found without importing the package)."""
    spec = importlib.util.find_spec("py3langid")
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL if spec else None
    if path is None or not path.is_file():
        raise ConfigError("langid backend 'py3langid' needs its model file, shipped in the py3langid wheel: "
                          "pip install 'py3langid==0.4.0'")
    return path


class Model:
    """The arrays of a py3langid model file (npz inside LZMA: weights, priors, classes, automaton), in the form
    the kernel reads; `load` keeps an uncompressed copy in the cache folder, memory-mapped by later processes
    (no decompression, and only the pages a run touches are read)."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        # plain ndarray views of memory maps: np.memmap's Python-level __getitem__ costs ~0.1 ms per text
        arrays = {k: v.view(np.ndarray) if isinstance(v, np.memmap) else v for k, v in arrays.items()}
        self.weights, self.priors, self.nextmove = arrays["weights"], arrays["priors"], arrays["nextmove"]
        self.rowbase, self.out_feat = arrays["rowbase"], arrays["out_feat"]
        self.classes: list[str] = arrays["classes"].tolist()
        first: dict[str, int] = {}
        self.aliases = [(first[c], i) for i, c in enumerate(self.classes) if first.setdefault(c, i) != i]
        self.labels = np.array(sorted(first.values()))  # one column per label: its first


def read(path: Path) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(lzma.decompress(path.read_bytes())), allow_pickle=False) as z:
        # float16 in the file; widened once here (exact), where the reference widens the gathered rows of
        # every text: the float32 products and sums are the same
        return {"weights": z["ptc"].astype(np.float32), "priors": z["pc"], "nextmove": z["nextmove"],
                "rowbase": z["nextmove_row"].astype(np.int32) << 8,  # row of each state, pre-shifted
                "out_feat": z["out_feat"].astype(np.int32), "classes": z["classes"]}


def cache_folder(path: Path) -> Path:
    """Where the uncompressed copy of a model file lives, named by the file's size and modification time (an
    upgraded wheel gets a new copy)."""
    st = path.stat()
    return models.cache_folder("langid", f"py3langid-{FORMAT}-{st.st_size}-{st.st_mtime_ns}")


@lru_cache(maxsize=2)
def load(path: Path) -> Model:
    """One loaded model per process (every shard's `setup` shares it)."""
    return Model(models.cached_arrays(cache_folder(path), ARRAYS, lambda: read(path), mmap=True))


def prepared(text: str) -> bytes:
    if text.isupper():
        text = text.lower()
    return unicodedata.normalize("NFC", text).encode("utf8", errors="surrogatepass")


class NaiveBayes:
    """py3langid's identifier (norm_probs=True) over lists of texts; results in detectors' Top2 form."""

    def __init__(self, path: Path | None = None):
        self._model = load(path or model_file())

    def ranked(self, texts: list[str]) -> list[list[tuple[str, float]]]:
        """Per text, the three most probable labels with their probabilities, best first (ties in the
        model's class order, as py3langid's `rank`)."""
        data = [prepared(t) for t in texts]
        out: list[list[tuple[str, float]]] = []
        start, size = 0, 0
        for end, b in enumerate(data, 1):  # chunks of ~CHUNK bytes: the kernel's lists grow with the bytes
            size += len(b)
            if size >= CHUNK or end == len(data):
                out += self._ranked(data[start:end])
                start, size = end, 0
        return out

    def _ranked(self, data: list[bytes]) -> list[list[tuple[str, float]]]:
        m = self._model
        lengths = np.fromiter((len(b) for b in data), np.int64, count=len(data))
        offsets = np.concatenate(([0], np.cumsum(lengths)))
        joined = np.frombuffer(b"".join(data), np.uint8)
        starts, features, counts = naive_bayes_lid.visits(joined, offsets, m.nextmove, m.rowbase, m.out_feat,
                                                          len(m.weights))
        p = naive_bayes_lid.probabilities(starts, features, counts, lengths, m.weights, m.priors,
                                          m.aliases)[:, m.labels]
        top = np.argsort(-p, axis=1, kind="stable")[:, :3]
        best = np.take_along_axis(p, top, axis=1).tolist()
        names = [m.classes[j] for j in m.labels.tolist()]
        return [[(names[j], q) for j, q in zip(row, probs)] for row, probs in zip(top.tolist(), best)]
