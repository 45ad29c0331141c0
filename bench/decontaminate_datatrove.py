"""datatrove's n-gram decontamination over the bench's files, run in the bench-only venv (bench/.venv-datatrove):

    python bench/decontaminate_datatrove.py BENCHMARK.jsonl CORPUS.parquet OUT.json N RUNS

The index is datatrove 0.10.1's own: `NGramsDecontIndexer.compute_hashes(answer, query=question)` for each item
(find_query_ngrams and find_overlap_ngrams on: every n-gram of question + answer), written to
`<task>.index.hashes` as its `run` writes it. Its `run` itself cannot be called here: after the documents it
always loads lighteval's task registry (a hub download); so the object is made without the constructor's
lighteval import check. The filter is `NGramsDecontFilter` run as datatrove runs it, over the corpus Documents.
Writes the ids it flags (with the matched n-gram) and the seconds of each run (index + filter).
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from datatrove.data import Document
from datatrove.pipeline.decont.n_grams import NGramsDecontConfig, NGramsDecontFilter, NGramsDecontIndexer


def index(items: list[dict], folder: Path, config: NGramsDecontConfig) -> None:
    indexer = object.__new__(NGramsDecontIndexer)  # skips only PipelineStep.__new__'s lighteval import check
    NGramsDecontIndexer.__init__(indexer, output_folder=str(folder), config=config)
    hashes: set[int] = set()
    for item in items:
        hashes.update(indexer.compute_hashes(item["answer"], item["question"]))
    np.array(list(hashes), dtype=config.hash_config.np_descr).tofile(folder / "faq.index.hashes")


def main() -> None:
    bench_path, corpus_path, out_path, n, runs = sys.argv[1:6]
    items = [json.loads(line) for line in Path(bench_path).read_text().splitlines()]
    table = pq.read_table(corpus_path, columns=["id", "text"])
    ids, texts = table.column("id").to_pylist(), table.column("text").to_pylist()
    config = NGramsDecontConfig(n_grams=int(n), find_query_ngrams=True, find_overlap_ngrams=True)
    seconds, flagged = [], {}
    for _ in range(int(runs)):
        with tempfile.TemporaryDirectory() as folder:
            t0 = time.perf_counter()
            index(items, Path(folder), config)
            filt = NGramsDecontFilter(index_folder=folder, config=config)
            docs = [Document(text=t, id=i) for i, t in zip(ids, texts)]
            kept = {d.id for d in filt.run(iter(docs))}
            seconds.append(time.perf_counter() - t0)
        # The filter notes the matched n-gram in each dropped document's metadata.
        flagged = {d.id: d.metadata.get("contaminated_ngram") for d in docs if d.id not in kept}
    Path(out_path).write_text(json.dumps({"seconds": seconds, "flagged": flagged}))


if __name__ == "__main__":
    main()
