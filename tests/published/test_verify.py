"""Verified reads: a table's files are read only when their sha256 agrees with the manifest, each once
however many versions share it; `show` and `diff` refuse what `validate` refuses."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.cli import main
from pipeline.errors import VersionDamagedError
from pipeline.published import Store, read_tables
from tests.damage import validate


def _papers_file(out: Path) -> Path:
    (key,) = [f.key for f in Store.open(out).manifest("000001").tables["papers"]]
    return out / key


def _flip_bit(file: Path, share: float) -> None:
    data = bytearray(file.read_bytes())
    data[min(int(len(data) * share), len(data) - 1)] ^= 0x04
    file.write_bytes(bytes(data))


def test_a_listed_file_damaged_or_deleted_is_refused_by_readers_and_named_by_validate(
    published: Path, tmp_path: Path, capsys
) -> None:
    for damage in ("flip", "delete"):
        out = tmp_path / damage
        shutil.copytree(published, out, symlinks=True)
        file = _papers_file(out)
        if damage == "flip":
            _flip_bit(file, 0.3)
        else:
            file.unlink()
        expected = "differs from the sha256 in its manifest" if damage == "flip" else "is missing"
        with pytest.raises(VersionDamagedError, match=expected):
            read_tables(Store.open(out), "000001", ["papers"])
        assert main(["show", "--out", str(out)]) == 2
        assert expected in capsys.readouterr().err
        code, output = validate(out / "versions" / "000001", capsys)
        assert code == 1
        assert file.name in output
        assert "Traceback" not in output


def test_an_edited_table_valid_as_parquet_is_refused_as_validate_refuses_it(published: Path, tmp_path: Path, capsys):
    """A title rewritten with valid page checksums: only the manifest's sha256 tells."""
    out = tmp_path / "out"
    shutil.copytree(published, out, symlinks=True)
    file = _papers_file(out)
    table = pq.read_table(file)
    titles = table.column("title").to_pylist()
    titles[0] = "An Edited Title"
    index = table.schema.get_field_index("title")
    pq.write_table(table.set_column(index, table.schema.field(index), pa.array(titles)), file, write_page_checksum=True)
    assert main(["show", "--out", str(out)]) == 2
    assert main(["diff", "000001", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "An Edited Title" not in captured.out
    assert "differs from the sha256 in its manifest" in captured.err


def test_a_file_several_versions_share_is_checked_once_per_reader(published: Path, tmp_path: Path, monkeypatch):
    from pipeline.storage import verified

    out = tmp_path / "out"
    shutil.copytree(published, out, symlinks=True)
    from tests.assembly import publish_frames

    store = Store.open(out)
    frames = read_tables(store, "000001")
    publish_frames(out, frames, {"fingerprint": "f2"})  # every table the same: every file shared
    reads: list[str] = []
    real = verified.file_digest

    def counted(path: Path) -> dict:
        reads.append(path.name)
        return real(path)

    monkeypatch.setattr(verified, "file_digest", counted)
    reader = Store.open(out)
    for version_id in reader.version_ids():
        read_tables(reader, version_id, ["papers"])
    assert len(reads) == 1
