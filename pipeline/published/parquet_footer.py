"""Parquet footers as bytes: the row groups of two files joined into one footer (pure, no I/O).

A refresh republishes the papers of the parent version unchanged, and re-encoding them is most of
its cost. Their encoded row groups can be copied instead, byte for byte: only the footer, which
says where each column chunk lies, has to be written anew. pyarrow cannot edit a footer, so this
module reads and writes the few fields that matter in the footer's own encoding (Thrift's
compact protocol) and carries every other field over as it was read.

Field numbers are those of parquet-format's ``parquet.thrift``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Compact-protocol types.
_TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(1, 13)
_INTS = frozenset({_BYTE, _I16, _I32, _I64})
MAGIC = b"PAR1"  # a Parquet file's first and last four bytes
_MAX_DEPTH = 32  # a footer nests five deep: deeper is damage, not a footer

# FileMetaData
_FMD_SCHEMA, _FMD_NUM_ROWS, _FMD_ROW_GROUPS = 2, 3, 4
_FMD_ENCRYPTION = frozenset({8, 9})
# RowGroup
_RG_COLUMNS, _RG_NUM_ROWS, _RG_FILE_OFFSET, _RG_ORDINAL = 1, 3, 5, 7
# ColumnChunk
_CC_FILE_PATH, _CC_FILE_OFFSET, _CC_META = 1, 2, 3
_CC_PAGE_INDEX = frozenset({4, 6})  # offset index, column index: written after all row groups
_CC_ENCRYPTED = frozenset({8, 9})
# ColumnMetaData
_CMD_COMPRESSED, _CMD_DATA_PAGE, _CMD_INDEX_PAGE, _CMD_DICTIONARY_PAGE, _CMD_BLOOM = 7, 9, 10, 11, 14


class FooterError(ValueError):
    """A footer this module does not take apart: damaged, encrypted, or laid out otherwise."""


# A struct is its fields in the order read: (field id, type, value). Values: int for integers,
# None for booleans (the type holds the value), bytes for binary and doubles, a list of fields
# for a struct, (element type, [values]) for a list or set, (key type, value type, [(k, v)]) for a map.
Field = tuple[int, int, Any]


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def byte(self) -> int:
        if self.at >= len(self.data):
            raise FooterError("the footer ends inside a value")
        self.at += 1
        return self.data[self.at - 1]

    def varint(self) -> int:
        value, shift = 0, 0
        while True:
            b = self.byte()
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7
            if shift > 70:
                raise FooterError("a varint of the footer is too long")

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def raw(self, length: int) -> bytes:
        if length < 0 or self.at + length > len(self.data):
            raise FooterError("the footer ends inside a value")
        self.at += length
        return self.data[self.at - length : self.at]

    def value(self, kind: int, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise FooterError("the footer nests too deep")
        if kind in _INTS:
            return self.zigzag() if kind != _BYTE else self.byte()
        if kind in (_TRUE, _FALSE):
            return None
        if kind == _DOUBLE:
            return self.raw(8)
        if kind == _BINARY:
            return self.raw(self.varint())
        if kind in (_LIST, _SET):
            head = self.byte()
            size, element = head >> 4, head & 0x0F
            if size == 15:
                size = self.varint()
            if element in (_TRUE, _FALSE):  # a boolean in a list is a byte of its own
                return (element, [self.byte() for _ in range(size)])
            return (element, [self.value(element, depth + 1) for _ in range(size)])
        if kind == _MAP:
            size = self.varint()
            if not size:
                return (0, 0, [])
            types = self.byte()
            k, v = types >> 4, types & 0x0F
            return (k, v, [(self.value(k, depth + 1), self.value(v, depth + 1)) for _ in range(size)])
        if kind == _STRUCT:
            return self.struct(depth + 1)
        raise FooterError(f"unknown type {kind} in the footer")

    def struct(self, depth: int = 0) -> list[Field]:
        fields: list[Field] = []
        last = 0
        while True:
            head = self.byte()
            if head == 0:
                return fields
            delta, kind = head >> 4, head & 0x0F
            field_id = last + delta if delta else self.zigzag()
            fields.append((field_id, kind, self.value(kind, depth)))
            last = field_id


class _Writer:
    def __init__(self) -> None:
        self.out = bytearray()

    def varint(self, n: int) -> None:
        while True:
            if n < 0x80:
                self.out.append(n)
                return
            self.out.append((n & 0x7F) | 0x80)
            n >>= 7

    def zigzag(self, n: int) -> None:
        self.varint((n << 1) ^ (n >> 63))

    def value(self, kind: int, value: Any) -> None:
        if kind in _INTS:
            assert isinstance(value, int)
            if kind == _BYTE:
                self.out.append(value & 0xFF)
            else:
                self.zigzag(value)
        elif kind in (_TRUE, _FALSE):
            pass
        elif kind == _DOUBLE:
            assert isinstance(value, bytes)
            self.out += value
        elif kind == _BINARY:
            assert isinstance(value, bytes)
            self.varint(len(value))
            self.out += value
        elif kind in (_LIST, _SET):
            element, items = value
            if len(items) < 15:
                self.out.append(len(items) << 4 | element)
            else:
                self.out.append(0xF0 | element)
                self.varint(len(items))
            for item in items:
                if element in (_TRUE, _FALSE):
                    self.out.append(item)
                else:
                    self.value(element, item)
        elif kind == _MAP:
            k, v, pairs = value
            self.varint(len(pairs))
            if pairs:
                self.out.append(k << 4 | v)
                for key, item in pairs:
                    self.value(k, key)
                    self.value(v, item)
        elif kind == _STRUCT:
            assert isinstance(value, list)
            self.struct(value)
        else:
            raise FooterError(f"unknown type {kind}")

    def struct(self, fields: list[Field]) -> None:
        last = 0
        for field_id, kind, value in fields:
            delta = field_id - last
            if 0 < delta <= 15:
                self.out.append(delta << 4 | kind)
            else:
                self.out.append(kind)
                self.zigzag(field_id)
            self.value(kind, value)
            last = field_id
        self.out.append(0)


def decode_footer(footer: bytes) -> list[Field]:
    """A footer's bytes (Thrift compact FileMetaData) as its fields; FooterError when they are not one."""
    reader = _Reader(footer)
    fields = reader.struct()
    if reader.at != len(footer):
        raise FooterError("the footer holds bytes past its end")
    return fields


