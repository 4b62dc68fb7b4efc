"""Retention: --keep deletes only what no kept version lists, after a grace; readers and writers beside a
prune or a compaction are never broken; a prune or a compaction killed halfway loses nothing."""

from __future__ import annotations

import os
import shutil
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline import load_duckdb, settings
from pipeline.published import Store, check_version, collect_garbage, prune, read_tables
from pipeline.published.retention import versions_to_prune
from tests.listings import RECORDS, variant
from tests.refreshes import refresh
from tests.s3server import BUCKET, S3Server


def test_the_oldest_versions_go_never_latest_nor_its_parent() -> None:
    ids = [f"{n:06d}" for n in range(1, 6)]
    assert versions_to_prune(ids, {"000005", "000004"}, keep=2) == ["000001", "000002", "000003"]
    assert versions_to_prune(ids, {"000005", "000004"}, keep=1) == ["000001", "000002", "000003"]
    assert versions_to_prune(ids, {"000005", "000002"}, keep=1) == ["000001", "000003", "000004"]
    assert versions_to_prune(ids, {"000005"}, keep=10) == []


def five_days(raw: Path, target: str) -> None:
    """A dataset of five versions in `target`, each a day's capture of `raw`: new papers, some
    listed again or updated; then a sixth written whole."""
    raw.mkdir()
    (raw / "listing_2026-01-01.txt").write_text("".join(RECORDS[:20]), encoding="utf-8")
    refresh(raw, target)
    for day in range(2, 6):
        listing = RECORDS[18 + day] + RECORDS[day] + variant(RECORDS[day + 5], 1)
        (raw / f"listing_2026-01-{day:02d}.txt").write_text(listing, encoding="utf-8")
        refresh(raw, target)
    # one whole version (a capture removed): every table's files written anew
    (raw / "listing_2026-01-02.txt").unlink()
    refresh(raw, target)
    assert Store.open(target).version_ids() == [f"{n:06d}" for n in range(1, 7)]


@pytest.fixture(scope="module")
def five_days_on_disk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`five_days` built once for the module: its raw folder and dataset, to copy."""
    root = tmp_path_factory.mktemp("five-days")
    five_days(root / "raw", str(root / "out"))
    return root


@pytest.fixture(scope="module")
def five_days_on_s3(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`five_days` built once for the module on the S3 server: its raw folder, and its URL to copy."""
    root = tmp_path_factory.mktemp("five-days-s3")
    url = f"s3://{BUCKET}/five-days-{os.urandom(3).hex()}"
    with pytest.MonkeyPatch.context() as patched:
        for name, value in {**s3_server.env(), "PIPELINE_CACHE_DIR": str(root / "cache")}.items():
            patched.setenv(name, value)
        five_days(root / "raw", url)
    return root, url


