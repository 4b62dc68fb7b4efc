"""The command line in a subprocess, as cron runs it: one real run, then the read-side commands on
what it published; `show` into a pipe that closes early; a quiet refusal in one line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.cli import main
from pipeline.published import Store
from tests.assembly import publish_frames
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def published(tmp_path_factory, gold, cli_env) -> Path:
    """A dataset published by `python -m pipeline run --quiet` in a subprocess, as cron runs it
    (against the session's Prefect server: the temporary server's start is tests/orchestrate/test_prefect_api's)."""
    base = tmp_path_factory.mktemp("cli")
    raw = base / "raw"
    raw.mkdir()
    shutil.copy(ROOT / "data" / "raw" / "listing_2026-11-26.txt", raw)
    out = base / "processed"
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", "--raw", str(raw), "--out", str(out), "--quiet"],
        capture_output=True, text=True, env=cli_env, cwd=base, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "published new version 000001" in proc.stdout
    assert "- rejects: 0" in proc.stdout
    assert f"| papers | {gold.papers} |" in proc.stdout
    assert "Traceback" not in proc.stderr
    assert "INFO" not in proc.stderr  # --quiet: warnings and the final summary only
    return out


def handoff(published: Path, tmp_path: Path) -> Path:
    """The latest version as a receiving team would get it: `export version latest DIR`, one file per table."""
    copy = tmp_path / "handoff"
    assert main(["export", "version", "latest", str(copy), "--out", str(published)]) == 0
    return copy


@pytest.mark.subprocess
def test_run_prints_version_counts_and_rejects(published: Path, gold) -> None:
    store = Store.open(published)
    assert (published / "LATEST_ID").read_text() == "000001\n"
    assert (published / "latest").resolve() == (published / "versions" / "000001").resolve()
    manifest = store.manifest(store.resolve("latest"))
    assert manifest.row_counts["papers"] == gold.papers
    files = manifest.tables["papers"]
    assert files
    assert all((published / f.key).is_file() for f in files)
    assert sum(f.rows for f in files) == gold.papers


@pytest.mark.subprocess
def test_validate_accepts_a_published_version(published: Path, tmp_path: Path, capsys) -> None:
    assert main(["validate", str(published / "latest")]) == 0
    assert "conforms" in capsys.readouterr().out
    assert main(["validate", str(published / "versions" / "000001")]) == 0
    assert "conforms" in capsys.readouterr().out
    copy = handoff(published, tmp_path)  # the hand-off the tests below damage conforms as written
    assert main(["validate", str(copy)]) == 0
    assert "conforms" in capsys.readouterr().out


@pytest.mark.subprocess
def test_validate_names_a_corrupted_column(published: Path, tmp_path: Path, capsys) -> None:
    copy = handoff(published, tmp_path)
    papers = pq.read_table(copy / "papers.parquet")
    scores = pa.array([500.0] * papers.num_rows, type=pa.float64())
    pq.write_table(papers.set_column(papers.schema.get_field_index("score"), "score", scores), copy / "papers.parquet")
    assert main(["validate", str(copy)]) == 1
    err = capsys.readouterr().err
    assert "does not conform" in err
    assert "papers.score" in err


@pytest.mark.subprocess
def test_versions_lists_latest(published: Path, capsys, gold) -> None:
    assert main(["versions", "--out", str(published)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("* 000001")
    assert f"papers={gold.papers}" in out


@pytest.mark.subprocess
def test_duckdb_cli_reads_latest(published: Path, tmp_path: Path, gold, capsys) -> None:
    """Any Parquet reader, offline: the DuckDB CLI on latest handed over as one file per table."""
    copy = handoff(published, tmp_path)
    assert f"exported version 000001 to {copy}" in capsys.readouterr().out
    duckdb_cli = Path(sys.executable).parent / "duckdb"
    query = f"select count(*) from '{copy}/papers.parquet'"
    proc = subprocess.run([str(duckdb_cli), "-csv", "-c", query], capture_output=True, text=True, check=True)
    assert proc.stdout.splitlines()[-1] == str(gold.papers)


@pytest.mark.subprocess
def test_diff_and_show_read_any_version(published: Path, capsys, gold) -> None:
    assert main(["diff", "000001", "000001", "--out", str(published)]) == 0
    assert "0 added, 0 updated, 0 removed" in capsys.readouterr().out
    assert main(["show", "--out", str(published), "--version", "000001", "--table", "authors", "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert "version 000001 (no parent: the first version)" in out
    assert f"authors: {gold.authors} rows" in out
    assert main(["diff", "000009", "--out", str(published)]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.subprocess
def test_validate_names_a_column_of_the_wrong_type_and_a_missing_file(published: Path, tmp_path: Path, capsys) -> None:
    copy = handoff(published, tmp_path)
    papers = pq.read_table(copy / "papers.parquet")
    as_text = papers.set_column(
        papers.schema.get_field_index("published"), "published", pa.array(["2026-01-01"] * papers.num_rows)
    )
    pq.write_table(as_text, copy / "papers.parquet")
    (copy / "rejects.parquet").unlink()
    assert main(["validate", str(copy)]) == 1
    err = capsys.readouterr().err
    assert "papers.published: arrow_type(date32[day])" in err
    assert "rejects.parquet: file_present" in err


@pytest.mark.subprocess
def test_validate_catches_rows_lost_against_the_manifest(published: Path, tmp_path: Path, capsys, gold) -> None:
    copy = handoff(published, tmp_path)
    authors = pq.read_table(copy / "authors.parquet")
    pq.write_table(authors.slice(0, 10), copy / "authors.parquet")
    assert main(["validate", str(copy)]) == 1
    err = capsys.readouterr().err
    assert f"authors: manifest_row_count({gold.authors})" in err
    assert "foreign_key(authors.author_id)" in err


@pytest.fixture(scope="module")
def big_version(reference, tmp_path_factory) -> Path:
    """A version of 3,000 real papers: more rows than a pipe buffer holds once printed."""
    from datetime import UTC, date, datetime

    from benchmarks.render import load_records, render_listing
    from tests.assembly import assembled

    text, _ = render_listing(load_records()[:3000], date(2026, 11, 26))
    tables = assembled(tmp_path_factory.mktemp("big-work"), [("big.txt", date(2026, 11, 26), text)])
    out = tmp_path_factory.mktemp("big")
    publish_frames(out, tables, {"fingerprint": "f"}, datetime(2026, 11, 26, tzinfo=UTC))
    return out


@pytest.mark.subprocess
def test_show_piped_into_head_stops_quietly(big_version: Path, tmp_path: Path) -> None:
    """A reader that leaves after one line, as `| head -1` does, while rows are still coming."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "pipeline", "show", "--out", str(big_version), "--limit", "100000"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    _, err = proc.communicate(timeout=300)
    assert first.startswith(b"version 000001")
    assert proc.returncode == 0, err
    assert b"Traceback" not in err
    assert b"BrokenPipeError" not in err


@pytest.mark.subprocess
def test_quiet_refusal_prints_one_line(cli_env: dict[str, str], tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    good, bad = "LGMar 1, 2025\nA Study of GraphsAnn Lee\nAbstract.\n", "XXMar 1, 2025\nBad SuffixAnn Lee\nAbstract.\n"
    (raw / "listing_2026-01-01.txt").write_text(good + bad, encoding="utf-8")
    proc = subprocess.run(
        # --workers 1: Dask's own INFO logs are silenced too
        [sys.executable, "-m", "pipeline", "run", "--raw", str(raw), "--out", str(tmp_path / "out"), "--quiet",
         "--workers", "1"],
        capture_output=True, text=True, env=cli_env, cwd=tmp_path, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: 1 of 2 records rejected (50.0% > 5.0%); nothing was published.")
