"""EL2N on real data (docs/methods/el2n.md check 10): Fashion-MNIST with 20% of the training labels flipped,
scored through the engine with 3 proxy runs (MLP 784-256-10, Adam 2e-3, batch 256, 2 epochs)."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

import curate
from curate.data import fashion_mnist as fm
from curate.methods.el2n.stage import EL2N
from testkit.helpers import write_shards


@pytest.fixture(scope="module")
def noisy_run(tmp_path_factory):
    if fm._dpkg_list(fm.PACKAGE) is None:
        pytest.fail(f"{fm.PACKAGE} not installed: run `make test` (it installs it)")
    data = fm.load_fashion_mnist()
    noisy, flipped = fm.flip_labels(data["train_y"], 0.2, seed=7)
    ids = [f"train-{i:05d}" for i in range(len(noisy))]
    flat = pa.array(data["train_x"].reshape(-1), pa.uint8())
    table = pa.table({"id": ids, "label": noisy, "pixels": pa.FixedSizeListArray.from_arrays(flat, 784)})
    root = tmp_path_factory.mktemp("fmnist")
    write_shards(root / "data", table, 6)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pipeline = curate.Pipeline([EL2N(features="pixels", runs=3, score_epoch=2, hidden=[256])],
                                   [curate.KeepFraction("el2n.score", 0.5)], id_column="id")
        summary = curate.run(pipeline, root / "data", root / "run", executor="local")
    finally:
        torch.set_num_threads(threads)
    return curate.load_manifest(root / "run"), flipped, summary


def test_most_flipped_labels_rank_in_the_top_half_by_el2n(noisy_run):
    manifest, flipped, _ = noisy_run
    score = manifest.column("el2n.score").to_numpy()
    top_half = score >= np.median(score)
    recall = top_half[flipped].mean()
    assert recall >= 0.95, f"only {recall:.4f} of the flipped rows rank in the top half"


def test_the_run_accounts_for_every_row_and_reports_the_proxies(noisy_run):
    manifest, _, summary = noisy_run
    assert manifest.num_rows == 60000 and manifest.column("error").null_count == 60000
    assert set(manifest.column("el2n.runs").to_pylist()) == {3}
    art = summary["stages"]["el2n"]["artifact"]
    assert art["runs"] == 3 and art["epochs"] == 2 and art["fit_rows"] == 60000
    assert all(0.5 < a < 0.95 for a in art["train_acc"])  # early in training, on 20% wrong labels
    assert summary["policies"]["el2n"]["kept"] == 30000
