"""The training data as a file: JSON Lines, CSV or Parquet, produced batch by batch.

Shared by ``GET /export/training-data`` and ``bookql export training-data``, so the file a
notebook downloads and the file an operator writes are the same bytes. CSV keeps raw values
(it is data for programs) unless the caller asks for spreadsheet-safe cells.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from enum import StrEnum
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from bookql.core.errors import BadUserInput
from bookql.ml.dataset import COLUMNS, Chunk, Shape, TrainingData, csv_header

_ARROW_TYPES = {
    "string": pa.string(),
    "category": pa.dictionary(pa.int32(), pa.string()),
    "int64": pa.int64(),
    "float64": pa.float64(),
}
ARROW_SCHEMA = pa.schema([(c.name, _ARROW_TYPES[c.type]) for c in COLUMNS])


class FileFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"
    PARQUET = "parquet"

    @property
    def media_type(self) -> str:
        return {
            FileFormat.JSONL: "application/x-ndjson",
            FileFormat.CSV: "text/csv; charset=utf-8",
            FileFormat.PARQUET: "application/vnd.apache.parquet",
        }[self]

    def shape(self, *, spreadsheet_safe: bool = False) -> Shape:
        """How the rows are rendered; ``spreadsheet_safe`` (CSV only) neutralises formulas."""
        if spreadsheet_safe:
            if self is not FileFormat.CSV:
                raise BadUserInput("`spreadsheetSafe` applies to CSV only", field="spreadsheetSafe")
            return Shape.SPREADSHEET_CSV
        return {
            FileFormat.JSONL: Shape.OBJECTS,
            FileFormat.CSV: Shape.CSV,
            FileFormat.PARQUET: Shape.ARRAYS,
        }[self]


async def file_bytes(
    chunks: AsyncIterator[Chunk], file_format: FileFormat
) -> AsyncIterator[tuple[bytes, int]]:
    """The file's bytes, piece by piece, each with how many rows it completes."""
    if file_format is not FileFormat.PARQUET:
        header = csv_header() if file_format is FileFormat.CSV else b""
        async for chunk in chunks:  # the header waits for the first read, which may refuse
            yield header + chunk.data, chunk.rows
            header = b""
        if header:
            yield header, 0
        return
    writer = _ParquetPieces()
    async for chunk in chunks:
        # encoding a row group is CPU work: off the event loop
        yield await asyncio.to_thread(writer.add, chunk.data), chunk.rows
    yield await asyncio.to_thread(writer.close), 0


async def stream_file(
    data: TrainingData,
    file_format: FileFormat,
    *,
    after: int,
    batch_size: int,
    spreadsheet_safe: bool = False,
) -> AsyncIterator[tuple[bytes, int]]:
    shape = file_format.shape(spreadsheet_safe=spreadsheet_safe)
    chunks = data.stream(shape, after=after, batch_size=batch_size)
    async for piece in file_bytes(chunks, file_format):
        yield piece


class _Pieces(io.RawIOBase):
    """A write-only file that hands its bytes back on demand and keeps counting positions
    (Parquet's footer records offsets, so ``tell`` must not restart)."""

    def __init__(self) -> None:
        super().__init__()
        self._pieces: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        piece = bytes(data)
        self._pieces.append(piece)
        self._position += len(piece)
        return len(piece)

    def tell(self) -> int:
        return self._position

    def take(self) -> bytes:
        data = b"".join(self._pieces)
        self._pieces.clear()
        return data


class _ParquetPieces:
    """A Parquet writer whose output is handed back after every row group."""

    def __init__(self) -> None:
        self._sink = _Pieces()
        self._writer = pq.ParquetWriter(self._sink, ARROW_SCHEMA, compression="zstd")

    def add(self, lines: bytes) -> bytes:
        rows = orjson.loads(b"[" + lines.rstrip(b"\n").replace(b"\n", b",") + b"]")
        columns = list(zip(*rows, strict=True))
        arrays = [
            pa.array(values, type=field.type)
            if field.type != _ARROW_TYPES["category"]
            else pa.array(values, type=pa.string()).dictionary_encode()
            for values, field in zip(columns, ARROW_SCHEMA, strict=True)
        ]
        self._writer.write_table(pa.Table.from_arrays(arrays, schema=ARROW_SCHEMA))
        return self._take()

    def close(self) -> bytes:
        self._writer.close()
        return self._take()

    def _take(self) -> bytes:
        return self._sink.take()
