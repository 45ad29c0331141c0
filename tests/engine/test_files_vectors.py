"""How the engine writes vector columns: packed float rows (fixed-size binary) are stored raw, without statistics."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curate.engine.files import parquet_bytes
from kernels.vectors import packed_rows, unpacked_rows


def test_packed_vectors_are_written_plain_uncompressed_and_without_min_max():
    x = np.random.default_rng(0).standard_normal((60, 8)).astype(np.float32)
    table = pa.table({"part": np.arange(60) % 4, "row": np.arange(60), "vector": packed_rows(x)})
    for group_by in (None, "part"):
        meta = pq.ParquetFile(pa.BufferReader(parquet_bytes(table, group_by))).metadata
        for g in range(meta.num_row_groups):
            vector, part = meta.row_group(g).column(2), meta.row_group(g).column(0)
            assert vector.compression == "UNCOMPRESSED" and "RLE_DICTIONARY" not in vector.encodings
            assert vector.statistics is None
            assert part.compression == "ZSTD" and part.statistics is not None  # other columns as before
    back = pq.read_table(pa.BufferReader(parquet_bytes(table, "part"))).sort_by("row")
    assert np.array_equal(unpacked_rows(back.column("vector")), x)
