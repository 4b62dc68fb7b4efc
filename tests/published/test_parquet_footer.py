"""Parquet footers taken apart and joined: byte-exact round trips, splices that every reader reads."""

from __future__ import annotations

import io
import struct

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.published.parquet_footer import (
    MAGIC,
    FooterError,
    decode_footer,
    encode_footer,
    footer_layout,
    spliced_footer,
)

OPTIONS = {"compression": "zstd", "write_page_checksum": True}


def _table(rows: int, start: int = 0) -> pa.Table:
    numbers = range(start, start + rows)
    return pa.table({
        "id": pa.array([f"p{i:05d}" for i in numbers], pa.string()),
        "n": pa.array(list(numbers), pa.int64()),
        "score": pa.array([None if i % 3 else i / 7 for i in numbers], pa.float64()),
        "flag": pa.array([i % 2 == 0 for i in numbers], pa.bool_()),
        "day": pa.array(list(numbers), pa.int32()).cast(pa.date32()),
        "tags": pa.array([[f"t{i % 5}"] * (i % 3) for i in numbers], pa.list_(pa.string())),
        "text": pa.array(["x" * (i % 97) + "é" for i in numbers], pa.string()),
    })  # fmt: skip


def _file(table: pa.Table, group_rows: int, **options: object) -> bytes:
    sink = io.BytesIO()
    with pq.ParquetWriter(sink, table.schema, **{**OPTIONS, **options}) as writer:
        for batch in table.to_batches(group_rows):
            writer.write_batch(batch)
    return sink.getvalue()


def _footer(data: bytes) -> tuple[bytes, int]:
    length = struct.unpack("<I", data[-8:-4])[0]
    return data[-8 - length : -8], len(data) - 8 - length


def _splice(head: bytes, keep: int, tail: bytes) -> bytes:
    head_footer, _ = _footer(head)
    tail_footer, tail_start = _footer(tail)
    end = footer_layout(head_footer).ends[keep - 1] if keep else len(MAGIC)
    footer = spliced_footer(head_footer, keep, tail_footer, end)
    return head[:end] + tail[len(MAGIC) : tail_start] + footer + struct.pack("<I", len(footer)) + MAGIC


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(0, 300), group_rows=st.integers(1, 64))
def test_a_footer_is_written_back_byte_for_byte(rows: int, group_rows: int) -> None:
    footer, _ = _footer(_file(_table(rows), group_rows))
    assert encode_footer(decode_footer(footer)) == footer


@settings(max_examples=40, deadline=None)
@given(head_rows=st.integers(1, 200), tail_rows=st.integers(0, 200), group_rows=st.integers(1, 50), data=st.data())
def test_a_splice_reads_as_the_kept_rows_then_the_new_ones(
    head_rows: int, tail_rows: int, group_rows: int, data: st.DataObject
) -> None:
    head_table = _table(head_rows)
    head = _file(head_table, group_rows)
    groups = len(footer_layout(_footer(head)[0]).rows)
    keep = data.draw(st.integers(0, groups))
    kept_rows = min(keep * group_rows, head_rows)
    tail_table = _table(tail_rows, start=10_000)
    spliced = _splice(head, keep, _file(tail_table, group_rows))
    expected = pa.concat_tables([head_table.slice(0, kept_rows), tail_table])
    reader = pq.ParquetFile(io.BytesIO(spliced), page_checksum_verification=True)
    assert reader.metadata.num_rows == expected.num_rows
    assert reader.read().equals(expected)


def test_duckdb_reads_a_spliced_file(tmp_path) -> None:
    """Another reader, which finds its way through the footer's offsets on its own."""
    head_table, tail_table = _table(100), _table(37, start=500)
    path = tmp_path / "spliced.parquet"
    path.write_bytes(_splice(_file(head_table, 16), 5, _file(tail_table, 16)))
    expected = pa.concat_tables([head_table.slice(0, 80), tail_table])
    rows = duckdb.sql(f"SELECT id, n, score, flag, day, tags, text FROM read_parquet('{path}')").fetchall()
    assert [tuple(r.values()) for r in expected.to_pylist()] == rows


def test_row_groups_are_renumbered_and_moved() -> None:
    spliced = _splice(_file(_table(40), 10), 2, _file(_table(25, start=100), 10))
    metadata = pq.read_metadata(io.BytesIO(spliced))
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [10, 10, 10, 10, 5]
    assert [metadata.row_group(i).to_dict().get("ordinal", i) for i in range(5)] == list(range(5))


def test_what_cannot_be_spliced_is_refused() -> None:
    head = _file(_table(40), 10)
    head_footer, _ = _footer(head)
    other = _file(pa.table({"n": pa.array([1, 2], pa.int64())}), 10)
    with pytest.raises(FooterError, match="different schemas"):
        spliced_footer(head_footer, 1, _footer(other)[0], footer_layout(head_footer).ends[0])
    with pytest.raises(FooterError, match="row groups"):
        spliced_footer(head_footer, 9, _footer(head)[0], len(head))
    with pytest.raises(FooterError, match="overwrite"):
        spliced_footer(head_footer, 2, _footer(head)[0], footer_layout(head_footer).ends[0])
    indexed = _file(_table(40), 10, write_page_index=True)
    with pytest.raises(FooterError, match="page index"):
        footer_layout(_footer(indexed)[0])
    for damaged in (head_footer[:-3], head_footer + b"\x00", b"\xff" * 40, b""):
        with pytest.raises(FooterError):
            footer_layout(damaged)
