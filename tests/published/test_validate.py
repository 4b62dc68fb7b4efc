"""Damage and tampering: `validate` names every problem in clean lines; ids and paths stay inside OUT."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.cli import main
from pipeline.errors import StoreError, VersionDamagedError
from pipeline.published.layout import CONTRACT_FILES
from pipeline.published.verify import read_tables
from pipeline.published.versions import latest_id, version_ids, version_path
from pipeline.storage.local import file_digest
from tests.assembly import publish_frames
from tests.validation import validate_dataset


@pytest.fixture(scope="module")
def published(sample_tables, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("published")
    publish_frames(out, validate_dataset(sample_tables), {"fingerprint": "f1"}, datetime(2026, 11, 26, tzinfo=UTC))
    return out


@pytest.fixture
def copy(published: Path, tmp_path: Path) -> Path:
    """A copy of the version, as handed to another team."""
    target = tmp_path / "handoff"
    shutil.copytree(published / "latest", target)
    return target


def validate(folder: Path, capsys) -> tuple[int, str]:
    code = main(["validate", str(folder)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_a_published_version_conforms(copy: Path, capsys) -> None:
    code, output = validate(copy, capsys)
    assert code == 0, output
    manifest = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    assert set(manifest["files"]) >= {"papers.parquet", "contract/schema.json", "contract/data_dictionary.md"}
    assert manifest["files"]["papers.parquet"] == file_digest(copy / "papers.parquet")
    # pages carry checksums, verified on every read
    metadata = pq.ParquetFile(copy / "papers.parquet").metadata
    assert metadata.num_row_groups >= 1


def _flip_bit(offset_share: float) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        file = folder / "papers.parquet"
        data = bytearray(file.read_bytes())
        data[min(int(len(data) * offset_share), len(data) - 1)] ^= 0x04
        file.write_bytes(bytes(data))

    return damage


def _truncate(folder: Path) -> None:
    file = folder / "papers.parquet"
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


def _empty(folder: Path) -> None:
    (folder / "papers.parquet").write_bytes(b"")


def _bad_manifest(folder: Path) -> None:
    (folder / "manifest.json").write_text("{not json", encoding="utf-8")


def _edit_title(folder: Path) -> None:
    """A valid Parquet file with one title changed: only the sha256 can tell."""
    table = pq.read_table(folder / "papers.parquet")
    titles = table.column("title").to_pylist()
    titles[0] = "An Edited Title"
    index = table.schema.get_field_index("title")
    edited = table.set_column(index, table.schema.field(index), [titles])
    pq.write_table(edited, folder / "papers.parquet", compression="zstd", write_page_checksum=True)


def _no_manifest(folder: Path) -> None:
    (folder / "manifest.json").unlink()


def _no_contract(folder: Path) -> None:
    shutil.rmtree(folder / "contract")


DAMAGE = {
    **{f"bit flip at {share:.0%}": _flip_bit(share) for share in (0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.45, 0.6)},
    **{f"bit flip at {share:.1%} (footer)": _flip_bit(share) for share in (0.9, 0.97, 0.995, 0.9999)},
    "truncated": _truncate,
    "zero bytes": _empty,
    "manifest not JSON": _bad_manifest,
    "edited title": _edit_title,
    "manifest deleted": _no_manifest,
    "contract deleted": _no_contract,
}


@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
def test_damage_and_tampering_are_reported_as_clean_lines(copy: Path, capsys, damage: str) -> None:
    DAMAGE[damage](copy)
    code, output = validate(copy, capsys)
    assert code == 1, output
    assert "does not conform" in output
    assert "Traceback" not in output


def test_each_problem_is_named(copy: Path, capsys) -> None:
    _edit_title(copy)
    _no_contract(copy)
    code, output = validate(copy, capsys)
    assert code == 1
    assert "papers.parquet: sha256" in output
    assert "contract/schema.json: file_present" in output
    assert "contract/data_dictionary.md: file_present" in output


def test_reading_a_damaged_version_is_a_clear_error(copy: Path) -> None:
    _flip_bit(0.3)(copy)
    with pytest.raises(VersionDamagedError, match=r"papers.parquet differs from the sha256 in its manifest"):
        read_tables(copy, ["papers"])


# --- ids and paths ------------------------------------------------------------------------------


@pytest.fixture
def out_with_decoy(published: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A dataset folder, and beside it a decoy version that must never be read through it."""
    out = tmp_path / "data" / "processed"
    shutil.copytree(published, out, symlinks=True)
    decoy = tmp_path / "decoy"
    shutil.copytree(published / "versions" / "000001", decoy)
    return out, decoy


