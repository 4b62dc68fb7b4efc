"""The manifest of a version: one of the wrong shape, or of another version, is damage, never a crash."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.cli import main
from tests.damage import rewrite_manifest, validate

MANIFEST_DAMAGE: dict[str, Callable[[Path], None]] = {
    "deeply nested": lambda f: (f / "manifest.json").write_text("[" * 200_000, encoding="utf-8"),
    "huge number": lambda f: (f / "manifest.json").write_text('{"id": ' + "1" * 5_000 + "}", encoding="utf-8"),
    "row_counts not an object": lambda f: rewrite_manifest(f, lambda m: m.update(row_counts=5)),
    "inputs not a list": lambda f: rewrite_manifest(f, lambda m: m.update(inputs=5)),
    "a file name too long": lambda f: rewrite_manifest(f, lambda m: m["files"].update({"a" * 300: {}})),
    "a file outside the folder": lambda f: rewrite_manifest(f, lambda m: m["files"].update({"../../x": {}})),
}


@pytest.mark.parametrize("damage", list(MANIFEST_DAMAGE), ids=list(MANIFEST_DAMAGE))
def test_manifests_of_the_wrong_shape_are_damage_not_a_crash(published: Path, tmp_path: Path, capsys, damage) -> None:
    out = tmp_path / "out"
    shutil.copytree(published, out, symlinks=True)
    MANIFEST_DAMAGE[damage](out / "versions" / "000001")
    code, output = validate(out / "versions" / "000001", capsys)
    assert code == 1, output
    assert "Traceback" not in output
    assert main(["show", "--out", str(out)]) == 2
    assert main(["diff", "000001", "--out", str(out)]) == 2
    assert main(["versions", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert "000001  (damaged: its manifest cannot be read; see `validate`)" in captured.out


def test_a_version_copied_under_another_id_is_damage(published: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    shutil.copytree(published, out, symlinks=True)
    shutil.copytree(out / "versions" / "000001", out / "versions" / "000002")
    assert main(["show", "--out", str(out), "--version", "000002"]) == 2
    assert "its id '000001' is not its folder's name '000002'" in capsys.readouterr().err
    code, output = validate(out / "versions" / "000002", capsys)
    assert code == 1
    assert "is not its folder's name" in output
