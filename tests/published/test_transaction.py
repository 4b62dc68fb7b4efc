"""A version published as one transaction: complete and the child of latest when it commits, nothing of it
visible when it fails or the process dies mid-write, and what it left collected by the next writer."""

from __future__ import annotations

import errno
import json
import os
from datetime import date
from pathlib import Path

import pytest

from pipeline.errors import DatasetInvalidError, StoreError, StoreWriteError
from pipeline.published import Store, VersionTransaction, collect_garbage, read_tables, transaction
from pipeline.published.publish import table_specs
from pipeline.published.writer import write_generation
from pipeline.storage.files import file_digest
from schemas.contract import schema_fingerprint
from schemas.tables import MODELS
from schemas.validate import batch_failures
from tests.assembly import frame_batches
from tests.published.conftest import NOW, publish
from tests.validation import validate_dataset


def _stored(out: Path) -> set[str]:
    return {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name != ".lock"}


def test_publish_writes_a_complete_version_and_points_latest(tmp_path: Path, tables, gold) -> None:
    outcome = publish(tmp_path, tables)
    assert (outcome.version_id, outcome.published, outcome.parent_id) == ("000001", True, None)
    assert (tmp_path / "latest").resolve() == Path(outcome.path).resolve()
    assert (tmp_path / "LATEST_ID").read_text().strip() == "000001"
    manifest = Store.open(tmp_path).manifest("000001")
    assert manifest.layout == 2
    assert manifest.created_at == "2026-11-26T12:00:00Z"
    assert manifest.row_counts["papers"] == gold.papers
    assert (Path(outcome.path) / "contract" / "data_dictionary.md").is_file()
    for name, files in manifest.tables.items():
        for file in files:  # every file of a table is listed with its sha256, under data/<table>/
            assert file.key.startswith(f"data/{name}/000001-")
            assert file_digest(tmp_path / file.key) == {"sha256": file.sha256, "bytes": file.bytes}
    read = read_tables(Store.open(tmp_path), "000001")
    assert read["papers"]["published"].iloc[0].__class__ is date
    validate_dataset(read)


def test_a_version_shares_every_file_it_holds_unchanged(tmp_path: Path, tables) -> None:
    """Whether to publish at all is the flow's decision (`decisions.up_to_date`): a transaction
    that commits always makes a new version, whose parent is latest. A table written whole that
    comes out byte for byte as its parent's is the parent's file, listed again, not a copy."""
    publish(tmp_path, tables)
    again = publish(tmp_path, tables)
    assert (again.published, again.version_id, again.parent_id) == (True, "000002", "000001")
    store = Store.open(tmp_path)
    first, second = store.manifest("000001"), store.manifest("000002")
    assert second.tables == first.tables
    assert not list((tmp_path / "data").rglob("000002-*"))


class SimulatedCrash(BaseException):
    """Stands for the process dying mid-write: nothing of the store's own handling runs."""


def _fail_on_fourth_table(monkeypatch, error: BaseException) -> None:
    written: list[str] = []

    def write(spec, batches, folder, check, **kwargs):
        if len(written) == 3:
            raise error
        written.append(spec.name)
        return write_generation(spec, batches, folder, check, **kwargs)

    monkeypatch.setattr(transaction, "write_generation", write)


def _edited(tables) -> dict:
    return {**tables, "papers": tables["papers"].assign(score=12.5)}  # so that no file is shared


def test_a_crash_mid_write_leaves_latest_intact_and_its_files_are_collected(tmp_path: Path, tables, monkeypatch):
    publish(tmp_path, tables)
    before = _stored(tmp_path)
    _fail_on_fourth_table(monkeypatch, SimulatedCrash())
    with pytest.raises(SimulatedCrash):
        publish(tmp_path, _edited(tables), fingerprint="f2")
    monkeypatch.undo()

    store = Store.open(tmp_path)
    assert (store.latest_id(), store.version_ids()) == ("000001", ["000001"])
    assert _stored(tmp_path) > before  # files no manifest lists: no reader sees them
    with store.lock(5):
        store.clean_uncommitted()
        assert collect_garbage(store, grace_s=0)
    assert _stored(tmp_path) - before <= {"gc/pending.json"}

    outcome = publish(tmp_path, _edited(tables), fingerprint="f2")
    assert (outcome.version_id, outcome.parent_id) == ("000002", "000001")


