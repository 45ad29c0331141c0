"""The GPU check of the embedding workers and the SemDeDup pairwise kernel: `bash bench/gpu.sh` runs it.

Measures, on the machine's first GPU (random-init ViT-B-32, fp16 autocast as the embed stage runs it):
  1. decode + preprocess throughput on the CPU, apart (synthetic 256x256 PNGs, all cores);
  2. forward-only images/s over a batch-size sweep (tensors already on the GPU);
  3. end-to-end images/s through `Embed.score` at the best batch, with GPU utilisation sampled (NVML);
  4. the cosine between CPU (fp32) and GPU (fp16) vectors of the same images (goal >= 0.999);
  5. kernels.maxsim.max_sim_prev on CUDA against numpy on the same vectors: time and agreement;
  6. the CLIP-score pass: the text tower over one caption per image, then `clip_score` on the two stored
     vector columns (pairs/s for the text tower, the score and the whole pass with the image tower), and the
     device scores against CPU fp32 scores of the same pairs.
Writes bench/results/gpu.json and gpu.md (and copies them to $OUT when set). `--smoke` runs tiny sizes on
whatever device there is, to check the script itself on a machine without a GPU.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from PIL import Image

from curate.methods.clip_score import ClipScore
from curate.methods.embed import images
from curate.methods.embed.stage import Embed
from kernels.maxsim import max_sim_prev

RESULTS = Path(__file__).parent / "results"


def synthetic_pngs(n: int, size: int = 256, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, "PNG")
        out.append(buf.getvalue())
    return out


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


class Utilisation:
    """Mean GPU utilisation (NVML) sampled every 50 ms while in the `with` block."""

    def __init__(self) -> None:
        self.samples: list[int] = []
        self._stop = threading.Event()

    def __enter__(self) -> Utilisation:
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        except Exception as e:  # no NVML (a CPU machine, a smoke run): say so in the results
            self.error = repr(e)
            return self
        self.error = None

        def sample() -> None:
            while not self._stop.wait(0.05):
                self.samples.append(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    @property
    def mean(self) -> float | None:
        return round(float(np.mean(self.samples)), 1) if self.samples else None


WORDS = "a red blue small large dog cat house tree car bird flower icon logo map person boat sky city".split()


def clip_score_pass(table: pa.Table, image_out: pa.Table, image_per_s: float, device: str, batch: int,
                    cpu_image: Embed) -> dict:
    """The text tower over one caption per image, then `clip_score` on the stored vectors: pairs/s, and the
    device scores against CPU fp32 scores of the first pairs."""
    n = table.num_rows
    rng = np.random.default_rng(3)
    captions = [" ".join(rng.choice(WORDS, rng.integers(3, 12))) for _ in range(n)]
    text = Embed(modality="text", model="ViT-B-32", random_init=True, device=device, batch_size=batch)
    text.setup(None)
    sync(device)
    t0 = time.perf_counter()
    text_out = text.score(pa.table({"caption": captions}))
    sync(device)
    text_s = time.perf_counter() - t0
    clip = ClipScore()
    both = pa.table({"embed_image.vector": image_out.column("vector"), "embed_text.vector": text_out.column("vector")})
    t0 = time.perf_counter()
    scores = clip.score(both).column("score").to_numpy(zero_copy_only=False)
    score_s = time.perf_counter() - t0
    k = min(256, n)
    cpu_text = Embed(modality="text", model="ViT-B-32", random_init=True, device="cpu", batch_size=32,
                     vector_dtype="float32")
    cpu_text.setup(None)
    ref = clip.score(pa.table({
        "embed_image.vector": cpu_image.score(table.slice(0, k)).column("vector"),
        "embed_text.vector": cpu_text.score(pa.table({"caption": captions[:k]})).column("vector")}))
    diff = np.abs(scores[:k] - ref.column("score").to_numpy(zero_copy_only=False))
    return {"pairs": n, "text_pairs_per_s": round(n / text_s, 1), "score_pairs_per_s": round(n / score_s, 1),
            "pass_pairs_per_s": round(n / (n / image_per_s + text_s + score_s), 1),
            "rows_compared": k, "max_abs_score_diff": float(np.nanmax(diff))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=8192)
    ap.add_argument("--batches", default="64,128,256,512,1024")
    ap.add_argument("--pairwise-rows", type=int, default=50_000)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on any device (checks the script)")
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and not args.smoke:
        raise SystemExit("no CUDA device: run this on a GPU machine (or pass --smoke to check the script)")
    n = 64 if args.smoke else args.images
    batches = [8, 16] if args.smoke else [int(b) for b in args.batches.split(",")]
    res: dict = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu (smoke run)",
                 "torch": torch.__version__, "python": platform.python_version(), "cpus": os.cpu_count(),
                 "images": n, "model": "ViT-B-32 (random init)", "smoke": args.smoke}
    raw = synthetic_pngs(n)

    stage = Embed(modality="image", model="ViT-B-32", random_init=True, device=device, batch_size=batches[-1],
                  decode_workers=os.cpu_count())
    stage.setup(None)
    enc = stage._encoder
    t0 = time.perf_counter()
    loaded = images.load_all(raw, enc.preprocess, os.cpu_count() or 1)
    res["decode_preprocess_images_per_s"] = round(n / (time.perf_counter() - t0), 1)
    tensors = torch.stack([t for t, *_ in loaded]).to(device)

    sweep = {}
    for b in batches:
        with torch.inference_mode(), torch.autocast(device, dtype=torch.float16, enabled=device == "cuda"):
            enc.model.encode_image(tensors[:b])  # warm-up (kernel selection)
            sync(device)
            t0 = time.perf_counter()
            for i in range(0, n, b):
                enc.model.encode_image(tensors[i:i + b])
            sync(device)
        sweep[b] = round(n / (time.perf_counter() - t0), 1)
    res["forward_images_per_s_by_batch"] = sweep
    best = max(sweep, key=sweep.get)
    stage = Embed(modality="image", model="ViT-B-32", random_init=True, device=device, batch_size=best,
                  decode_workers=os.cpu_count())
    stage.setup(None)
    table = pa.table({"image": pa.array(raw, pa.binary())})
    with Utilisation() as util:
        t0 = time.perf_counter()
        out = stage.score(table)
        res["end_to_end_images_per_s"] = round(n / (time.perf_counter() - t0), 1)
    res["end_to_end_batch"] = best
    res["gpu_utilisation_mean_pct"] = util.mean
    res["gpu_utilisation_note"] = util.error
    res["end_to_end_errors"] = int(n - out.column("error").null_count)

    k = min(256, n)
    cpu = Embed(modality="image", model="ViT-B-32", random_init=True, device="cpu", batch_size=32)
    cpu.setup(None)
    sub = table.slice(0, k)
    a = np.stack(cpu.score(sub).column("vector").to_numpy(zero_copy_only=False)).astype(np.float32)
    b = np.stack(stage.score(sub).column("vector").to_numpy(zero_copy_only=False)).astype(np.float32)
    cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    res["cpu_vs_device_cosine"] = {"min": round(float(cos.min()), 6), "mean": round(float(cos.mean()), 6), "rows": k}

    res["clip_score"] = clip_score_pass(table, out, res["end_to_end_images_per_s"], device, best, cpu)

    m = 4000 if args.smoke else args.pairwise_rows
    x = np.random.default_rng(1).standard_normal((m, 384)).astype(np.float32)
    x[m // 2:] = x[: m - m // 2] + 0.01 * np.random.default_rng(2).standard_normal((m - m // 2, 384)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    t0 = time.perf_counter()
    m_np, arg_np = max_sim_prev(x, 4096, "cpu")
    res_np = time.perf_counter() - t0
    max_sim_prev(x[:1000], 4096, device)  # warm-up
    sync(device)
    t0 = time.perf_counter()
    m_dev, arg_dev = max_sim_prev(x, 4096, device)
    sync(device)
    res_dev = time.perf_counter() - t0
    res["pairwise"] = {"rows": m, "dim": 384, "numpy_s": round(res_np, 3), f"{device}_s": round(res_dev, 3),
                       "speedup": round(res_np / res_dev, 2),
                       "same_argmax_share": round(float(np.mean(arg_np == arg_dev)), 6),
                       "max_abs_m_diff": float(np.max(np.abs(m_np[1:] - m_dev[1:])))}

    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "gpu_smoke" if args.smoke else "gpu"
    (RESULTS / f"{name}.json").write_text(json.dumps(res, indent=1) + "\n")
    rows = "\n".join(f"| {b} | {v} |" for b, v in sweep.items())
    (RESULTS / f"{name}.md").write_text(f"""# GPU check ({res['device']})

`bash bench/gpu.sh` on {res['device']}, torch {res['torch']}, {res['cpus']} CPUs; {n} synthetic 256x256 PNGs,
ViT-B-32 with random weights, fp16 autocast as the embed stage runs it.{' SMOKE RUN: sizes too small to mean anything.' if args.smoke else ''}

- decode + preprocess (CPU, {res['cpus']} threads): **{res['decode_preprocess_images_per_s']} images/s**
- end to end (`Embed.score`, batch {best}): **{res['end_to_end_images_per_s']} images/s**, GPU utilisation {res['gpu_utilisation_mean_pct']}%
- CPU fp32 vs device vectors, cosine over {k} images: min {res['cpu_vs_device_cosine']['min']}, mean {res['cpu_vs_device_cosine']['mean']} (goal >= 0.999)
- SemDeDup pairwise kernel, {m:,} x 384: numpy {res['pairwise']['numpy_s']} s, {device} {res['pairwise'][f'{device}_s']} s
  ({res['pairwise']['speedup']}x), same nearest earlier row for {res['pairwise']['same_argmax_share']:.4%} of rows,
  max |M difference| {res['pairwise']['max_abs_m_diff']:.2e}
- CLIP score pass ({n} pairs): text tower **{res['clip_score']['text_pairs_per_s']} captions/s**, `clip_score` on the stored
  vectors {res['clip_score']['score_pairs_per_s']} pairs/s, whole pass (image tower + text tower + score)
  **{res['clip_score']['pass_pairs_per_s']} pairs/s**; device vs CPU fp32 score over {res['clip_score']['rows_compared']} pairs:
  max |difference| {res['clip_score']['max_abs_score_diff']:.2e}

| batch | forward only, images/s |
|---|---|
{rows}
""")
    print(json.dumps(res, indent=1))
    if os.environ.get("OUT"):
        for f in (f"{name}.json", f"{name}.md"):
            shutil.copy(RESULTS / f, Path(os.environ["OUT"]) / f)


if __name__ == "__main__":
    main()
