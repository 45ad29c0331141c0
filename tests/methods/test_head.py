"""Embedding heads: known weights give the expected scores (linear, MLP, sigmoid, softmax; safetensors and torch
state dicts), a width that does not match the embedding is refused naming both, and bad files are refused."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import curate
from curate.config import pipeline_from_dict
from curate.errors import ConfigError, DataError
from curate.methods.clip_score import Head
from testkit.helpers import write_shards

TINY = str(Path(__file__).resolve().parents[2] / "configs" / "models" / "tiny-clip.json")


def vectors(x: np.ndarray, mask=None) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1), pa.float32()), x.shape[1], mask=mask)


def save(path: Path, tensors: dict[str, np.ndarray]) -> str:
    if path.suffix == ".safetensors":
        from safetensors.numpy import save_file

        save_file({k: np.ascontiguousarray(v, np.float32) for k, v in tensors.items()}, str(path))
    else:
        import torch

        torch.save({k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in tensors.items()}, str(path))
    return str(path)


@pytest.fixture
def x():
    return np.random.default_rng(0).normal(size=(6, 8)).astype(np.float32)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_a_linear_head_gives_w_x_plus_b_on_the_normalised_vector(tmp_path, x, suffix):
    rng = np.random.default_rng(1)
    w, b = rng.normal(size=(1, 8)), rng.normal(size=1)
    head = Head("e.vector", save(tmp_path / f"aesthetic{suffix}", {"linear.weight": w, "linear.bias": b}),
                ["aesthetic"])
    out = head.score(pa.table({"e.vector": vectors(x)}))
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    np.testing.assert_allclose(out.column("aesthetic").to_numpy(), (unit @ w.T + b)[:, 0], rtol=1e-5, atol=1e-6)


def test_an_mlp_in_key_order_with_relu_and_a_sigmoid(tmp_path, x):
    rng = np.random.default_rng(2)
    t = {f"layers.{k}.weight": rng.normal(size=s) for k, s in ((0, (5, 8)), (2, (3, 5)), (10, (1, 3)))}
    t.update({f"layers.{k}.bias": rng.normal(size=n) for k, n in ((0, 5), (2, 3), (10, 1))})
    head = Head("e.vector", save(tmp_path / "nsfw.safetensors", t), ["nsfw"], activation="sigmoid", normalize=False)
    h = np.maximum(x @ t["layers.0.weight"].T + t["layers.0.bias"], 0)
    h = np.maximum(h @ t["layers.2.weight"].T + t["layers.2.bias"], 0)  # layers.10 last: keys sort as numbers
    expected = 1 / (1 + np.exp(-(h @ t["layers.10.weight"].T + t["layers.10.bias"])))
    got = head.score(pa.table({"e.vector": vectors(x)})).column("nsfw").to_numpy()
    np.testing.assert_allclose(got, expected[:, 0], rtol=1e-5)


def test_softmax_over_named_outputs_sums_to_one_and_no_hidden_activation_is_linear(tmp_path, x):
    rng = np.random.default_rng(3)
    t = {"a.weight": rng.normal(size=(4, 8)), "b.weight": rng.normal(size=(2, 4))}
    head = Head("e.vector", save(tmp_path / "h.safetensors", t), ["safe", "unsafe"], hidden_activation="none",
                activation="softmax", normalize=False)
    out = head.score(pa.table({"e.vector": vectors(x)}))
    logits = x @ t["a.weight"].T @ t["b.weight"].T
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(out.column("unsafe").to_numpy(), p[:, 1], rtol=1e-5)
    np.testing.assert_allclose(out.column("safe").to_numpy() + out.column("unsafe").to_numpy(), 1, rtol=1e-6)


def test_null_and_nan_vectors_are_row_errors(tmp_path, x):
    x[1, 3] = np.nan
    head = Head("e.vector", save(tmp_path / "h.safetensors", {"w.weight": np.ones((1, 8))}), ["s"])
    out = head.score(pa.table({"e.vector": vectors(x, mask=pa.array([False, False, True, False, False, False]))}))
    assert out.column("s").null_count == 2
    assert out.column("error").to_pylist()[1:3] == ["invalid_embedding: NaN or Inf values", "invalid_embedding: null"]


def test_weights_of_another_width_are_refused_naming_both(tmp_path):
    weights = save(tmp_path / "h.safetensors", {"w.weight": np.ones((1, 32))})
    cfg = {"name": "h", "stages": [
        {"type": "embed", "name": "embed_image", "modality": "image", "model": TINY, "random_init": True},
        {"type": "head", "embedding": "embed_image.vector", "weights": weights, "names": ["aesthetic"]}]}
    with pytest.raises(ConfigError, match=r"column 'embed_image.vector' \(stage 'embed_image'\) holds vectors of "
                                          r"width 64, but the weights .* take width 32"):
        pipeline_from_dict(cfg)


def test_a_dataset_column_of_another_width_is_refused_before_compute(tmp_path):
    data = write_shards(tmp_path / "data", pa.table({"emb": vectors(np.ones((4, 16), np.float32))}), 1)
    pipeline, _ = pipeline_from_dict({"name": "h", "stages": [
        {"type": "head", "embedding": "emb", "weights": save(tmp_path / "h.pt", {"w.weight": np.ones((1, 8))}),
         "names": ["s"]}]})
    with pytest.raises(DataError, match="holds vectors of width 16, but the weights .* take width 8"):
        curate.run(pipeline, data, tmp_path / "run", executor="local")


@pytest.mark.parametrize("content, match", [
    (b"", "not a safetensors file or a torch state dict"),
    (b"\x00" * 64, "not a safetensors file or a torch state dict"),
    (b"PK\x03\x04 not really a zip", "not a safetensors file or a torch state dict"),
])
def test_bad_files_are_refused_clearly(tmp_path, content, match):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=match):
        Head("e.vector", str(path), ["s"]).layers  # noqa: B018


def test_a_pickle_that_is_not_only_tensors_is_refused_without_running_it(tmp_path):
    import torch

    torch.save({"w.weight": torch.ones(1, 4), "note": "a string"}, tmp_path / "mixed.pt")
    with pytest.raises(ConfigError, match="holds a dict, not a mapping of names to tensors|not a safetensors"):
        Head("e.vector", str(tmp_path / "mixed.pt"), ["s"]).layers  # noqa: B018
    torch.save({"w.weight": torch.ones(1, 4), "f": Path("x")}, tmp_path / "code.pt")  # an object: weights_only refuses
    with pytest.raises(ConfigError, match="UnpicklingError"):
        Head("e.vector", str(tmp_path / "code.pt"), ["s"]).layers  # noqa: B018


def test_layers_that_do_not_chain_and_names_that_do_not_match_are_refused(tmp_path):
    broken = save(tmp_path / "b.safetensors", {"a.weight": np.ones((5, 8)), "b.weight": np.ones((1, 4))})
    with pytest.raises(ConfigError, match="layer 'b.weight' takes width 4 but the layer before gives 5"):
        Head("e.vector", broken, ["s"]).layers  # noqa: B018
    two = save(tmp_path / "two.safetensors", {"a.weight": np.ones((2, 8))})
    with pytest.raises(ConfigError, match=r"has 2 outputs but `names` has 1"):
        Head("e.vector", two, ["s"]).layers  # noqa: B018
    with pytest.raises(ConfigError, match="no weights file"):
        Head("e.vector", str(tmp_path / "absent.safetensors"), ["s"])
    with pytest.raises(ConfigError, match="softmax needs two or more outputs"):
        Head("e.vector", two, ["s"], activation="softmax")


def test_new_weights_re_score_and_the_path_alone_does_not(tmp_path, x):
    a = save(tmp_path / "a.safetensors", {"w.weight": np.ones((1, 8))})
    (tmp_path / "moved").mkdir()
    b = tmp_path / "moved" / "a.safetensors"  # the same file elsewhere (its name is part of the hash)
    b.write_bytes(Path(a).read_bytes())
    c = save(tmp_path / "c.safetensors", {"w.weight": np.full((1, 8), 2.0)})
    ident = [Head("e.vector", p, ["s"]).identity() for p in (a, str(b), c)]
    assert ident[0] == ident[1] and ident[0] != ident[2]


def head_pipeline(tmp_path) -> tuple[dict, Path, np.ndarray]:
    import io

    from PIL import Image

    rng = np.random.default_rng(5)
    images = []
    for i in range(10):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (20 + i, 30, 3), np.uint8)).save(buf, "PNG")
        images.append(buf.getvalue())
    images[4] = b""
    data = write_shards(tmp_path / "data", pa.table({"id": [f"r{i}" for i in range(10)],
                                                    "image": pa.array(images, pa.binary())}), 2)
    w = rng.normal(size=(2, 64))
    weights = save(tmp_path / "head.safetensors", {"l.weight": w, "l.bias": np.array([0.5, -0.5])})
    cfg = {"name": "h", "id_column": "id", "stages": [
        {"type": "embed", "name": "embed_image", "modality": "image", "model": TINY, "random_init": True},
        {"type": "head", "name": "aesthetic", "embedding": "embed_image.vector", "weights": weights,
         "names": ["score", "other"], "activation": "sigmoid"}]}
    return cfg, data, w


def test_a_head_in_a_run_scores_the_stored_vectors_and_resumes(tmp_path):
    cfg, data, w = head_pipeline(tmp_path)
    pipeline, _ = pipeline_from_dict(cfg)
    first = curate.run(pipeline, data, tmp_path / "run", executor="local")
    rows = curate.load_manifest(tmp_path / "run").to_pylist()
    x = curate.load_vectors(tmp_path / "run", "embed_image")
    stored = {i: np.asarray(v, np.float32) for i, v in zip(x.column("id").to_pylist(), x.column("vector").to_pylist())
              if v is not None}
    for r in rows:
        if r["id"] == "r4":
            assert r["aesthetic.score"] is None and r["error"].startswith("embed_image: empty_bytes")
            continue
        v = stored[r["id"]] / np.linalg.norm(stored[r["id"]])
        assert abs(r["aesthetic.score"] - 1 / (1 + np.exp(-(v @ w[0] + 0.5)))) < 1e-5
    again = curate.run(pipeline, data, tmp_path / "run", executor="local")
    assert first["stages"]["aesthetic"]["units_computed"] == 2
    assert all(s["units_computed"] == 0 for s in again["stages"].values())


@pytest.mark.slow
def test_a_head_gives_the_same_manifest_local_and_on_ray(tmp_path, shared_ray):
    pytest.importorskip("ray")
    cfg, data, _ = head_pipeline(tmp_path)
    pipeline, _ = pipeline_from_dict(cfg)
    curate.run(pipeline, data, tmp_path / "local", executor="local")
    curate.run(pipeline, data, tmp_path / "ray", executor="ray")
    assert curate.load_manifest(tmp_path / "local").equals(curate.load_manifest(tmp_path / "ray"))