def test_a_failed_write_is_a_clear_error_that_leaves_nothing(tmp_path: Path, tables, monkeypatch) -> None:
    publish(tmp_path, tables)
    before = _stored(tmp_path)
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "data" / "authors" / "x.parquet"))
    _fail_on_fourth_table(monkeypatch, full)
    with pytest.raises(StoreWriteError, match=r"cannot write .*authors.*: No space left on device") as err:
        publish(tmp_path, _edited(tables), fingerprint="f2")
    assert err.value.permanent  # the publish task does not retry it
    assert Store.open(tmp_path).version_ids() == ["000001"]
    assert _stored(tmp_path) == before


def _write_all(tx: VersionTransaction, tables) -> None:
    for name, spec in table_specs().items():
        files, rows, failures = tx.write(spec, frame_batches(name, tables[name]), batch_failures, empty_file=True)
        if failures:
            raise DatasetInvalidError(failures[0])
        tx.set_table(spec, files, rows)


def test_leaving_a_transaction_without_commit_publishes_and_leaves_nothing(tmp_path: Path, tables) -> None:
    store = Store.open(tmp_path)
    with store.lock(5) as lease, VersionTransaction(store, None, lease) as tx:
        _write_all(tx, tables)
        assert any(k.startswith("data/") for k in _stored(tmp_path))
    assert store.version_ids() == []
    assert _stored(tmp_path) == set()


def test_an_exception_inside_the_block_rolls_everything_back(tmp_path: Path, tables) -> None:
    publish(tmp_path, tables)
    before = _stored(tmp_path)
    store = Store.open(tmp_path)

    def fail_midway() -> None:
        with store.lock(5) as lease, VersionTransaction(store, "000001", lease) as tx:
            _write_all(tx, _edited(tables))
            tx.add_file("report.html", "<p>")
            raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        fail_midway()
    assert (store.version_ids(), store.latest_id()) == (["000001"], "000001")
    assert _stored(tmp_path) == before


def test_a_failed_check_publishes_nothing_and_names_the_rows(tmp_path: Path, tables) -> None:
    bad = {**tables, "papers": tables["papers"].assign(score=1_000.0)}
    store = Store.open(tmp_path)
    with (
        pytest.raises(DatasetInvalidError, match="score"),
        store.lock(5) as lease,
        VersionTransaction(store, None, lease) as tx,
    ):
        _write_all(tx, bad)
    assert store.version_ids() == []
    assert _stored(tmp_path) == set()


def test_the_commit_is_the_manifest_created_only_where_none_is(tmp_path: Path, tables) -> None:
    store = Store.open(tmp_path)

    def commit_over_a_manifest() -> None:
        with store.lock(5) as lease, VersionTransaction(store, None, lease) as tx:
            _write_all(tx, tables)
            # another writer (one whose lease ran out) committed this id meanwhile
            store.storage.put("versions/000001/manifest.json", json.dumps({"id": "000001"}).encode())
            tx.commit({"fingerprint": "f"}, NOW)

    with pytest.raises(StoreError, match=r"committed .* by another writer"):
        commit_over_a_manifest()
    assert (tmp_path / "versions" / "000001" / "manifest.json").read_text() == '{"id": "000001"}'


def test_commit_makes_the_version_visible_with_every_file_listed(tmp_path: Path, tables) -> None:
    store = Store.open(tmp_path)
    with store.lock(5) as lease, VersionTransaction(store, None, lease) as tx:
        for name in reversed(MODELS):  # in any order: the manifest lists them in the contract's
            spec = table_specs()[name]
            files, rows, _ = tx.write(spec, frame_batches(name, tables[name]), batch_failures, empty_file=True)
            tx.set_table(spec, files, rows)
        tx.add_file("report.html", "<p>report</p>")
        assert store.version_ids() == []  # nothing visible before the commit
        outcome = tx.commit({"fingerprint": "f"}, NOW)
    assert (outcome.version_id, outcome.published, store.latest_id()) == ("000001", True, "000001")
    manifest = store.manifest("000001")
    assert list(manifest.tables) == list(manifest.row_counts) == list(MODELS)
    assert manifest.schema_fingerprint == schema_fingerprint()
    assert set(manifest.own) == {"report.html", "contract/schema.json", "contract/data_dictionary.md"}
    assert manifest.own["report.html"] == file_digest(Path(outcome.path) / "report.html")
    listed = {f.key for f in manifest.data_files()}
    assert listed == {k for k in _stored(tmp_path) if k.startswith("data/")}
