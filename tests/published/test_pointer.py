"""The `latest` pointer: moved with its link and LATEST_ID together, or not at all."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from pipeline.errors import StoreWriteError
from pipeline.published.versions import version_ids
from tests.published.conftest import publish


def _failing_replace(monkeypatch, name: str, code: int) -> None:
    """Make renaming onto `name` fail with `code`, as a real file system can."""
    real_replace = Path.replace

    def replace(self: Path, target):
        if Path(target).name == name:
            raise OSError(code, os.strerror(code), str(target))
        return real_replace(self, target)

    monkeypatch.setattr(Path, "replace", replace)


@pytest.mark.parametrize(("name", "code"), [("LATEST_ID", errno.EPERM), ("latest", errno.EIO)])
def test_a_pointer_that_cannot_be_moved_fails_cleanly(
    tmp_path: Path, tables, monkeypatch, name: str, code: int
) -> None:
    """Only a file system without symlinks may skip the link: an I/O error on `latest` must not
    leave it on the parent while LATEST_ID moves on, and no temporary file may stay."""
    publish(tmp_path, tables)
    _failing_replace(monkeypatch, name, code)
    with pytest.raises(StoreWriteError, match=os.strerror(code)):
        publish(tmp_path, tables, fingerprint="f2")
    monkeypatch.undo()
    assert (tmp_path / "latest").readlink() == Path("versions/000001")
    assert (tmp_path / "LATEST_ID").read_text().strip() == "000001"
    assert version_ids(tmp_path) == ["000001"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []
