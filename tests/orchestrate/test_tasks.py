"""Prefect tasks: staging as a task, the key check that stops an invalid dataset before publishing,
and retries only for what a retry can cure."""

from __future__ import annotations

import errno
from pathlib import Path

import duckdb
import pytest

from pipeline.errors import StoreWriteError
from pipeline.orchestrate.tasks import stage_listings
from pipeline.raw.sources import find_listings
from pipeline.storage import open_storage
from tests.conftest import run_flow as run


def test_staging_task_unit(raw_dir: Path, tmp_path: Path, gold) -> None:
    (source,) = find_listings(open_storage(raw_dir), None).sources
    staged = open_storage(tmp_path / "staged")
    (capture,) = stage_listings.fn([source], staged, tmp_path / "cache", False, 1, 1 << 20)
    assert (capture.counts.records, capture.counts.rejects, capture.from_cache) == (gold.papers, 0, False)
    assert stage_listings.fn([source], staged, tmp_path / "cache", False, 1, 1 << 20)[0].from_cache


@pytest.mark.flow
def test_invalid_dataset_publishes_nothing(prefect_server, raw_dir: Path, tmp_path: Path, monkeypatch) -> None:
    from pipeline.errors import DatasetInvalidError
    from pipeline.orchestrate import tasks

    real_build = tasks.build_version

    def corrupt(database, *args, **kwargs):
        built = real_build(database, *args, **kwargs)
        with duckdb.connect(str(database)) as con:
            con.execute("UPDATE paper_authors SET position = position + 10 WHERE rowid IN (0, 1)")
        return built

    monkeypatch.setattr(tasks, "build_version", corrupt)
    out = tmp_path / "processed"
    with pytest.raises(DatasetInvalidError) as err:
        run(raw_dir, out)
    assert sorted(err.value.report.loc[err.value.report["column"] == "position", "row"].astype(int)) == [0, 1]
    assert not (out / "latest").exists()
    assert not (out / "versions").exists() or not any((out / "versions").iterdir())
    assert not (out / "data").exists() or not any((out / "data").rglob("*.parquet"))


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (OSError(errno.EIO, "Input/output error"), True),
        (OSError(errno.ENOSPC, "No space left on device"), False),
        (StoreWriteError("cannot write x: Read-only file system", errno.EROFS), False),
        (StoreWriteError("cannot write x: Input/output error", errno.EIO), True),
        (ValueError("a data error"), False),
    ],
)
def test_only_io_errors_a_retry_can_cure_are_retried(error: Exception, retried: bool) -> None:
    from prefect.states import Failed

    from pipeline.orchestrate.tasks import transient_failure

    assert transient_failure(None, None, Failed(data=error)) is retried  # type: ignore[arg-type]