def encode_footer(fields: list[Field]) -> bytes:
    """Fields (as `decode_footer` gives them) as a footer's bytes again."""
    writer = _Writer()
    writer.struct(fields)
    return bytes(writer.out)


def _get(fields: list[Field], field_id: int) -> Any:
    return next((value for fid, _, value in fields if fid == field_id), None)


def _set(fields: list[Field], field_id: int, value: Any) -> list[Field]:
    return [(fid, kind, value if fid == field_id else v) for fid, kind, v in fields]


def _row_groups(metadata: list[Field]) -> list[list[Field]]:
    found = _get(metadata, _FMD_ROW_GROUPS)
    if found is None:
        return []
    element, groups = found
    if element != _STRUCT:
        raise FooterError("the footer's row groups are not structs")
    return list(groups)


def _columns(group: list[Field]) -> list[list[Field]]:
    _, columns = _get(group, _RG_COLUMNS)
    return list(columns)


def _check_plain(metadata: list[Field]) -> None:
    """FooterError unless every row group lies in this file, unencrypted, without page indexes."""
    if any(fid in _FMD_ENCRYPTION for fid, _, _ in metadata):
        raise FooterError("the file is encrypted")
    for group in _row_groups(metadata):
        for column in _columns(group):
            ids = {fid for fid, _, _ in column}
            if _CC_FILE_PATH in ids or ids & _CC_ENCRYPTED or ids & _CC_PAGE_INDEX or _CC_META not in ids:
                raise FooterError("a column chunk lies in another file, is encrypted or has a page index")
            meta = _get(column, _CC_META)
            assert isinstance(meta, list)
            if any(fid == _CMD_BLOOM for fid, _, _ in meta):
                raise FooterError("a column chunk has a bloom filter")


