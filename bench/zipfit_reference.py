"""Run the reference package `zip-fit` 1.0.9 on candidates and targets from a JSON file; print JSON.

Runs inside the bench-only environment bench/.venv-zipfit (the package imports `datasets`, `brotli`,
`lz4` and `zstandard` at module import, so it stays out of the project's dependencies):

    bench/.venv-zipfit/bin/python bench/zipfit_reference.py IN.json OUT.json

IN.json: {"candidates": [...], "targets": [...], "level": 1, "repeat": 3}. gzip and the level are passed explicitly:
the package's default `compress_level=0` writes stored blocks and scores only length. The package's
own ranking method (`ZIPFIT.rank_sequences_by_alignment`: a multiprocessing pool of cpu_count()
workers over the full N x n argument list, scores averaged per candidate, stable sort) is timed as is.
OUT.json: {"scores": [...] in candidate order, "seconds": best of the repeats, "version": ...}.
"""
import contextlib
import io
import json
import resource
import sys
import time
from importlib import metadata


def main(src: str, dst: str) -> None:
    from zip_fit.zipfit import ZIPFIT

    spec = json.load(open(src))
    cands, targets = spec["candidates"], spec["targets"]
    z = ZIPFIT(source_dataset=None, target_dataset=None, k=len(cands), compression_algorithm="gzip",
               compress_level=spec["level"], output_file="/dev/null")
    def cpu() -> float:  # this process + its reaped pool workers
        return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                       resource.getrusage(resource.RUSAGE_CHILDREN)))

    times, cpus = [], []
    for _ in range(spec.get("repeat", 1)):  # best of `repeat`: the machine is shared
        z.compress_cache.clear()
        t0, c0 = time.perf_counter(), cpu()
        with contextlib.redirect_stdout(io.StringIO()):  # the package prints progress lines
            ranked = z.rank_sequences_by_alignment(cands, targets)
        times.append(time.perf_counter() - t0)
        cpus.append(cpu() - c0)
    seconds = min(times)
    by_text = {text: float(score) for text, score in ranked}
    json.dump({"scores": [by_text[c] for c in cands], "seconds": seconds, "cpu_seconds": min(cpus), "version": metadata.version("zip-fit")},
              open(dst, "w"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
