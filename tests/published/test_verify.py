"""Verified reads: a version's files are read only when their sha256, page checksums and types agree
with the manifest; `show` and `diff` refuse what `validate` refuses."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.cli import main
from pipeline.errors import VersionDamagedError
from pipeline.published.verify import read_tables
from tests.damage import edit_title, flip_bit, rehash, validate


def test_reading_a_damaged_version_is_a_clear_error(copy: Path) -> None:
    flip_bit(0.3)(copy)
    with pytest.raises(VersionDamagedError, match=r"papers.parquet differs from the sha256 in its manifest"):
        read_tables(copy, ["papers"])


def _rewrite_column(folder: Path, name: str, values: Callable[[int], pa.Array]) -> None:
    """The column `name` of the papers file replaced by `values(number of rows)`, the manifest put right."""
    table = pq.read_table(folder / "papers.parquet")
    index = table.schema.get_field_index(name)
    column = values(table.num_rows)
    table = table.set_column(index, table.schema.field(index).with_type(column.type), column)
    pq.write_table(table, folder / "papers.parquet", write_page_checksum=True)
    rehash(folder, "papers.parquet")


@pytest.mark.parametrize(
    "column",
    [
        ("title", lambda n: pa.array([b"\xff"] * n, pa.binary()).view(pa.string())),  # not UTF-8
        ("published", lambda n: pa.array([2**31 - 1] * n, pa.int32()).cast(pa.date32())),  # year 5881580
        ("title", lambda n: pa.array([["a"]] * n)),  # list<string>
    ],
    ids=["invalid utf-8", "date past year 9999", "list column"],
)
def test_values_no_reader_can_take_are_damage_everywhere(published: Path, tmp_path: Path, capsys, column) -> None:
    name, values = column
    out = tmp_path / "out"
    shutil.copytree(published, out, symlinks=True)
    version = out / "versions" / "000001"
    _rewrite_column(version, name, values)
    code, output = validate(version, capsys)
    assert code == 1, output
    assert "Traceback" not in output
    assert main(["show", "--out", str(out)]) == 2
    assert main(["diff", "000001", "--out", str(out)]) == 2
    assert "papers.parquet" in capsys.readouterr().err
    with pytest.raises(VersionDamagedError):
        read_tables(version, ["papers"])


def test_show_and_diff_refuse_an_edited_table_as_validate_does(published: Path, tmp_path: Path, capsys) -> None:
    """A title rewritten with valid page checksums: only the manifest's sha256 tells."""
    out = tmp_path / "out"
    shutil.copytree(published, out, symlinks=True)
    edit_title(out / "versions" / "000001")
    assert main(["show", "--out", str(out)]) == 2
    assert main(["diff", "000001", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "An Edited Title" not in captured.out
    assert "differs from the sha256 in its manifest" in captured.err
