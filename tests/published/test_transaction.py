"""A version published as one transaction: complete and the child of latest when it commits, nothing
left of it when it fails or the process dies mid-write."""

from __future__ import annotations

import errno
import os
from datetime import date
from pathlib import Path

import pytest

from pipeline.errors import StoreWriteError
from pipeline.published import transaction
from pipeline.published.manifest import read_manifest
from pipeline.published.verify import read_tables
from pipeline.published.versions import latest_id, version_ids
from pipeline.published.writer import write_batches
from tests.published.conftest import publish
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
