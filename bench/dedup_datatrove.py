"""datatrove 0.10.1's MinHash deduplication on the bench corpus (runs in bench/.venv-datatrove; see bench/dedup.py).

    python bench/dedup_datatrove.py DATA_DIR WORK_DIR OUT_JSON --n 5 --bands 14 --rows 8 --workers 1

Its four steps (signatures, buckets, clusters, filter) with its local executor. The text it reads is
`text_norm`, our `nfkc_punct` normalisation of `text`, with its own normalisation switched off and words
split on white space, so both sides shingle exactly the same word n-grams (datatrove's English word
tokenizer needs spaCy, and the normalisations differ in details). Writes, per document id, its cluster id
(or none) and whether it was removed.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import datatrove.pipeline.dedup.minhash as datatrove_minhash
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup.minhash import (
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
    MinhashDedupSignature,
)
from datatrove.pipeline.readers import ParquetReader
from datatrove.pipeline.writers import JsonlWriter
from datatrove.utils.text import TextNormConfig


class _Whitespace:
    def word_tokenize(self, text: str, *args, **kw) -> list[str]:
        return text.split()


# datatrove's signature step with words split on white space (the text is normalised already)
datatrove_minhash.load_word_tokenizer = lambda language: _Whitespace()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("work")
    ap.add_argument("out")
    ap.add_argument("--n", type=int, default=5)
    ap.add_argument("--bands", type=int, default=14)
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--workers", type=int, default=1)
    a = ap.parse_args()
    work = Path(a.work)
    norm = TextNormConfig(lowercase=False, norm_whitespace=False, remove_punctuation=False,
                          norm_unicode_diacritics=False, norm_numbers=False)
    config = MinhashConfig(n_grams=a.n, num_buckets=a.bands, hashes_per_bucket=a.rows, norm_config=norm)
    files = sorted(Path(a.data).glob("*.parquet"))
    tasks = len(files)

    def reader():
        return ParquetReader(a.data, text_key="text_norm", id_key="id", glob_pattern="*.parquet")

    t0 = time.perf_counter()
    steps = [
        ([reader(), MinhashDedupSignature(output_folder=str(work / "sigs"), config=config)], tasks),
        ([MinhashDedupBuckets(input_folder=str(work / "sigs"), output_folder=str(work / "buckets"), config=config)],
         a.bands),
        ([MinhashDedupCluster(input_folder=str(work / "buckets"), output_folder=str(work / "remove"), config=config,
                              save_cluster_id=True)], 1),
        ([reader(), MinhashDedupFilter(input_folder=str(work / "remove"), load_cluster_ids=True,
                                       exclusion_writer=JsonlWriter(str(work / "removed"), compression=None)),
          JsonlWriter(str(work / "kept"), compression=None)], tasks),
    ]
    for i, (pipeline, n) in enumerate(steps):
        LocalPipelineExecutor(pipeline=pipeline, tasks=n, workers=min(a.workers, n),
                              logging_dir=str(work / f"logs{i}"), skip_completed=False).run()
    seconds = time.perf_counter() - t0
    out = {}
    for kind in ("kept", "removed"):
        for f in sorted((work / kind).glob("*.jsonl")):
            for line in f.open():
                d = json.loads(line)
                cid = d.get("metadata", {}).get("minhash_cluster_id", -1)
                out[d["id"]] = {"cluster": None if cid == -1 else cid, "removed": kind == "removed"}
    Path(a.out).write_text(json.dumps({"seconds": seconds, "docs": out}))


if __name__ == "__main__":
    main()
