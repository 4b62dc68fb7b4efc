"""The versioned store: immutable versions, atomic latest, crash safety, one writer at a time."""

from __future__ import annotations

import errno
import os
import threading
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from pipeline import store
from schemas import validate_dataset

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def tables(sample_tables):
    return validate_dataset(sample_tables)


def publish(out: Path, tables, fingerprint: str = "f1", force: bool = False) -> store.PublishOutcome:
    return store.publish_version(out, tables, {"fingerprint": fingerprint}, NOW, force=force)


def test_publish_writes_a_complete_version_and_points_latest(tmp_path: Path, tables) -> None:
    outcome = publish(tmp_path, tables)
    assert (outcome.version_id, outcome.published, outcome.parent_id) == ("000001", True, None)
    assert (tmp_path / "latest").resolve() == outcome.path.resolve()
    assert (tmp_path / "LATEST").read_text().strip() == "000001"
    manifest = store.read_manifest(tmp_path / "latest")
    assert manifest["created_at"] == "2026-11-26T12:00:00Z"
    assert manifest["row_counts"]["papers"] == 50
    assert (outcome.path / "contract" / "data_dictionary.md").is_file()
    read = store.read_tables(tmp_path / "latest")
    assert read["papers"]["published"].iloc[0].__class__ is date
    validate_dataset(read)


def test_same_fingerprint_publishes_nothing_unless_forced(tmp_path: Path, tables) -> None:
    publish(tmp_path, tables)
    again = publish(tmp_path, tables)
    assert (again.published, again.version_id) == (False, "000001")
    forced = publish(tmp_path, tables, force=True)
    assert (forced.published, forced.version_id, forced.parent_id) == (True, "000002", "000001")
    changed = publish(tmp_path, tables, fingerprint="f2")
    assert changed.version_id == "000003"
    assert store.version_ids(tmp_path) == ["000001", "000002", "000003"]


class SimulatedCrash(BaseException):
    """Stands for the process dying mid-write: nothing of the store's own handling runs."""


def _fail_on_fourth_table(monkeypatch, error: BaseException) -> None:
    real_write = store._write_parquet
    written: list[str] = []

    def write(frame, table, path):
        if len(written) == 3:
            raise error
        written.append(table)
        return real_write(frame, table, path)

    monkeypatch.setattr(store, "_write_parquet", write)


def _leftovers(out: Path) -> list[Path]:
    return [p for p in (out / "versions").iterdir() if p.name.startswith(".tmp-")]


def test_crash_mid_write_leaves_latest_intact_and_next_run_cleans_up(tmp_path: Path, tables, monkeypatch) -> None:
    publish(tmp_path, tables)
    before = (tmp_path / "latest" / "papers.parquet").read_bytes()
    _fail_on_fourth_table(monkeypatch, SimulatedCrash())
    with pytest.raises(SimulatedCrash):
        publish(tmp_path, tables, fingerprint="f2")
    monkeypatch.undo()

    assert store.latest_id(tmp_path) == "000001"
    assert (tmp_path / "latest" / "papers.parquet").read_bytes() == before
    assert store.version_ids(tmp_path) == ["000001"]
    assert _leftovers(tmp_path)

    outcome = publish(tmp_path, tables, fingerprint="f2")
    assert (outcome.version_id, outcome.parent_id) == ("000002", "000001")
    assert not _leftovers(tmp_path)


def test_failed_write_is_a_clear_error_that_leaves_nothing(tmp_path: Path, tables, monkeypatch) -> None:
    publish(tmp_path, tables)
    before = (tmp_path / "latest" / "papers.parquet").read_bytes()
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "versions" / "x" / "authors.parquet"))
    _fail_on_fourth_table(monkeypatch, full)
    with pytest.raises(store.StoreWriteError, match=r"cannot write .*authors.parquet: No space left on device") as err:
        publish(tmp_path, tables, fingerprint="f2")
    assert err.value.permanent  # the publish task does not retry it
    assert store.latest_id(tmp_path) == "000001"
    assert (tmp_path / "latest" / "papers.parquet").read_bytes() == before
    assert not _leftovers(tmp_path)
    assert store.version_ids(tmp_path) == ["000001"]


def test_pointer_file_serves_readers_without_symlinks(tmp_path: Path, tables) -> None:
    publish(tmp_path, tables)
    (tmp_path / "latest").unlink()
    assert store.latest_id(tmp_path) == "000001"
    assert store.version_path(tmp_path).name == "000001"


def test_second_writer_waits_then_reports_the_lock(tmp_path: Path) -> None:
    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with store.writer_lock(tmp_path, timeout_s=5):
            holding.set()
            release.wait(5)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert holding.wait(5)
        with pytest.raises(store.StoreLockedError, match="another run"), store.writer_lock(tmp_path, timeout_s=0.5):
            pass
    finally:
        release.set()
        thread.join()
    with store.writer_lock(tmp_path, timeout_s=1):
        pass


def test_reading_a_missing_version_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(store.StoreError, match="no version has been published"):
        store.version_path(tmp_path)
    with pytest.raises(store.StoreError, match="does not exist"):
        store.version_path(tmp_path, "000009")
