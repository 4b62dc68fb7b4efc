"""`validate`: a version handed to another team conforms; damage and tampering are named, every problem
in a clean line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.published import Store, check_location, check_version, export_version
from pipeline.published.layout import CONTRACT_FILES
from pipeline.storage.files import file_digest
from tests.damage import edit_title, flip_bit, rehash, validate


def test_a_published_version_conforms(copy: Path, capsys) -> None:
    code, output = validate(copy, capsys)
    assert code == 0, output
    manifest = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    assert set(manifest["files"]) >= {"papers.parquet", "contract/schema.json", "contract/data_dictionary.md"}
    assert manifest["files"]["papers.parquet"] == file_digest(copy / "papers.parquet")
    # pages carry checksums, verified on every read
    metadata = pq.ParquetFile(copy / "papers.parquet").metadata
    assert metadata.num_row_groups >= 1


def _truncate(folder: Path) -> None:
    file = folder / "papers.parquet"
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


def _empty(folder: Path) -> None:
    (folder / "papers.parquet").write_bytes(b"")


def _bad_manifest(folder: Path) -> None:
    (folder / "manifest.json").write_text("{not json", encoding="utf-8")


def _no_manifest(folder: Path) -> None:
    (folder / "manifest.json").unlink()


def _no_contract(folder: Path) -> None:
    shutil.rmtree(folder / "contract")


DAMAGE = {
    **{f"bit flip at {share:.0%}": flip_bit(share) for share in (0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.45, 0.6)},
    **{f"bit flip at {share:.1%} (footer)": flip_bit(share) for share in (0.9, 0.97, 0.995, 0.9999)},
    "truncated": _truncate,
    "zero bytes": _empty,
    "manifest not JSON": _bad_manifest,
    "edited title": edit_title,
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
    edit_title(copy)
    _no_contract(copy)
    code, output = validate(copy, capsys)
    assert code == 1
    assert "papers.parquet: sha256" in output
    assert "contract/schema.json: file_present" in output
    assert "contract/data_dictionary.md: file_present" in output


def test_a_rewritten_contract_with_matching_sha256_is_caught(copy: Path, capsys) -> None:
    for relative in CONTRACT_FILES:
        (copy / relative).write_text("junk", encoding="utf-8")
        rehash(copy, relative)
    code, output = validate(copy, capsys)
    assert code == 1
    assert "contract/schema.json: contract_current" in output


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


@pytest.mark.flow
def test_validate_checks_each_footer_against_the_manifest(flow_versions: Path, tmp_path: Path) -> None:
    """A file moved in from another version's hand-off (its sha256 put in the manifest, as a
    careless hand-off would) is caught by what its footer says."""
    store = Store.open(flow_versions)
    first, second = tmp_path / "000001", tmp_path / "000002"
    export_version(store, "000001", first)
    export_version(store, "000002", second)
    assert check_location(second).empty
    moved = second / "categories.parquet"
    shutil.copyfile(first / "categories.parquet", moved)
    manifest = json.loads((second / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"]["categories.parquet"] = file_digest(moved)
    (second / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    report = check_location(second)
    assert report["check"].tolist() == ["footer(paper_listings.version_id=000002)"]
    assert report["failure_case"].tolist() == ["000001"]


def test_a_version_in_its_store_is_checked_there_and_every_file_named(published: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(published, out, symlinks=True)
    assert check_location(out / "versions" / "000001").empty
    assert check_location(out / "latest").empty
    assert check_version(Store.open(out), "000001").empty
    (key,) = [f.key for f in Store.open(out).manifest("000001").tables["authors"]]
    (out / key).unlink()
    report = check_location(out / "versions" / "000001")
    assert report.loc[report["table"] == key, "check"].tolist() == ["file_present"]
