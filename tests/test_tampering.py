"""Damage and tampering: `validate` names every problem in clean lines; ids and paths stay inside OUT."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline import store
from pipeline.__main__ import main
from schemas import validate_dataset


@pytest.fixture(scope="module")
def published(sample_tables, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("published")
    store.publish_version(
        out, validate_dataset(sample_tables), {"fingerprint": "f1"}, datetime(2026, 11, 26, tzinfo=UTC)
    )
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
    assert manifest["files"]["papers.parquet"] == store.file_digest(copy / "papers.parquet")
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
    with pytest.raises(store.VersionDamagedError, match=r"papers.parquet cannot be read"):
        store.read_tables(copy, ["papers"])


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
    with pytest.raises(store.StoreError, match="not a version id"):
        store.version_path(out, version)
    assert main(["show", "--out", str(out), "--version", version]) == 2
    assert main(["diff", version, "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "not a version id" in captured.err
    assert "papers:" not in captured.out


def test_a_version_folder_linked_elsewhere_is_not_read(out_with_decoy) -> None:
    out, decoy = out_with_decoy
    (out / "versions" / "000002").symlink_to(decoy, target_is_directory=True)
    assert store.version_ids(out) == ["000001"]
    with pytest.raises(store.StoreError, match="does not exist"):
        store.version_path(out, "000002")


@pytest.mark.parametrize("pointer", ["../decoy", "/etc", "versions/../../decoy", "000001\nextra"])
def test_a_latest_pointer_leading_elsewhere_is_refused(out_with_decoy, capsys, pointer: str) -> None:
    out, _ = out_with_decoy
    (out / "latest").unlink()
    (out / "LATEST").write_text(pointer, encoding="utf-8")
    with pytest.raises(store.StoreError, match="refusing to follow"):
        store.latest_id(out)
    assert main(["show", "--out", str(out)]) == 2
    assert "refusing to follow" in capsys.readouterr().err


def test_a_latest_link_leading_elsewhere_is_refused(out_with_decoy) -> None:
    out, decoy = out_with_decoy
    (out / "latest").unlink()
    (out / "latest").symlink_to(decoy, target_is_directory=True)
    with pytest.raises(store.StoreError, match="refusing to follow"):
        store.latest_id(out)
