"""datatrove 0.10.1's equivalent of configs/web-text.yaml (runs in bench/.venv-datatrove; see
bench/webtext_pipeline.py).

    python bench/webtext_pipeline_datatrove.py DATA_DIR WORK_DIR OUT_JSON --tokenizer TOKENIZER_JSON

Its steps with their defaults, as FineWeb's pipeline chains them, with its local executor (one task per
shard, one worker): read JSONL; language ID (datatrove's LanguageFilter downloads fastText's lid.176 from a
hub, which a bench here must not do, so the same identifier as our default, py3langid with normalised
probabilities, keeps English at >= 0.65 as a datatrove filter); GopherQualityFilter, GopherRepetitionFilter,
C4QualityFilter, FineWebQualityFilter (English default tokenizer: spaCy); exact dedup (signature, find,
filter) on the lower-cased, white-space-folded text keeping the longest; MinHash dedup (5-grams, 14 bands x
8 rows, its own normalisation and tokenizer; signature, buckets, cluster, filter); TokensCounter with the
tokenizer.json our `tokens` stage uses; JSONL writer. Writes seconds, documents kept and tokens kept.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from datatrove.data import Document
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup.exact_dedup import (
    ExactDedupConfig,
    ExactDedupFilter,
    ExactDedupSignature,
    ExactFindDedups,
)
from datatrove.pipeline.dedup.minhash import (
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
    MinhashDedupSignature,
)
from datatrove.pipeline.filters import (
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
)
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.tokens import TokensCounter
from datatrove.pipeline.writers import JsonlWriter


class Py3LangIDFilter(BaseFilter):
    """Keeps documents identified as one of `languages` with at least `threshold` (py3langid)."""

    name = "py3langid"

    def __init__(self, languages: tuple[str, ...] = ("en",), threshold: float = 0.65):
        super().__init__()
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        self.identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        self.languages, self.threshold = languages, threshold

    def filter(self, doc: Document) -> bool:
        language, confidence = self.identifier.classify(doc.text)
        doc.metadata["language"], doc.metadata["language_score"] = language, float(confidence)
        return language in self.languages and confidence >= self.threshold


def content(doc: Document) -> str:
    return " ".join(doc.text.lower().split())


def priority(doc: Document) -> int:
    return max(1, min(65535, len(doc.text)))  # the longest copy is kept (priority must be in [1, 65535])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("work")
    ap.add_argument("out")
    ap.add_argument("--tokenizer", required=True)
    a = ap.parse_args()
    work = Path(a.work)
    tasks = len(sorted(Path(a.data).glob("*.jsonl")))
    exact = ExactDedupConfig(content_getter=content, document_priority=priority)
    minhash = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8)

    def read(folder: str) -> JsonlReader:
        return JsonlReader(folder, glob_pattern="*.jsonl*", text_key="text", id_key="id")

    def write(name: str) -> JsonlWriter:
        return JsonlWriter(str(work / name), compression=None)

    steps = [
        ([read(a.data), Py3LangIDFilter(), GopherQualityFilter(), GopherRepetitionFilter(), C4QualityFilter(),
          FineWebQualityFilter(), write("filtered")], tasks),
        ([read(str(work / "filtered")), ExactDedupSignature(str(work / "exact_sigs"), config=exact)], tasks),
        ([ExactFindDedups(str(work / "exact_sigs"), str(work / "exact_dups"), config=exact)], 1),
        ([read(str(work / "filtered")), ExactDedupFilter(str(work / "exact_dups"), config=exact), write("exact")],
         tasks),
        ([read(str(work / "exact")), MinhashDedupSignature(output_folder=str(work / "sigs"), config=minhash)], tasks),
        ([MinhashDedupBuckets(input_folder=str(work / "sigs"), output_folder=str(work / "buckets"), config=minhash)],
         minhash.num_buckets),
        ([MinhashDedupCluster(input_folder=str(work / "buckets"), output_folder=str(work / "remove"),
                              config=minhash)], 1),
        ([read(str(work / "exact")), MinhashDedupFilter(input_folder=str(work / "remove")),
          TokensCounter(tokenizer_name_or_path=a.tokenizer), write("final")], tasks),
    ]
    t0 = time.perf_counter()
    for i, (pipeline, n) in enumerate(steps):
        LocalPipelineExecutor(pipeline=pipeline, tasks=n, workers=1, logging_dir=str(work / f"logs{i}"),
                              skip_completed=False).run()
    seconds = time.perf_counter() - t0
    kept, tokens = 0, 0
    for f in sorted((work / "final").glob("*.jsonl")):
        for line in f.open():
            kept += 1
            tokens += json.loads(line).get("metadata", {}).get("token_count", 0)
    Path(a.out).write_text(json.dumps({"seconds": seconds, "kept": kept, "tokens_kept": tokens}))


if __name__ == "__main__":
    main()
