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

from pipeline.cli import main
from pipeline.errors import StoreWriteError
from tests.assembly import publish_frames
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
    assert "version 000001 (no parent: the first version)" in out
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
    assert "rejects.parquet: file_present" in err


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
        assert main(["serve", "--cron", "0 6 * * *"]) == 3
    assert "prefect server start" in capsys.readouterr().err
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        assert main(["serve", "--cron", "0 6 * * *"]) == 3
    assert "no Prefect server answers at http://127.0.0.1:9/api" in capsys.readouterr().err


def test_missing_raw_folder_is_a_clear_error(tmp_path: Path, capsys) -> None:
    assert main(["run", "--raw", str(tmp_path / "nope"), "--out", str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_scale_out_options() -> None:
    from pipeline.cli import build_parser

    args = build_parser().parse_args(["run", "--workers", "2"])
    assert (args.workers, args.dask_address) == (2, None)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--workers", "2", "--dask-address", "tcp://127.0.0.1:8786"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--workers", "0"])


def test_version_flag_prints_the_package_version(capsys) -> None:
    from importlib.metadata import version

    from pipeline import __version__

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"paper-listings {__version__}"
    assert version("paper-listings") == __version__  # the installed metadata says the same


def test_folders_default_to_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys) -> None:
    from pipeline.cli import build_parser

    monkeypatch.setenv("PIPELINE_RAW_DIR", str(tmp_path / "raw"))
    monkeypatch.setenv("PIPELINE_OUT_DIR", str(tmp_path / "out"))
    args = build_parser().parse_args(["run"])
    assert (args.raw, args.out) == (tmp_path / "raw", tmp_path / "out")
    assert build_parser().parse_args(["run", "--out", "elsewhere"]).out == Path("elsewhere")  # a flag wins
    assert build_parser().parse_args(["versions"]).out == tmp_path / "out"
    assert main(["run"]) == 2  # the environment's raw folder is the one used, and it is missing
    assert str(tmp_path / "raw") in capsys.readouterr().err
    monkeypatch.setenv("PIPELINE_OUT_DIR", "")  # empty counts as unset
    assert build_parser().parse_args(["versions"]).out == Path("data/processed")


def test_bad_as_of_is_rejected_by_the_parser(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--as-of", "26/11/2026"])
    assert "not a YYYY-MM-DD date" in capsys.readouterr().err


# --- read-side commands on hostile or unusual folders --------------------------------------------


@pytest.fixture(scope="module")
def two_versions(sample_tables, tmp_path_factory) -> Path:
    """A dataset of two versions that differ: papers updated, added and removed."""
    from datetime import UTC, datetime

    from tests.validation import validate_dataset

    out = tmp_path_factory.mktemp("two-versions")
    first = validate_dataset(sample_tables)
    second = {name: frame.copy() for name, frame in first.items()}
    papers = second["papers"]
    papers.loc[0, "score"] = 12.5
    papers.loc[1, "title"] = "A" * 3_000  # a long value must not make a long line
    removed = papers.loc[2, "paper_id"]
    second["papers"] = papers[papers["paper_id"] != removed].reset_index(drop=True)
    for table in ("paper_authors", "paper_organizations"):
        second[table] = second[table][second[table]["paper_id"] != removed].reset_index(drop=True)
    when = datetime(2026, 11, 26, tzinfo=UTC)
    publish_frames(out, first, {"fingerprint": "f1"}, when)
    publish_frames(out, second, {"fingerprint": "f2"}, when)
    return out


def test_diff_of_two_different_versions_lists_each_change(two_versions: Path, capsys) -> None:
    assert main(["diff", "000001", "000002", "--out", str(two_versions)]) == 0
    out = capsys.readouterr().out
    assert "50 → 49 papers" in out
    assert "0 added, 2 updated, 1 removed" in out
    assert "(score)" in out
    assert "(title)" in out
    assert max(len(line) for line in out.splitlines()) < 200


def test_show_keeps_lines_short(two_versions: Path, capsys) -> None:
    assert main(["show", "--out", str(two_versions), "--table", "papers", "--limit", "50"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 + 1 + 49  # summary lines, the header row, the rows
    assert max(len(line) for line in lines) < 400


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


def test_versions_of_a_missing_folder_is_an_error(tmp_path: Path, capsys) -> None:
    assert main(["versions", "--out", str(tmp_path / "missing")]) == 2
    assert "no dataset folder" in capsys.readouterr().err
    assert main(["versions", "--out", str(tmp_path)]) == 0
    assert "no versions published" in capsys.readouterr().out


def test_an_unexpected_error_has_its_own_exit_code(two_versions: Path, monkeypatch, capsys) -> None:
    from pipeline.cli import commands

    def broken(out: Path) -> list[str]:
        raise RuntimeError("a bug")

    monkeypatch.setattr(commands, "version_ids", broken)
    assert main(["versions", "--out", str(two_versions)]) == 4
    err = capsys.readouterr().err
    assert "RuntimeError: a bug" in err
    assert "internal error (a bug)" in err


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


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "--cron", "not a cron"],
        ["run", "--lock-timeout", "nan"],
        ["run", "--lock-timeout", "-1"],
        ["run", "--max-removed-rate", "2"],
        ["run", "--max-reject-rate", "nan"],
        ["run", "--as-of", "0001-01-01"],
        ["run", "--keep", "abc"],
        ["show", "--limit", "-2"],
        ["diff", "000001", "--limit", "-1"],
    ],
)
def test_bad_option_values_are_usage_errors(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.flow
def test_losing_the_prefect_api_after_publishing_says_so(
    prefect_server, raw_dir: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    import httpx

    from pipeline.cli import commands
    from tests.conftest import run_flow

    out = tmp_path / "out"
    real_flow = commands.refresh

    def publish_then_lose_the_api(**parameters):
        run_flow(raw_dir, out, flow=real_flow)
        raise httpx.ConnectError("All connection attempts failed")

    monkeypatch.setattr(commands, "refresh", publish_then_lose_the_api)
    assert main(["run", "--raw", str(raw_dir), "--out", str(out)]) == 3
    last = capsys.readouterr().err.splitlines()[-1]  # (Prefect's log handler may complain of pytest's streams)
    assert last.startswith("error: lost the Prefect API during the run (All connection attempts failed)")
    assert last.endswith("version 000001 was published before the failure, and is complete")


@pytest.mark.flow
def test_reports_that_cannot_reach_prefect_do_not_fail_a_published_run(
    prefect_server, raw_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    import httpx

    from pipeline.orchestrate import steps
    from tests.conftest import run_flow

    def unreachable(**kwargs):
        raise httpx.ConnectError("All connection attempts failed")

    monkeypatch.setattr(steps, "create_markdown_artifact", unreachable)
    summary = run_flow(raw_dir, tmp_path / "out")
    assert (summary.published, summary.version_id) == (True, "000001")


@pytest.mark.flow
def test_a_version_that_cannot_be_pruned_is_a_warning(
    prefect_server, raw_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    from pipeline.orchestrate import steps
    from tests.conftest import run_flow

    out = tmp_path / "out"
    run_flow(raw_dir, out)

    def refuse(out_dir: Path, keep: int) -> list[str]:
        raise StoreWriteError("cannot write versions/000001: Operation not permitted")

    monkeypatch.setattr(steps, "prune_versions", refuse)
    summary = run_flow(raw_dir, out, force=True, keep=1)
    assert (summary.published, summary.version_id, summary.pruned) == (True, "000002", [])


def test_parsing_uses_every_core_unless_told_otherwise(tmp_path: Path) -> None:
    from pipeline.cli import flow_parameters

    assert flow_parameters(tmp_path, tmp_path)["workers"] == (os.cpu_count() or 1)
    assert flow_parameters(tmp_path, tmp_path, workers=1)["workers"] == 1
    on_dask = flow_parameters(tmp_path, tmp_path, dask=True, workers=4)
    assert on_dask["workers"] == 1  # each Dask worker parses its files itself
    assert on_dask["batch_bytes"] < flow_parameters(tmp_path, tmp_path)["batch_bytes"]


def test_processes_must_be_a_positive_number(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--processes", "0"])
    assert exit_.value.code == 2
    assert "--processes" in capsys.readouterr().err
