"""Finding versions: ids of their exact shape, `latest` read from its link or LATEST_ID and never followed
out of OUT, the newest version when neither is there, and clear errors for what is missing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.errors import StoreError
from pipeline.published.versions import latest_id, version_ids, version_path
from tests.published.conftest import publish


def test_pointer_file_serves_readers_without_symlinks(tmp_path: Path, tables) -> None:
    publish(tmp_path, tables)
    (tmp_path / "latest").unlink()
    assert latest_id(tmp_path) == "000001"
    assert version_path(tmp_path).name == "000001"


def test_reading_a_missing_version_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no version has been published"):
        version_path(tmp_path)
    with pytest.raises(StoreError, match="does not exist"):
        version_path(tmp_path, "000009")


def test_without_pointers_the_newest_version_is_latest(tmp_path: Path, tables) -> None:
    """A crash between a version's rename and the pointer swap leaves a complete version only."""
    publish(tmp_path, tables)
    publish(tmp_path, tables, fingerprint="f2")
    (tmp_path / "latest").unlink()
    (tmp_path / "LATEST_ID").unlink()
    assert latest_id(tmp_path) == "000002"
    assert publish(tmp_path, tables, fingerprint="f3").parent_id == "000002"


@pytest.fixture
def out_with_decoy(published: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A dataset folder, and beside it a decoy version that must never be read through it."""
    out = tmp_path / "data" / "processed"
    shutil.copytree(published, out, symlinks=True)
    decoy = tmp_path / "decoy"
    shutil.copytree(published / "versions" / "000001", decoy)
    return out, decoy


@pytest.mark.parametrize("version", ["../../decoy", "000001/../../../decoy", "/tmp", "1", "0000001", "00000a"])
def test_version_ids_must_have_their_exact_shape(out_with_decoy, capsys, version: str) -> None:
    out, _ = out_with_decoy
    with pytest.raises(StoreError, match="not a version id"):
        version_path(out, version)
    assert main(["show", "--out", str(out), "--version", version]) == 2
    assert main(["diff", version, "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "not a version id" in captured.err
    assert "papers:" not in captured.out


def test_a_version_folder_linked_elsewhere_is_not_read(out_with_decoy) -> None:
    out, decoy = out_with_decoy
    (out / "versions" / "000002").symlink_to(decoy, target_is_directory=True)
    assert version_ids(out) == ["000001"]
    with pytest.raises(StoreError, match="does not exist"):
        version_path(out, "000002")


@pytest.mark.parametrize("pointer", ["../decoy", "/etc", "versions/../../decoy", "000001\nextra"])
def test_a_latest_pointer_leading_elsewhere_is_refused(out_with_decoy, capsys, pointer: str) -> None:
    out, _ = out_with_decoy
    (out / "latest").unlink()
    (out / "LATEST_ID").write_text(pointer, encoding="utf-8")
    with pytest.raises(StoreError, match="refusing to follow"):
        latest_id(out)
    assert main(["show", "--out", str(out)]) == 2
    assert "refusing to follow" in capsys.readouterr().err


def test_a_latest_link_leading_elsewhere_is_refused(out_with_decoy) -> None:
    out, decoy = out_with_decoy
    (out / "latest").unlink()
    (out / "latest").symlink_to(decoy, target_is_directory=True)
    with pytest.raises(StoreError, match="refusing to follow"):
        latest_id(out)


def test_a_latest_pointing_at_a_missing_version_says_what_to_do(published: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    shutil.copytree(published, out, symlinks=True)
    (out / "latest").unlink()
    (out / "latest").symlink_to("versions/000003", target_is_directory=True)
    assert main(["show", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "latest points to version 000003, which does not exist" in err
    assert "ln -sfn versions/<id>" in err
