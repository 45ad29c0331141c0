"""The Fashion-MNIST builder, on the real files of the installed Debian package."""
from __future__ import annotations

import gzip
import io

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from curate.data import fashion_mnist as fm
from curate.errors import DataError


@pytest.fixture(scope="module")
def data():
    if fm._dpkg_list(fm.PACKAGE) is None:
        pytest.fail(f"{fm.PACKAGE} not installed: run `make test` (it installs it)")
    return fm.load_fashion_mnist()


def test_the_package_holds_60000_train_and_10000_test_images_in_10_balanced_classes(data):
    assert data["train_x"].shape == (60000, 784) and data["test_x"].shape == (10000, 784)
    assert data["train_x"].dtype == np.uint8
    assert np.bincount(data["train_y"]).tolist() == [6000] * 10
    assert np.bincount(data["test_y"]).tolist() == [1000] * 10


def test_rows_hold_the_pixels_and_a_png_of_the_same_image(data):
    t = fm.split_table("train", data["train_x"][100:110], data["train_y"][100:110], start=100)
    assert t.schema == fm.SCHEMA and t.column("id").to_pylist()[0] == "train-00100"
    pixels = np.asarray(t.column("pixels").combine_chunks().flatten().to_numpy()).reshape(10, 784)
    assert (pixels == data["train_x"][100:110]).all()
    png = np.asarray(Image.open(io.BytesIO(t.column("image")[3].as_py())))
    assert (png.reshape(-1) == data["train_x"][103]).all()


def test_build_writes_train_and_test_shards_and_a_completion_marker(tmp_path, data, monkeypatch):
    small = {k: v[:50] for k, v in data.items()}  # the writer on a slice; loading is tested above
    monkeypatch.setattr(fm, "load_fashion_mnist", lambda: small)
    info = fm.build_fashion_mnist(tmp_path, shards=3)
    assert (tmp_path / ".complete").exists() and info["train"]["rows"] == 50
    train = pq.read_table(tmp_path / "train")
    assert train.num_rows == 50 and len(list((tmp_path / "train").glob("part-*.parquet"))) == 3
    assert train.column("label").to_pylist() == small["train_y"].tolist()


def test_a_corrupt_idx_file_or_a_missing_package_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(b"\x00\x00\x0d\x01\x00\x00\x00\x02ab"))
    with pytest.raises(DataError, match="not an uint8 IDX"):
        fm.read_idx(bad)
    with pytest.raises(DataError, match="lists no"):
        fm.package_paths(listed=["/nowhere/train-images-idx3-ubyte.gz"])
