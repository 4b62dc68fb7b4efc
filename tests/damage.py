"""Test helpers: a published version damaged or tampered with, and `validate` run on a folder as a
receiving team would."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq

from pipeline.cli import main
from pipeline.storage.files import file_digest


def validate(folder: Path, capsys) -> tuple[int, str]:
    """`python -m pipeline validate FOLDER` in process: its exit code and all it printed."""
    code = main(["validate", str(folder)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def flip_bit(offset_share: float) -> Callable[[Path], None]:
    """A damage: one bit of a version's papers file flipped, `offset_share` of the way into it."""

    def damage(folder: Path) -> None:
        file = folder / "papers.parquet"
        data = bytearray(file.read_bytes())
        data[min(int(len(data) * offset_share), len(data) - 1)] ^= 0x04
        file.write_bytes(bytes(data))

    return damage


def edit_title(folder: Path) -> None:
    """A valid Parquet file with one title changed: only the sha256 can tell."""
    table = pq.read_table(folder / "papers.parquet")
    titles = table.column("title").to_pylist()
    titles[0] = "An Edited Title"
    index = table.schema.get_field_index("title")
    edited = table.set_column(index, table.schema.field(index), [titles])
    pq.write_table(edited, folder / "papers.parquet", compression="zstd", write_page_checksum=True)


def rewrite_manifest(folder: Path, change: Callable[[dict], object]) -> None:
    """The manifest of `folder` read, changed in place by `change`, and written back."""
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    change(manifest)
    path.write_text(json.dumps(manifest), encoding="utf-8")


def rehash(folder: Path, relative: str) -> None:
    """The manifest's sha256 of one file put right after the file was changed, as a careless hand-off would."""
    rewrite_manifest(folder, lambda m: m["files"].update({relative: file_digest(folder / relative)}))
