"""The dataset folder's layout, checked before writing: OUT's own entries of the right kind, and a
path that DuckDB reads as itself."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.errors import StoreError
from pipeline.published.layout import check_writable
from tests.published.conftest import publish


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "notes.md").write_text("precious", encoding="utf-8")
    return victim


@pytest.mark.parametrize("entry", ["staged", "versions", "rejected", "index", ".lock", "LATEST_ID"])
def test_links_among_the_stores_own_entries_are_refused(tmp_path: Path, tables, entry: str) -> None:
    """Writing through them would act outside OUT: a link as `staged` had its target pruned."""
    out = tmp_path / "out"
    out.mkdir()
    victim = _victim(tmp_path)
    (out / entry).symlink_to(victim if entry in ("staged", "versions", "rejected", "index") else victim / "notes.md")
    with pytest.raises(StoreError, match=rf"{entry} is not a (folder|file): refusing to write through it"):
        check_writable(out)
    assert (victim / "notes.md").read_text(encoding="utf-8") == "precious"


def test_a_latest_that_is_a_real_folder_is_refused_before_publishing(tmp_path: Path, tables) -> None:
    """A `latest` copied with `cp -rL` would stay stale while LATEST_ID moved on."""
    publish(tmp_path, tables)
    (tmp_path / "latest").unlink()
    shutil.copytree(tmp_path / "versions" / "000001", tmp_path / "latest")
    with pytest.raises(StoreError, match="latest is not a link"):
        check_writable(tmp_path)


def test_a_dataset_path_duckdb_would_read_as_a_pattern_is_refused(tmp_path: Path) -> None:
    """out[1] would make DuckDB read the files of a neighbouring out1 in its place."""
    for name in ("out[1]", "out*", "what?", "a{b,c}"):
        with pytest.raises(StoreError, match="DuckDB reads as a file pattern"):
            check_writable(tmp_path / name)
    check_writable(tmp_path / "out (1), it's fine")