@pytest.fixture(params=["disk", "s3"])
def out(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A dataset of `five_days`, the test's own copy (on disk, or under its own S3 prefix), with
    its raw folder in tmp_path / "raw"."""
    if request.param == "disk":
        root = request.getfixturevalue("five_days_on_disk")
        target = str(tmp_path / "out")
        shutil.copytree(root / "out", target, symlinks=True)
    else:
        server: S3Server = request.getfixturevalue("s3")
        root, built = request.getfixturevalue("five_days_on_s3")
        target = request.getfixturevalue("s3_prefix")
        assert server.copy_prefix(built, target) > 0
    shutil.copytree(root / "raw", tmp_path / "raw")
    return target


def _objects(store: Store) -> set[str]:
    return {o.key for top in ("data", "index", "versions") for o in store.storage.list(top).objects}


def _listed(store: Store) -> set[str]:
    keys = set()
    for version_id in store.version_ids():
        manifest = store.manifest(version_id)
        keys |= {f.key for f in manifest.data_files()}
    return keys


def _own(store: Store) -> set[str]:
    """The manifests and own files (contract, report) of the kept versions."""
    return {f"versions/{v}/{name}" for v in store.version_ids() for name in ("manifest.json", *store.manifest(v).own)}


def test_pruned_versions_files_go_after_the_grace_and_listed_ones_never(out: str) -> None:
    store = Store.open(out)
    before = _objects(store)
    with store.lock(30):
        assert prune(store, keep=2) == ["000001", "000002", "000003", "000004"]
        now = datetime.now(UTC)
        assert collect_garbage(store, grace_s=3600, now=now) == []  # within the grace: a reader may need them
        pending = set(before - _listed(store))
        assert store.storage.get("gc/pending.json") is not None
        assert _objects(store) == before - {f"versions/{v}/manifest.json" for v in ("000001", "000002", "000003",
                                                                                    "000004")}  # fmt: skip
        later = now + timedelta(hours=2)
        deleted = set(collect_garbage(store, grace_s=3600, now=later))
    assert {k for k in deleted if not k.startswith("versions/")} == {
        k for k in pending if not k.startswith("versions/")
    }
    assert _listed(store) <= _objects(store)
    for version_id in store.version_ids():
        assert check_version(store, version_id).empty


def test_a_reader_of_an_old_version_is_not_broken_by_a_prune(out: str, monkeypatch) -> None:
    store = Store.open(out)
    reader = load_duckdb(version="000001", out=out)  # opened before the prune
    before = reader.sql("SELECT count(*), min(title) FROM papers").fetchall()
    with store.lock(30):
        prune(store, keep=1)
        collect_garbage(store, grace_s=settings.DEFAULT_GC_GRACE_S)
    assert reader.sql("SELECT count(*), min(title) FROM papers").fetchall() == before


def test_a_reader_of_the_latest_version_is_not_broken_by_a_compaction(out: str, tmp_path: Path, monkeypatch) -> None:
    store = Store.open(out)
    latest = store.latest_id()
    tables = read_tables(store, latest)
    reader = load_duckdb(out=out)
    before = reader.sql("SELECT count(*), max(abstract) FROM papers").fetchall()
    monkeypatch.setattr(settings, "MAX_SUPERSEDED_SHARE", 0.0)  # the next version rewrites its tables
    raw = tmp_path / "raw"
    (raw / "listing_2026-01-09.txt").write_text(RECORDS[30] + RECORDS[3], encoding="utf-8")
    refresh(raw, out)
    assert reader.sql("SELECT count(*), max(abstract) FROM papers").fetchall() == before
    again = read_tables(Store.open(out), latest)
    for name, frame in tables.items():
        assert again[name].equals(frame), name


def test_a_writer_waits_for_a_prune_and_then_publishes(out: str, tmp_path: Path) -> None:
    store = Store.open(out)
    holding, release = threading.Event(), threading.Event()

    def pruning() -> None:
        with store.lock(30):
            prune(store, keep=1)
            holding.set()
            release.wait(30)
            collect_garbage(store, grace_s=0)

    thread = threading.Thread(target=pruning)
    thread.start()
    assert holding.wait(30)
    raw = tmp_path / "raw"
    (raw / "listing_2026-01-09.txt").write_text(RECORDS[30], encoding="utf-8")
    writer = threading.Thread(target=refresh, args=(raw, out))
    writer.start()
    release.set()
    thread.join()
    writer.join()
    store = Store.open(out)
    assert store.version_ids() == ["000005", "000006", "000007"]  # latest's parent is kept too
    assert check_version(store, "000007").empty


class SimulatedCrash(BaseException):
    """The process dying between two deletions."""


def test_a_prune_killed_halfway_leaves_only_garbage_that_a_later_run_collects(out: str, monkeypatch) -> None:
    store = Store.open(out)
    real = store.storage.delete
    calls: list[int] = []

    def dying(keys):
        calls.append(1)
        if len(calls) == 3:
            raise SimulatedCrash
        return real(keys)

    def prune_and_collect() -> None:
        with store.lock(30):
            prune(store, keep=1)
            collect_garbage(store, grace_s=0)

    with monkeypatch.context() as patched:
        patched.setattr(store.storage, "delete", dying)
        with pytest.raises(SimulatedCrash):
            prune_and_collect()
    store = Store.open(out)
    for version_id in store.version_ids():  # what is still a version is whole
        assert check_version(store, version_id).empty
    with store.lock(30):
        prune(store, keep=1)
        collect_garbage(store, grace_s=0)
    assert store.version_ids() == ["000005", "000006"]
    assert _objects(store) == _listed(store) | _own(store)
    assert check_version(store, "000006").empty


def test_a_collection_killed_halfway_is_completed_by_the_next(out: str, monkeypatch) -> None:
    store = Store.open(out)
    with store.lock(30):
        prune(store, keep=1)
    real = store.storage.delete

    def dying(keys):
        real(list(keys)[:3])
        raise SimulatedCrash

    def collect() -> None:
        with store.lock(30):
            collect_garbage(store, grace_s=0)

    with monkeypatch.context() as patched:
        patched.setattr(store.storage, "delete", dying)
        with pytest.raises(SimulatedCrash):
            collect()
    with store.lock(30):
        collect_garbage(store, grace_s=0)
    assert _objects(store) == _listed(store) | _own(store)
    assert check_version(store, "000006").empty
