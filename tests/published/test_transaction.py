"""The versioned store: immutable versions, atomic latest, crash safety, one writer at a time."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import threading
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from pipeline.errors import StoreError, StoreLockedError, StoreWriteError
from pipeline.published import transaction
from pipeline.published.cleanup import clean_incomplete
from pipeline.published.layout import check_writable
from pipeline.published.manifest import read_manifest
from pipeline.published.transaction import PublishOutcome
from pipeline.published.verify import read_tables
from pipeline.published.versions import latest_id, version_ids, version_path
from pipeline.published.writer import write_batches
from pipeline.storage.local import HOST
from pipeline.storage.lock import writer_lock
from tests.assembly import publish_frames
from tests.validation import validate_dataset

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def tables(sample_tables):
    return validate_dataset(sample_tables)


def publish(out: Path, tables, fingerprint: str = "f1") -> PublishOutcome:
    return publish_frames(out, tables, {"fingerprint": fingerprint}, NOW)


def test_publish_writes_a_complete_version_and_points_latest(tmp_path: Path, tables) -> None:
    outcome = publish(tmp_path, tables)
    assert (outcome.version_id, outcome.published, outcome.parent_id) == ("000001", True, None)
    assert (tmp_path / "latest").resolve() == outcome.path.resolve()
    assert (tmp_path / "LATEST_ID").read_text().strip() == "000001"
    manifest = read_manifest(tmp_path / "latest")
    assert manifest["created_at"] == "2026-11-26T12:00:00Z"
    assert manifest["row_counts"]["papers"] == 50
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


def test_pointer_file_serves_readers_without_symlinks(tmp_path: Path, tables) -> None:
    publish(tmp_path, tables)
    (tmp_path / "latest").unlink()
    assert latest_id(tmp_path) == "000001"
    assert version_path(tmp_path).name == "000001"


def test_second_writer_waits_then_reports_the_lock(tmp_path: Path) -> None:
    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with writer_lock(tmp_path, timeout_s=5):
            holding.set()
            release.wait(5)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert holding.wait(5)
        with pytest.raises(StoreLockedError, match="another run"), writer_lock(tmp_path, timeout_s=0.5):
            pass
    finally:
        release.set()
        thread.join()
    with writer_lock(tmp_path, timeout_s=1):
        pass


def test_reading_a_missing_version_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no version has been published"):
        version_path(tmp_path)
    with pytest.raises(StoreError, match="does not exist"):
        version_path(tmp_path, "000009")


# --- an output folder whose own entries are of the wrong kind -------------------------------------


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "notes.md").write_text("precious", encoding="utf-8")
    return victim


@pytest.mark.parametrize("entry", ["staged", "versions", "rejected", "index", ".lock", "LATEST_ID"])
def test_links_among_the_stores_own_entries_are_refused(tmp_path: Path, tables, entry: str) -> None:
    """Writing through them would act outside OUT: a link as `staged` had its target pruned."""
    out = tmp_path / "out"
    out.mkdir()
    victim = _victim(tmp_path)
    (out / entry).symlink_to(victim if entry in ("staged", "versions", "rejected", "index") else victim / "notes.md")
    with pytest.raises(StoreError, match=rf"{entry} is not a (folder|file): refusing to write through it"):
        check_writable(out)
    assert (victim / "notes.md").read_text(encoding="utf-8") == "precious"


def test_a_latest_that_is_a_real_folder_is_refused_before_publishing(tmp_path: Path, tables) -> None:
    """A `latest` copied with `cp -rL` would stay stale while LATEST_ID moved on."""
    publish(tmp_path, tables)
    (tmp_path / "latest").unlink()
    shutil.copytree(tmp_path / "versions" / "000001", tmp_path / "latest")
    with pytest.raises(StoreError, match="latest is not a link"):
        check_writable(tmp_path)


def test_without_pointers_the_newest_version_is_latest(tmp_path: Path, tables) -> None:
    """A crash between a version's rename and the pointer swap leaves a complete version only."""
    publish(tmp_path, tables)
    publish(tmp_path, tables, fingerprint="f2")
    (tmp_path / "latest").unlink()
    (tmp_path / "LATEST_ID").unlink()
    assert latest_id(tmp_path) == "000002"
    assert publish(tmp_path, tables, fingerprint="f3").parent_id == "000002"


def test_leftovers_of_dead_runs_go_and_work_of_live_runs_stays(tmp_path: Path) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    here = HOST
    with subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE) as live:
        alive = versions / f".tmp-000002-h{here}-pid{live.pid}-t1"
        alive.mkdir()
        dead = versions / f".tmp-000003-h{here}-pid999999999-t1"  # no such process
        dead.mkdir()
        elsewhere = versions / ".tmp-000004-hffffffff-pid1-t1"  # another host's: cannot be checked
        elsewhere.mkdir()
        crashed = tmp_path / ".tmp-LATEST_ID-1234"  # an older name without an owner: a leftover
        crashed.write_text("000001", encoding="utf-8")
        assert sorted(clean_incomplete(tmp_path)) == sorted([dead, crashed])
        assert alive.is_dir()
        live.communicate(b"")
    assert clean_incomplete(tmp_path) == [alive]
    assert elsewhere.is_dir()


def _failing_replace(monkeypatch, name: str, code: int) -> None:
    """Make renaming onto `name` fail with `code`, as a real file system can."""
    real_replace = Path.replace

    def replace(self: Path, target):
        if Path(target).name == name:
            raise OSError(code, os.strerror(code), str(target))
        return real_replace(self, target)

    monkeypatch.setattr(Path, "replace", replace)


@pytest.mark.parametrize(("name", "code"), [("LATEST_ID", errno.EPERM), ("latest", errno.EIO)])
def test_a_pointer_that_cannot_be_moved_fails_cleanly(
    tmp_path: Path, tables, monkeypatch, name: str, code: int
) -> None:
    """Only a file system without symlinks may skip the link: an I/O error on `latest` must not
    leave it on the parent while LATEST_ID moves on, and no temporary file may stay."""
    publish(tmp_path, tables)
    _failing_replace(monkeypatch, name, code)
    with pytest.raises(StoreWriteError, match=os.strerror(code)):
        publish(tmp_path, tables, fingerprint="f2")
    monkeypatch.undo()
    assert (tmp_path / "latest").readlink() == Path("versions/000001")
    assert (tmp_path / "LATEST_ID").read_text().strip() == "000001"
    assert version_ids(tmp_path) == ["000001"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []


def test_the_lock_names_no_run_once_released(tmp_path: Path) -> None:
    with writer_lock(tmp_path, timeout_s=1):
        assert (tmp_path / ".lock").read_text(encoding="utf-8") == f"pid {os.getpid()}"
    assert (tmp_path / ".lock").read_text(encoding="utf-8") == ""


def test_a_dataset_path_duckdb_would_read_as_a_pattern_is_refused(tmp_path: Path) -> None:
    """out[1] would make DuckDB read the files of a neighbouring out1 in its place."""
    for name in ("out[1]", "out*", "what?", "a{b,c}"):
        with pytest.raises(StoreError, match="DuckDB reads as a file pattern"):
            check_writable(tmp_path / name)
    check_writable(tmp_path / "out (1), it's fine")


def test_duckdb_write_failures_are_store_write_errors() -> None:
    import duckdb

    from pipeline.db import reading

    with pytest.raises(StoreWriteError, match="No space left") as err, reading():
        raise duckdb.IOException('Could not write file "x.duckdb.wal": No space left on device')
    assert err.value.permanent
