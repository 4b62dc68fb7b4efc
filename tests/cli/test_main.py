"""The entry point: a command that fails unexpectedly ends with its own exit code and says it is a bug."""

from __future__ import annotations

from pathlib import Path

from pipeline.cli import main


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
