"""Re-train the ICC probe's word-level head (offline, deterministic): `python -m curate.methods.icc.probe_train`.

Embeds every single-word entry of the norms with MiniLM (about 6 minutes on 2 CPU cores), fits the
ridge head and writes `curate/methods/icc/data/icc_probe_brysbaert.npz` (or --out). The head's content hash
goes into the stage key, so scores made with another head are never reused.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from curate.methods.icc.probe import DEFAULT_HEAD, train_word_head

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Re-train the ICC probe's word-level head (offline, deterministic).")
    ap.add_argument("--norms", default="brysbaert")
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--out", type=Path, default=DEFAULT_HEAD)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    head = train_word_head(args.norms, args.alpha)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    head.save(args.out)
    log.info("wrote %s (sha256 %s); %s", args.out, head.sha256, json.dumps(head.meta))


if __name__ == "__main__":
    main()
