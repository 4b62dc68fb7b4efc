"""A version published as one transaction: complete and the child of latest when it commits, nothing
left of it when it fails or the process dies mid-write."""

from __future__ import annotations

import errno
import os
from datetime import date
from pathlib import Path

import pytest

from pipeline.errors import DatasetInvalidError, StoreError, StoreWriteError
from pipeline.published import transaction
from pipeline.published.manifest import read_manifest
from pipeline.published.transaction import VersionTransaction
from pipeline.published.verify import read_tables
from pipeline.published.versions import latest_id, version_ids
from pipeline.published.writer import write_batches
from pipeline.storage.local import file_digest
from schemas.contract import schema_fingerprint
from schemas.validate import batch_failures
from tests.assembly import frame_batches
from tests.published.conftest import NOW, publish
from tests.validation import validate_dataset


def test_publish_writes_a_complete_version_and_points_latest(tmp_path: Path, tables, gold) -> None:
    outcome = publish(tmp_path, tables)
    assert (outcome.version_id, outcome.published, outcome.parent_id) == ("000001", True, None)
    assert (tmp_path / "latest").resolve() == outcome.path.resolve()
    assert (tmp_path / "LATEST_ID").read_text().strip() == "000001"
    manifest = read_manifest(tmp_path / "latest")
    assert manifest["created_at"] == "2026-11-26T12:00:00Z"
    assert manifest["row_counts"]["papers"] == gold.papers
    assert (outcome.path / "contract" / "data_dictionary.md").is_file()
    read = read_tables(tmp_path / "latest")
    assert read["papers"]["published"].iloc[0].__class__ is date
    validate_dataset(read)


def test_every_transaction_publishes_a_child_of_latest(tmp_path: Path, tables) -> None:
    """Whether to publish at all is the flow's decision (`decisions.up_to_date`): a transaction
    that commits always makes a new version, whose parent is latest."""
    publish(tmp_path, tables)
    again = publish(tmp_path, tables)
    assert (again.published, again.version_id, again.parent_id) == (True, "000002", "000001")
    assert version_ids(tmp_path) == ["000001", "000002"]


class SimulatedCrash(BaseException):
    """Stands for the process dying mid-write: nothing of the store's own handling runs."""


def _fail_on_fourth_table(monkeypatch, error: BaseException) -> None:
    real_write = write_batches
    written: list[str] = []

    def write(table, batches, path, check, *args, **kwargs):
        if len(written) == 3:
            raise error
        written.append(table)
        return real_write(table, batches, path, check, *args, **kwargs)

    monkeypatch.setattr(transaction, "write_batches", write)


def _leftovers(out: Path) -> list[Path]:
    return [p for p in (out / "versions").iterdir() if p.name.startswith(".tmp-")]


def test_crash_mid_write_leaves_latest_intact_and_next_run_cleans_up(tmp_path: Path, tables, monkeypatch) -> None:
    publish(tmp_path, tables)
    before = (tmp_path / "latest" / "papers.parquet").read_bytes()
    _fail_on_fourth_table(monkeypatch, SimulatedCrash())
    with pytest.raises(SimulatedCrash):
        publish(tmp_path, tables, fingerprint="f2")
    monkeypatch.undo()

    assert latest_id(tmp_path) == "000001"
    assert (tmp_path / "latest" / "papers.parquet").read_bytes() == before
    assert version_ids(tmp_path) == ["000001"]
    assert _leftovers(tmp_path)

    outcome = publish(tmp_path, tables, fingerprint="f2")
    assert (outcome.version_id, outcome.parent_id) == ("000002", "000001")
    assert not _leftovers(tmp_path)


def test_failed_write_is_a_clear_error_that_leaves_nothing(tmp_path: Path, tables, monkeypatch) -> None:
    publish(tmp_path, tables)
    before = (tmp_path / "latest" / "papers.parquet").read_bytes()
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "versions" / "x" / "authors.parquet"))
    _fail_on_fourth_table(monkeypatch, full)
    with pytest.raises(StoreWriteError, match=r"cannot write .*authors.parquet: No space left on device") as err:
        publish(tmp_path, tables, fingerprint="f2")
    assert err.value.permanent  # the publish task does not retry it
    assert latest_id(tmp_path) == "000001"
    assert (tmp_path / "latest" / "papers.parquet").read_bytes() == before
    assert not _leftovers(tmp_path)
    assert version_ids(tmp_path) == ["000001"]


# --- the transaction as an object: commit is the only way in, any exception rolls back ----------


def _frames_sources(tables) -> dict:
    return {name: (lambda name=name: frame_batches(name, tables[name])) for name in tables}


def test_leaving_a_transaction_without_commit_publishes_nothing(tmp_path: Path, tables) -> None:
    with VersionTransaction(tmp_path, None) as tx:
        tx.write_tables(_frames_sources(tables), batch_failures)
        assert tx.folder.is_dir()
    assert version_ids(tmp_path) == []
    assert latest_id(tmp_path) is None
    assert [p.name for p in (tmp_path / "versions").iterdir()] == []


def test_an_exception_inside_the_block_rolls_everything_back(tmp_path: Path, tables) -> None:
    publish(tmp_path, tables)

    def fail_midway() -> None:
        with VersionTransaction(tmp_path, "000001") as tx:
            tx.write_tables(_frames_sources(tables), batch_failures)
            tx.add_file("report.html", "<p>")
            raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        fail_midway()
    assert (version_ids(tmp_path), latest_id(tmp_path)) == (["000001"], "000001")
    assert [p.name for p in (tmp_path / "versions").iterdir()] == ["000001"]


def test_a_failed_check_publishes_nothing_and_names_the_rows(tmp_path: Path, tables) -> None:
    bad = dict(tables)
    bad["papers"] = tables["papers"].assign(score=1_000.0)
    with pytest.raises(DatasetInvalidError, match="score"), VersionTransaction(tmp_path, None) as tx:
        tx.write_tables(_frames_sources(bad), batch_failures)
    assert version_ids(tmp_path) == []
    assert [p.name for p in (tmp_path / "versions").iterdir()] == []


def test_commit_writes_the_manifest_last_and_only_where_none_is(tmp_path: Path, tables) -> None:

    def commit_over_a_manifest() -> None:
        with VersionTransaction(tmp_path, None) as tx:
            tx.write_tables(_frames_sources(tables), batch_failures)
            (tx.folder / "manifest.json").write_text("{}")  # as if another writer had committed this folder
            tx.commit({"fingerprint": "f"}, NOW)

    with pytest.raises(StoreError, match="another writer's manifest"):
        commit_over_a_manifest()
    assert version_ids(tmp_path) == []
    assert latest_id(tmp_path) is None


def test_commit_makes_the_version_visible_with_every_file_listed(tmp_path: Path, tables) -> None:
    with VersionTransaction(tmp_path, None) as tx:
        tx.write_tables(_frames_sources(tables), batch_failures)
        tx.add_file("report.html", "<p>report</p>")
        assert version_ids(tmp_path) == []  # nothing visible before the commit
        outcome = tx.commit({"fingerprint": "f"}, NOW)
    assert (outcome.version_id, outcome.published, latest_id(tmp_path)) == ("000001", True, "000001")
    manifest = read_manifest(outcome.path)
    assert manifest["schema_fingerprint"] == schema_fingerprint()
    assert set(manifest["files"]) == {f"{n}.parquet" for n in tables} | {
        "report.html",
        "contract/schema.json",
        "contract/data_dictionary.md",
    }
    assert manifest["files"]["report.html"] == file_digest(outcome.path / "report.html")
