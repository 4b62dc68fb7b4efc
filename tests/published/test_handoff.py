"""A hand-off: one version as a self-contained folder (one file per table), on disk or S3, which `validate` accepts."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.errors import StoreError
from pipeline.published import Store, check_location, export_version, read_tables
from schemas.tables import MODELS


def test_a_version_handed_over_holds_its_tables_one_file_each_and_validates(published: Path, tmp_path: Path) -> None:
    target = tmp_path / "handoff"
    where, rows = export_version(Store.open(published), "000001", target)
    assert where == str(target)
    manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    assert set(manifest["files"]) == {f"{name}.parquet" for name in MODELS} | {
        "contract/schema.json", "contract/data_dictionary.md", "report.html"
    }  # fmt: skip
    assert manifest["row_counts"] == rows == Store.open(published).manifest("000001").row_counts
    tables = read_tables(Store.open(published), "000001")
    for name in MODELS:
        handed = pq.read_table(target / f"{name}.parquet").to_pandas(date_as_object=True)
        assert handed.astype(str).equals(tables[name].astype(str)), name
        footer = pq.read_metadata(target / f"{name}.parquet").metadata
        assert footer[b"paper_listings.version_id"] == b"000001"
    assert check_location(target).empty


def test_a_hand_off_is_written_only_into_an_empty_place(published: Path, tmp_path: Path) -> None:
    target = tmp_path / "handoff"
    target.mkdir()
    (target / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(StoreError, match="is not empty"):
        export_version(Store.open(published), "000001", target)
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]


@pytest.mark.server
def test_a_hand_off_to_s3_validates_there(published: Path, s3, s3_prefix) -> None:
    export_version(Store.open(published), "000001", f"{s3_prefix}/handoff")
    assert check_location(f"{s3_prefix}/handoff").empty