@pytest.mark.parametrize("version", ["../../decoy", "000001/../../../decoy", "/tmp", "1", "0000001", "00000a"])
def test_version_ids_must_have_their_exact_shape(out_with_decoy, capsys, version: str) -> None:
    out, _ = out_with_decoy
    with pytest.raises(StoreError, match="not a version id"):
        version_path(out, version)
    assert main(["show", "--out", str(out), "--version", version]) == 2
    assert main(["diff", version, "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "not a version id" in captured.err
    assert "papers:" not in captured.out


def test_a_version_folder_linked_elsewhere_is_not_read(out_with_decoy) -> None:
    out, decoy = out_with_decoy
    (out / "versions" / "000002").symlink_to(decoy, target_is_directory=True)
    assert version_ids(out) == ["000001"]
    with pytest.raises(StoreError, match="does not exist"):
        version_path(out, "000002")


@pytest.mark.parametrize("pointer", ["../decoy", "/etc", "versions/../../decoy", "000001\nextra"])
def test_a_latest_pointer_leading_elsewhere_is_refused(out_with_decoy, capsys, pointer: str) -> None:
    out, _ = out_with_decoy
    (out / "latest").unlink()
    (out / "LATEST_ID").write_text(pointer, encoding="utf-8")
    with pytest.raises(StoreError, match="refusing to follow"):
        latest_id(out)
    assert main(["show", "--out", str(out)]) == 2
    assert "refusing to follow" in capsys.readouterr().err


def test_a_latest_link_leading_elsewhere_is_refused(out_with_decoy) -> None:
    out, decoy = out_with_decoy
    (out / "latest").unlink()
    (out / "latest").symlink_to(decoy, target_is_directory=True)
    with pytest.raises(StoreError, match="refusing to follow"):
        latest_id(out)


# --- manifests and tables of the wrong shape ------------------------------------------------------


def _rewrite_manifest(folder: Path, change: Callable[[dict], object]) -> None:
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    change(manifest)
    path.write_text(json.dumps(manifest), encoding="utf-8")


MANIFEST_DAMAGE: dict[str, Callable[[Path], None]] = {
    "deeply nested": lambda f: (f / "manifest.json").write_text("[" * 200_000, encoding="utf-8"),
    "huge number": lambda f: (f / "manifest.json").write_text('{"id": ' + "1" * 5_000 + "}", encoding="utf-8"),
    "row_counts not an object": lambda f: _rewrite_manifest(f, lambda m: m.update(row_counts=5)),
    "inputs not a list": lambda f: _rewrite_manifest(f, lambda m: m.update(inputs=5)),
    "a file name too long": lambda f: _rewrite_manifest(f, lambda m: m["files"].update({"a" * 300: {}})),
    "a file outside the folder": lambda f: _rewrite_manifest(f, lambda m: m["files"].update({"../../x": {}})),
}


@pytest.mark.parametrize("damage", list(MANIFEST_DAMAGE), ids=list(MANIFEST_DAMAGE))
def test_manifests_of_the_wrong_shape_are_damage_not_a_crash(published: Path, tmp_path: Path, capsys, damage) -> None:
    out = tmp_path / "out"
    shutil.copytree(published, out, symlinks=True)
    MANIFEST_DAMAGE[damage](out / "versions" / "000001")
    code, output = validate(out / "versions" / "000001", capsys)
    assert code == 1, output
    assert "Traceback" not in output
    assert main(["show", "--out", str(out)]) == 2
    assert main(["diff", "000001", "--out", str(out)]) == 2
    assert main(["versions", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert "000001  (damaged: its manifest cannot be read; see `validate`)" in captured.out


def _rehash(folder: Path, relative: str) -> None:
    _rewrite_manifest(folder, lambda m: m["files"].update({relative: file_digest(folder / relative)}))


def test_a_rewritten_contract_with_matching_sha256_is_caught(copy: Path, capsys) -> None:
    for relative in CONTRACT_FILES:
        (copy / relative).write_text("junk", encoding="utf-8")
        _rehash(copy, relative)
    code, output = validate(copy, capsys)
    assert code == 1
    assert "contract/schema.json: contract_current" in output


def _rewrite_column(folder: Path, name: str, values: pa.Array) -> None:
    table = pq.read_table(folder / "papers.parquet")
    index = table.schema.get_field_index(name)
    table = table.set_column(index, table.schema.field(index).with_type(values.type), values)
    pq.write_table(table, folder / "papers.parquet", write_page_checksum=True)
    _rehash(folder, "papers.parquet")


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
    _rewrite_column(version, name, values(50))
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
    _edit_title(out / "versions" / "000001")
    assert main(["show", "--out", str(out)]) == 2
    assert main(["diff", "000001", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "An Edited Title" not in captured.out
    assert "differs from the sha256 in its manifest" in captured.err


def test_a_version_copied_under_another_id_is_damage(published: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    shutil.copytree(published, out, symlinks=True)
    shutil.copytree(out / "versions" / "000001", out / "versions" / "000002")
    assert main(["show", "--out", str(out), "--version", "000002"]) == 2
    assert "its id '000001' is not its folder's name '000002'" in capsys.readouterr().err
    code, output = validate(out / "versions" / "000002", capsys)
    assert code == 1
    assert "is not its folder's name" in output


def test_a_latest_pointing_at_a_missing_version_says_what_to_do(published: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    shutil.copytree(published, out, symlinks=True)
    (out / "latest").unlink()
    (out / "latest").symlink_to("versions/000003", target_is_directory=True)
    assert main(["show", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "latest points to version 000003, which does not exist" in err
    assert "ln -sfn versions/<id>" in err


def test_validate_takes_a_folder_under_any_path(copy: Path, tmp_path: Path, capsys) -> None:
    """Keys are checked over the files handed to DuckDB as Arrow datasets: a path it would read as a
    pattern (a [1] in it) neither fails nor reads another folder's files."""
    odd = tmp_path / "handoff[1]"
    shutil.copytree(copy, odd)
    neighbour = tmp_path / "handoff1"  # what the pattern [1] matches: its authors break the keys
    shutil.copytree(copy, neighbour)
    authors = pq.read_table(neighbour / "authors.parquet")
    pq.write_table(pa.concat_tables([authors, authors]), neighbour / "authors.parquet")
    assert "unique(author_id)" in validate(neighbour, capsys)[1]
    code, output = validate(odd, capsys)
    assert code == 0, output
