"""Reading a table the join is given: a CSV file (every column read as text) or a Parquet file or folder."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.dataset as pds

from curate.errors import ConfigError, DataError


def read_table(path: str | Path, columns: list[str] | None = None) -> pa.Table:
    """A CSV file (every column read as text) or a Parquet file or folder."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"autofj: reference table {str(p)!r} does not exist")
    if p.suffix.lower() == ".csv":
        names = pcsv.read_csv(p, read_options=pcsv.ReadOptions(block_size=1 << 16)).column_names
        opts = pcsv.ConvertOptions(column_types={c: pa.string() for c in names}, strings_can_be_null=False)
        table = pcsv.read_csv(p, convert_options=opts)
    else:
        table = pds.dataset(str(p), format="parquet").to_table()
    missing = [c for c in (columns or []) if c not in table.column_names]
    if missing:
        raise DataError([f"reference table {str(p)!r}: missing column(s) {missing}; it has {table.column_names}"])
    return table.select(columns) if columns else table
