"""The entry point: a command that fails unexpectedly ends with its own exit code and says it is a bug; a bad
setting is one line before anything runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pipeline.cli import main
from pipeline.published import Store
from tests.conftest import ROOT


def test_an_unexpected_error_has_its_own_exit_code(tmp_path: Path, monkeypatch, capsys) -> None:
    from pipeline.published import Store

    def broken(store: Store) -> list[str]:
        raise RuntimeError("a bug")

    with Store.open(tmp_path).lock(30):  # a dataset folder written to, without versions
        pass
    assert main(["versions", "--out", str(tmp_path)]) == 0  # listed, as none
    capsys.readouterr()
    monkeypatch.setattr(Store, "version_ids", broken)
    assert main(["versions", "--out", str(tmp_path)]) == 4
    err = capsys.readouterr().err
    assert "RuntimeError: a bug" in err
    assert "internal error (a bug)" in err


def test_a_command_that_reads_versions_starts_without_prefect(tmp_path: Path) -> None:
    """Only `run` and `serve` need Prefect: the others answer ~2 s sooner without its import."""
    with Store.open(tmp_path).lock(30):  # a dataset folder written to, without versions
        pass
    code = (
        "import sys; from pipeline.cli import main; "
        f"code = main(['versions', '--out', {str(tmp_path)!r}]); print(code, 'prefect' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.split()[-2:] == ["0", "False"]


def test_a_bad_memory_setting_is_one_line_before_any_listing_is_parsed(
    raw: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    from pipeline.settings import ASSEMBLY_MEMORY_SETTING

    monkeypatch.setenv(ASSEMBLY_MEMORY_SETTING, "lots")
    assert main(["run", "--raw", str(raw), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"error: {ASSEMBLY_MEMORY_SETTING}='lots' is not a size such as 512MB or 2GB\n"
    assert not (tmp_path / "out").exists()  # nothing staged, nothing written
