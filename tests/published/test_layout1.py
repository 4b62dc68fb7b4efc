"""A dataset written by the first layout (one folder of whole files per version) keeps working: read
as it is, validated, refreshed into the current layout, and its old files collected once no kept
version lists them. The dataset under tests/data/layout1 was written by the code of that layout
(commit f2dd200's `pipeline run`, on the sample and then a five-record capture)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from pipeline.consume.read import load
from pipeline.orchestrate.decisions import parent_facts, whole_assembly
from pipeline.orchestrate.steps import has_indexes
from pipeline.published import LAYOUT, Store, check_location, check_version, collect_garbage, prune, read_tables
from schemas.tables import MODELS
from tests.conftest import DATA, SAMPLE
from tests.refreshes import refresh

RECORDED = DATA / "layout1"


@pytest.fixture
def old(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the recorded dataset (`out`) and of the raw folder it was made from (`raw`)."""
    out, raw = tmp_path / "out", tmp_path / "raw"
    shutil.copytree(RECORDED / "out", out, symlinks=True)
    shutil.copytree(RECORDED / "raw", raw)
    shutil.copy(SAMPLE, raw / SAMPLE.name)
    return out, raw


def test_an_old_dataset_is_read_and_validated_as_it_is(old: tuple[Path, Path]) -> None:
    out, _ = old
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    store = Store.open(out)
    assert store.version_ids() == ["000001", "000002"]
    assert store.manifest("000002").layout == 1
    for version_id in ("000001", "000002"):
        assert check_version(store, version_id).empty
    assert check_location(str(out / "versions" / "000002")).empty
    tables = read_tables(store, "000002")
    assert {name: len(frame) for name, frame in tables.items()} == store.manifest("000002").row_counts
    assert load("papers", out=out)["paper_id"].tolist() == tables["papers"]["paper_id"].tolist()
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before  # reading wrote nothing


def test_the_first_refresh_of_an_old_dataset_writes_the_current_layout_whole(
    old: tuple[Path, Path], tmp_path: Path
) -> None:
    out, raw = old
    store = Store.open(out)
    parent = store.manifest("000002")
    facts = parent_facts(parent.document, parent.layout, has_indexes(parent))
    assert "older layout" in str(whole_assembly(facts, {}, "any code"))
    built = refresh(raw, out)
    assert not built.incremental
    store = Store.open(out)
    assert store.latest_id() == "000003"
    assert store.manifest("000003").layout == LAYOUT
    assert store.manifest("000003").parent_id == "000002"
    assert check_version(store, "000003").empty
    refresh(raw, tmp_path / "fresh", whole=True)  # the same captures, into a new store
    fresh = Store.open(tmp_path / "fresh")
    mine, theirs = read_tables(store, "000003"), read_tables(fresh, fresh.resolve(None))
    for name in MODELS:
        if name != "changes":  # against its parent here, against nothing there
            pd.testing.assert_frame_equal(mine[name], theirs[name], obj=name)
    assert mine["changes"].empty  # the same captures as its parent: nothing changed
    (raw / "listing_2026-11-28.txt").write_text((RECORDED / "raw" / "listing_2026-11-27.txt").read_text())
    assert refresh(raw, out).incremental  # and the next refresh reads its indexes


def test_an_old_versions_files_are_collected_once_no_kept_version_lists_them(old: tuple[Path, Path]) -> None:
    out, raw = old
    refresh(raw, out)
    (raw / "listing_2026-11-28.txt").write_text((RECORDED / "raw" / "listing_2026-11-27.txt").read_text())
    refresh(raw, out)
    store = Store.open(out)
    with store.lock(30):
        assert prune(store, keep=1) == ["000001", "000002"]  # latest and its parent are kept
        collect_garbage(store, grace_s=0)
    assert not (out / "versions" / "000001").exists()
    assert not (out / "versions" / "000002").exists()
    assert not list((out / "index").glob("*.parquet"))  # the first layout's index files
    for version_id in Store.open(out).version_ids():
        assert check_version(Store.open(out), version_id).empty
