"""The command line: one real subprocess run, and the read-side commands in process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.__main__ import main
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    """A dataset published by `python -m pipeline run --quiet` in a subprocess, as cron runs it."""
    base = tmp_path_factory.mktemp("cli")
    raw = base / "raw"
    raw.mkdir()
    shutil.copy(ROOT / "data" / "raw" / "listing_2026-11-26.txt", raw)
    out = base / "processed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", "--raw", str(raw), "--out", str(out), "--quiet"],
        capture_output=True, text=True, env=env, cwd=base, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "published new version 000001" in proc.stdout
    assert "- rejects: 0" in proc.stdout
    assert "| papers | 50 |" in proc.stdout
    assert "Traceback" not in proc.stderr
    assert "INFO" not in proc.stderr  # --quiet: warnings and the final summary only
    return out


def handoff(published: Path, tmp_path: Path) -> Path:
    """A copy of the latest version, as a receiving team would get it."""
    copy = tmp_path / "handoff"
    shutil.copytree(published / "latest", copy)
    return copy


@pytest.mark.subprocess
def test_run_prints_version_counts_and_rejects(published: Path) -> None:
    assert (published / "latest" / "papers.parquet").is_file()


@pytest.mark.subprocess
def test_validate_accepts_a_published_version(published: Path, capsys) -> None:
    assert main(["validate", str(published / "latest")]) == 0
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
def test_versions_lists_latest(published: Path, capsys) -> None:
    assert main(["versions", "--out", str(published)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("* 000001")
    assert "papers=50" in out


@pytest.mark.subprocess
def test_duckdb_cli_reads_latest(published: Path) -> None:
    duckdb_cli = Path(sys.executable).parent / "duckdb"
    query = f"select count(*) from '{published}/latest/papers.parquet'"
    proc = subprocess.run([str(duckdb_cli), "-csv", "-c", query], capture_output=True, text=True, check=True)
    assert proc.stdout.splitlines()[-1] == "50"


@pytest.mark.subprocess
def test_diff_and_show_read_any_version(published: Path, capsys) -> None:
    assert main(["diff", "000001", "000001", "--out", str(published)]) == 0
    assert "0 added, 0 updated, 0 removed" in capsys.readouterr().out
    assert main(["show", "--out", str(published), "--version", "000001", "--table", "authors", "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert "version 000001 (parent None)" in out
    assert "authors: 80 rows" in out
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
    assert "rejects: file_present" in err


@pytest.mark.subprocess
def test_validate_catches_rows_lost_against_the_manifest(published: Path, tmp_path: Path, capsys) -> None:
    copy = handoff(published, tmp_path)
    authors = pq.read_table(copy / "authors.parquet")
    pq.write_table(authors.slice(0, 10), copy / "authors.parquet")
    assert main(["validate", str(copy)]) == 1
    err = capsys.readouterr().err
    assert "authors: manifest_row_count(80)" in err
    assert "foreign_key(authors.author_id)" in err


def test_serve_without_a_server_says_how_to_start_one(monkeypatch, capsys) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: None}):
        assert main(["serve", "--cron", "0 6 * * *"]) == 2
    assert "prefect server start" in capsys.readouterr().err
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        assert main(["serve", "--cron", "0 6 * * *"]) == 2
    assert "no Prefect server answers at http://127.0.0.1:9/api" in capsys.readouterr().err


def test_missing_raw_folder_is_a_clear_error(tmp_path: Path, capsys) -> None:
    assert main(["run", "--raw", str(tmp_path / "nope"), "--out", str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_scale_out_options() -> None:
    from pipeline.__main__ import build_parser

    args = build_parser().parse_args(["run", "--workers", "2"])
    assert (args.workers, args.dask_address) == (2, None)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--workers", "2", "--dask-address", "tcp://127.0.0.1:8786"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--workers", "0"])


def test_bad_as_of_is_rejected_by_the_parser(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--as-of", "26/11/2026"])
    assert "not a YYYY-MM-DD date" in capsys.readouterr().err
