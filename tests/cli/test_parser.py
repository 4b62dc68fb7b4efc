"""The command line's arguments: every option's check and default, the environment's folders, usage errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.storage import LocalStorage, S3Storage


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
    assert isinstance(args.raw, LocalStorage)
    assert isinstance(args.out, LocalStorage)  # a folder, parsed into the storage it names
    assert (args.raw.url, args.out.url) == (str(tmp_path / "raw"), str(tmp_path / "out"))
    assert build_parser().parse_args(["run", "--out", "elsewhere"]).out.url == str(Path("elsewhere"))  # a flag wins
    assert build_parser().parse_args(["versions"]).out.url == str(tmp_path / "out")
    assert main(["run"]) == 2  # the environment's raw folder is the one used, and it is missing
    assert str(tmp_path / "raw") in capsys.readouterr().err
    monkeypatch.setenv("PIPELINE_OUT_DIR", "")  # empty counts as unset
    assert build_parser().parse_args(["versions"]).out.url == str(Path("data/processed"))
    monkeypatch.setenv("PIPELINE_OUT_DIR", "s3://listings/papers")  # or an s3:// URL
    out = build_parser().parse_args(["versions"]).out
    assert (isinstance(out, S3Storage), out.url) == (True, "s3://listings/papers")


def test_bad_as_of_is_rejected_by_the_parser(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--as-of", "26/11/2026"])
    assert "not a YYYY-MM-DD date" in capsys.readouterr().err


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


def test_cli_knows_only_its_export_formats(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_code:
        main(["export", "iceberg", str(tmp_path / "x")])
    assert exit_code.value.code == 2
    assert "invalid choice: 'iceberg' (choose from 'delta', 'version')" in capsys.readouterr().err


def test_every_folder_argument_is_parsed_into_its_storage(tmp_path: Path) -> None:
    from pipeline.cli import build_parser

    parser = build_parser()
    delta = parser.parse_args(["export", "delta", str(tmp_path / "delta"), "--out", "s3://listings/papers"])
    assert (type(delta.dir), delta.dir.url, type(delta.out)) == (LocalStorage, str(tmp_path / "delta"), S3Storage)
    handoff = parser.parse_args(["export", "version", "latest", "s3://listings/handoff", "--out", str(tmp_path)])
    assert (handoff.version, type(handoff.dir), handoff.dir.url) == ("latest", S3Storage, "s3://listings/handoff")
    assert handoff.out.url == str(tmp_path)
    validate = parser.parse_args(["validate", str(tmp_path / "latest")])
    assert (type(validate.path), validate.path.url) == (LocalStorage, str(tmp_path / "latest"))