@dataclass(frozen=True, slots=True)
class FooterLayout:
    """What splicing needs to know of a file's footer: rows per row group, and where the bytes of
    each row group end."""

    rows: tuple[int, ...]
    ends: tuple[int, ...]


def footer_layout(footer: bytes) -> FooterLayout:
    """Rows and end offsets of every row group of a footer (FooterError when it cannot be spliced)."""
    metadata = decode_footer(footer)
    _check_plain(metadata)
    rows, ends = [], []
    for group in _row_groups(metadata):
        rows.append(int(_get(group, _RG_NUM_ROWS)))
        end = 0
        for column in _columns(group):
            meta = _get(column, _CC_META)
            assert isinstance(meta, list)
            starts = [v for fid, _, v in meta if fid in (_CMD_DATA_PAGE, _CMD_INDEX_PAGE, _CMD_DICTIONARY_PAGE)]
            end = max(end, min(starts) + int(_get(meta, _CMD_COMPRESSED)))
        ends.append(end)
    return FooterLayout(tuple(rows), tuple(ends))


def _shifted_column(column: list[Field], shift: int) -> list[Field]:
    out: list[Field] = []
    for fid, kind, value in column:
        if fid == _CC_FILE_OFFSET and value:
            value = int(value) + shift
        elif fid == _CC_META:
            value = [
                (f, k, int(v) + shift if f in (_CMD_DATA_PAGE, _CMD_INDEX_PAGE, _CMD_DICTIONARY_PAGE) else v)
                for f, k, v in value
            ]
        out.append((fid, kind, value))
    return out


def _placed_group(group: list[Field], shift: int, ordinal: int) -> list[Field]:
    out: list[Field] = []
    for fid, kind, value in group:
        if fid == _RG_COLUMNS and shift:
            element, columns = value
            value = (element, [_shifted_column(c, shift) for c in columns])
        elif fid == _RG_FILE_OFFSET and shift and value:
            value = int(value) + shift
        elif fid == _RG_ORDINAL:
            value = ordinal
        out.append((fid, kind, value))
    return out


def spliced_footer(head: bytes, keep: int, tail: bytes, at: int) -> bytes:
    """The footer of a file made of the first `keep` row groups of the file whose footer is
    `head` (their bytes in place, up to where the last of them ends), followed by the bytes of a
    file whose footer is `tail`, less its leading magic, from byte `at` on: its row groups moved
    by as much, ordinals renumbered, row count summed. Everything else (schema, key-value
    metadata, writer) is the tail's, and the two schemas must be the same (FooterError otherwise)."""
    shift = at - len(MAGIC)
    head_fields, tail_fields = decode_footer(head), decode_footer(tail)
    _check_plain(head_fields)
    _check_plain(tail_fields)
    if _get(head_fields, _FMD_SCHEMA) != _get(tail_fields, _FMD_SCHEMA):
        raise FooterError("the two files have different schemas")
    kept = _row_groups(head_fields)
    if keep > len(kept):
        raise FooterError(f"the first file has {len(kept)} row groups, not {keep}")
    if (keep and at < footer_layout(head).ends[keep - 1]) or at < len(MAGIC):
        raise FooterError("the second file would overwrite the row groups kept from the first")
    groups = [_placed_group(g, 0, i) for i, g in enumerate(kept[:keep])]
    groups += [_placed_group(g, shift, keep + i) for i, g in enumerate(_row_groups(tail_fields))]
    rows = sum(int(_get(g, _RG_NUM_ROWS)) for g in groups)
    fields = _set(tail_fields, _FMD_NUM_ROWS, rows)
    if _get(fields, _FMD_ROW_GROUPS) is None:
        raise FooterError("the second file's footer lists no row groups")
    return encode_footer(_set(fields, _FMD_ROW_GROUPS, (_STRUCT, groups)))
