"""CSV shards (plain, .gz, .zst): one column per header field, types inferred, an empty cell missing."""
from __future__ import annotations

import io
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.csv as pcsv

from curate.errors import DataError
from curate.formats.parsed import ParsedReader


class CsvReader(ParsedReader):
    format: ClassVar[str] = "csv"
    suffixes: ClassVar[tuple[str, ...]] = (".csv", ".csv.gz", ".csv.zst")

    @classmethod
    def parse(cls, data: bytes, rel: str) -> pa.Table:
        ragged: list[str] = []

        def note(row: Any) -> str:
            ragged.append(f"line {row.number} has {row.actual_columns} fields, the header has {row.expected_columns}")
            return "skip"

        try:
            table = pcsv.read_csv(io.BytesIO(data), read_options=pcsv.ReadOptions(use_threads=False),
                                  parse_options=pcsv.ParseOptions(invalid_row_handler=note, newlines_in_values=True),
                                  convert_options=pcsv.ConvertOptions(strings_can_be_null=True,  # empty: missing
                                                                     check_utf8=False))
        except pa.ArrowInvalid as e:
            raise DataError([f"shard {rel}: not readable as CSV ({e})"]) from None
        if ragged:  # a skipped row would be a row silently lost
            raise DataError([f"shard {rel}: {r}; fix or remove the row" for r in ragged[:10]]
                            + ([f"shard {rel}: ... and {len(ragged) - 10} more ragged row(s)"] if len(ragged) > 10
                               else []))
        return table  # (text that is not UTF-8 stays text: the engine makes its rows per-row errors)

    @staticmethod
    def encode(table: pa.Table) -> bytes:
        sink = pa.BufferOutputStream()
        pcsv.write_csv(table, sink)
        return sink.getvalue().to_pybytes()
