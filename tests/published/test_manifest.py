"""A version's manifest: the wrong shape, another version's, or naming files outside its tables is damage."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.errors import VersionDamagedError
from pipeline.published import Store
from pipeline.published.manifest import parse_manifest
from tests.damage import rewrite_manifest, validate


def _papers_file(change: Callable[[dict], object]) -> Callable[[dict], None]:
    def edit(manifest: dict) -> None:
        change(manifest["tables"]["papers"]["files"][0])

    return edit


MANIFEST_DAMAGE: dict[str, Callable[[Path], None]] = {
    "deeply nested": lambda f: (f / "manifest.json").write_text("[" * 200_000, encoding="utf-8"),
    "huge number": lambda f: (f / "manifest.json").write_text('{"id": ' + "1" * 5_000 + "}", encoding="utf-8"),
    "row_counts not an object": lambda f: rewrite_manifest(f, lambda m: m.update(row_counts=5)),
    "inputs not a list": lambda f: rewrite_manifest(f, lambda m: m.update(inputs=5)),
    "an own file name too long": lambda f: rewrite_manifest(f, lambda m: m["files"].update({"a" * 300: {}})),
    "an own file outside the folder": lambda f: rewrite_manifest(f, lambda m: m["files"].update({"../../x": {}})),
    "a table file outside the store": lambda f: rewrite_manifest(
        f, _papers_file(lambda e: e.update(path="../../../etc/passwd"))),
    "a table file of another table": lambda f: rewrite_manifest(
        f, _papers_file(lambda e: e.update(path=e["path"].replace("data/papers/", "data/authors/")))),
    "a table file through a step up": lambda f: rewrite_manifest(
        f, _papers_file(lambda e: e.update(path=e["path"].replace("data/papers/", "data/papers/../papers/")))),
    "a file named for another sha256": lambda f: rewrite_manifest(f, _papers_file(lambda e: e.update(sha256="0" * 64))),
    "a generation its name does not give": lambda f: rewrite_manifest(
        f, _papers_file(lambda e: e.update(generation=7))
    ),
    "a table with no file": lambda f: rewrite_manifest(f, lambda m: m["tables"]["papers"].update(files=[])),
    "a table missing": lambda f: rewrite_manifest(f, lambda m: m["tables"].pop("authors")),
    "a layout from the future": lambda f: rewrite_manifest(f, lambda m: m.update(layout=9)),
}  # fmt: skip


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


def test_both_layouts_read_as_tables_of_files(published: Path, copy: Path) -> None:
    """A version of the first layout (each table one file in the version's folder, as a hand-off
    is written) and one of today's read into the same model."""
    today = Store.open(published).manifest("000001")
    assert today.layout == 2
    assert all(f.key.startswith(f"data/{name}/") for name, files in today.tables.items() for f in files)
    handed = parse_manifest((copy / "manifest.json").read_bytes(), None, folder="")
    assert handed.layout == 1
    assert {name: [f.key for f in files] for name, files in handed.tables.items()} == {
        name: [f"{name}.parquet"] for name in today.tables
    }
    assert handed.row_counts == today.row_counts
    with pytest.raises(VersionDamagedError, match="not its folder's name"):
        parse_manifest((copy / "manifest.json").read_bytes(), "000002")
