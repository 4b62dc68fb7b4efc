"""The Prefect flow end to end, in process, against one session-wide temporary server."""

from __future__ import annotations

import errno
import os
from datetime import date
from pathlib import Path

import duckdb
import pytest

from pipeline.errors import StoreWriteError
from pipeline.orchestrate.decisions import file_batches, run_fingerprint
from pipeline.orchestrate.tasks import stage_listings
from pipeline.published.verify import read_tables
from pipeline.raw.sources import discover_sources
from tests.conftest import run_flow as run

pytestmark = pytest.mark.flow


def test_staging_task_unit(raw_dir: Path, tmp_path: Path) -> None:
    (source,) = discover_sources(raw_dir, None).sources
    staged = tmp_path / "staged"
    (capture,) = stage_listings.fn([source], staged, False, 1, 1 << 20)
    assert (capture.counts.records, capture.counts.rejects, capture.from_cache) == (50, 0, False)
    assert stage_listings.fn([source], staged, False, 1, 1 << 20)[0].from_cache


def test_file_batches_group_small_files_and_keep_order(tmp_path: Path) -> None:
    from pipeline.raw.sources import Source

    sources = [Source(tmp_path / f"{n}.txt", f"{n}.txt", date(2026, 1, 1), "file name", size) for n, size in
               enumerate([5, 5, 5, 20, 1, 1])]  # fmt: skip
    batches = file_batches(sources, 10)
    assert [[s.name for s in b] for b in batches] == [["0.txt", "1.txt"], ["2.txt", "3.txt"], ["4.txt", "5.txt"]]
    assert len(file_batches(sources, 1)) == 6
    assert file_batches([], 10) == []
    # min_batches shrinks the batches so that every worker gets work
    assert len(file_batches(sources, 1000, min_batches=3)) == 3
    assert len(file_batches(sources, 1000, min_batches=100)) == 6


def test_sample_end_to_end(prefect_server, raw_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "processed"
    summary = run(raw_dir, out)
    assert summary.published
    assert summary.version_id == "000001"
    assert (summary.records, summary.rejects) == (50, 0)
    assert summary.row_counts["papers"] == 50

    latest = out / "latest"
    count = duckdb.sql(f"select count(*) from '{latest}/papers.parquet'").fetchall()
    assert count == [(50,)]
    joined = duckdb.sql(
        f"""select p.title, a.name, pa.position
            from '{latest}/papers.parquet' p
            join '{latest}/paper_authors.parquet' pa using (paper_id)
            join '{latest}/authors.parquet' a using (author_id)"""
    ).df()
    assert len(joined) == 142
    assert (joined["name"] == "Sébastien Bubeck").sum() == 4  # "Sebastien" in one paper, folded together

    tables = read_tables(latest)
    merged = tables["papers"].merge(tables["paper_authors"], on="paper_id").merge(tables["authors"], on="author_id")
    assert len(merged) == 142
    assert merged.groupby("paper_id")["position"].min().eq(1).all()

    again = run(raw_dir, out)
    assert (again.published, again.version_id) == (False, "000001")


def test_rejects_and_capture_date_fallbacks(prefect_server, raw_dir: Path, tmp_path: Path) -> None:
    (raw_dir / "extra.txt").write_text(
        "XXMar 1, 2024\nSome TitleAnn Lee\nAbstract.\n"
        "LGMar 2\nAnother Study of GraphsBo Chen, Cy Wu\nAbstract.\n"
        "LGMar 3, 2024\n",
        encoding="utf-8",
    )
    (raw_dir / "latin1.txt").write_bytes("LGMar 1, 2024\nTitleJosé Núñez\nAbs.\n".encode("latin-1"))  # line 2
    out = tmp_path / "processed"
    summary = run(raw_dir, out, as_of=date(2026, 1, 3), max_reject_rate=1.0)
    inputs = {i["path"]: i for i in summary.inputs}
    assert inputs["extra.txt"]["capture_date"] == "2026-01-03"
    assert inputs["extra.txt"]["capture_date_from"] == "--as-of"
    assert summary.rejects_by_rule == {"unknown_category": 1, "truncated_record": 1, "invalid_encoding": 1}
    rejects = read_tables(out / "latest", ["rejects"])["rejects"]
    assert set(zip(rejects["source_file"], rejects["rule"], strict=True)) == {
        ("extra.txt", "unknown_category"), ("extra.txt", "truncated_record"), ("latin1.txt", "invalid_encoding"),
    }  # fmt: skip
    papers = read_tables(out / "latest", ["papers"])["papers"].set_index("title")
    # captured (per --as-of) on 2026-01-03, "Mar 2" without a year is the previous March
    assert papers.loc["Another Study of Graphs", "published"] == date(2025, 3, 2)

    os.utime(raw_dir / "extra.txt", (0, 1_577_836_800))  # 2020-01-01
    no_as_of = discover_sources(raw_dir, None).sources
    assert {s.name: (s.capture_date, s.capture_date_from) for s in no_as_of}["extra.txt"] == (
        date(2020, 1, 1), "modification time",
    )  # fmt: skip


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


def test_fingerprint_ignores_input_order() -> None:
    a = {"path": "a.txt", "sha256": "1", "capture_date": "2026-01-01"}
    b = {"path": "b.txt", "sha256": "2", "capture_date": "2026-01-02"}
    assert run_fingerprint([a, b], "c", "s") == run_fingerprint([b, a], "c", "s")
    assert run_fingerprint([a], "c", "s") != run_fingerprint([a], "c2", "s")


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
