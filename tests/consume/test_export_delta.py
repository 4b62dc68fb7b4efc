"""Delta Lake export: one commit per version and table, read back by version, resumed, refused when foreign."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import deltalake
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake
from polars.testing import assert_frame_equal

from pipeline.consume.export_delta import (
    PARENT_KEY,
    ROWS_KEY,
    SHA256_KEY,
    TABLE_KEY,
    VERSION_KEY,
    ExportError,
    export_delta,
    table_digest,
)
from pipeline.errors import StoreError, StoreLockedError, VersionDamagedError
from pipeline.published import Store, prune, version_parts
from pipeline.published.verify import table_batches
from pipeline.storage import open_storage
from pipeline.storage.files import file_digest
from pipeline.storage.lock import writer_lock
from schemas.tables import MODELS, arrow_schema
from tests.assembly import publish_frames, successive_editions
from tests.conftest import own_copy
from tests.validation import validate_dataset

Tables = Mapping[str, pd.DataFrame]
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
THREE = ("000001", "000002", "000003")
# Sorted on these, a table's rows compare whatever order the Delta files hold them in.
KEYS = {
    "papers": ["paper_id"],
    "authors": ["author_id"],
    "paper_authors": ["paper_id", "position"],
    "organizations": ["org_id"],
    "paper_organizations": ["paper_id", "position"],
    "categories": ["category"],
    "rejects": ["source_file", "source_line"],
    "changes": ["paper_id"],
}


@pytest.fixture(scope="module")
def editions(sample_tables) -> list[dict[str, pd.DataFrame]]:
    """Four successive states of the dataset, each with other papers than the one before."""
    return successive_editions(validate_dataset(sample_tables))


def publish(out: Path, tables: Tables, number: int) -> str:
    return publish_frames(out, tables, {"fingerprint": f"f{number}"}, NOW).version_id


@pytest.fixture(scope="module")
def dataset(editions, tmp_path_factory) -> Path:
    """OUT with versions 000001 to 000003 (shared: tests that change OUT take `out`)."""
    out = tmp_path_factory.mktemp("dataset")
    assert [publish(out, tables, n) for n, tables in enumerate(editions[:3], 1)] == list(THREE)
    return out


@pytest.fixture
def out(dataset: Path, tmp_path: Path) -> Path:
    """A copy of `dataset` of this test's own."""
    return own_copy(dataset, tmp_path / "out")


@pytest.fixture(scope="module")
def exported(dataset: Path, tmp_path_factory) -> Path:
    """`dataset` exported once (shared, read only)."""
    target = tmp_path_factory.mktemp("exported") / "delta"
    export_delta(dataset, target)
    return target


def project_table(out: Path, version_id: str, name: str) -> pa.Table:
    """A version's table with its dictionary columns as the strings they hold (as Delta stores them)."""
    store = Store.open(out)
    parts = version_parts(store, store.manifest(version_id), [name], check_types=False)[name]
    return pa.Table.from_batches(list(table_batches(name, parts)), schema=arrow_schema(name))


def table_file(out: Path, version_id: str, name: str) -> Path:
    """The one file of a table of a version (these versions are written whole: one file each)."""
    (file,) = Store.open(out).manifest(version_id).tables[name]
    return out / file.key


def by_key(table: pa.Table, name: str) -> pa.Table:
    return table.sort_by([(key, "ascending") for key in KEYS[name]])


def delta_table(target: Path, name: str, version: int) -> pa.Table:
    return DeltaTable(str(target / name), version=version).to_pyarrow_table()


def delta_versions(target: Path) -> dict[str, int]:
    return {name: DeltaTable(str(target / name)).version() for name in MODELS}


def mapping(target: Path, name: str, key: str = VERSION_KEY) -> dict[int, object]:
    """Delta version → the value of one commit-metadata key."""
    return {commit["version"]: commit.get(key) for commit in DeltaTable(str(target / name)).history()}


def test_each_delta_version_reads_back_as_its_project_version(dataset: Path, tmp_path: Path, gold) -> None:
    lines: list[str] = []
    result = export_delta(dataset, tmp_path / "delta", on_progress=lines.append)
    assert (result.exported, result.already, result.commits, result.shifted) == (THREE, (), 3 * len(MODELS), ())
    assert result.tables == tuple(MODELS)
    assert sum("→ Delta version" in line for line in lines) == 3 * len(MODELS)
    for delta_version, version_id in enumerate(THREE):
        for name in MODELS:
            got = delta_table(tmp_path / "delta", name, delta_version)
            assert by_key(got, name).equals(by_key(project_table(dataset, version_id, name), name)), (name, version_id)
    # the versions do differ, so reading the wrong one would fail above (each has one paper less)
    papers = [delta_table(tmp_path / "delta", "papers", v).num_rows for v in range(3)]
    assert papers == [gold.papers - v for v in range(3)]


def test_polars_time_travels_to_an_old_version(exported: Path, dataset: Path) -> None:
    for delta_version, version_id in ((0, "000001"), (2, "000003")):
        got = pl.read_delta(str(exported / "papers"), version=delta_version).sort("paper_id")
        assert_frame_equal(got, pl.from_arrow(project_table(dataset, version_id, "papers")).sort("paper_id"))
    latest = pl.read_delta(str(exported / "papers")).sort("paper_id")
    assert_frame_equal(latest, pl.from_arrow(project_table(dataset, THREE[-1], "papers")).sort("paper_id"))


def test_commit_metadata_maps_each_delta_version_to_its_project_version(exported: Path, dataset: Path) -> None:
    manifests = [Store.open(dataset).manifest(v) for v in THREE]
    for name in MODELS:
        assert mapping(exported, name) == dict(enumerate(THREE))
        assert mapping(exported, name, PARENT_KEY) == {0: None, 1: "000001", 2: "000002"}
        assert mapping(exported, name, TABLE_KEY) == dict.fromkeys(range(3), name)
        sha256 = {i: table_digest(m.tables[name]) for i, m in enumerate(manifests)}
        assert mapping(exported, name, SHA256_KEY) == sha256
        assert mapping(exported, name, ROWS_KEY) == {i: m.row_counts[name] for i, m in enumerate(manifests)}


def test_an_empty_table_is_a_commit_with_its_schema(exported: Path) -> None:
    for delta_version in range(3):
        rejects = delta_table(exported, "rejects", delta_version)
        assert (rejects.num_rows, rejects.schema) == (0, arrow_schema("rejects"))
    assert delta_table(exported, "changes", 1).num_rows > 0
    emptied = delta_table(exported, "changes", 2)  # version 000003 has no changes
    assert (emptied.num_rows, emptied.schema) == (0, arrow_schema("changes"))


def test_running_again_adds_only_new_versions(out: Path, editions, tmp_path: Path) -> None:
    target = tmp_path / "delta"
    export_delta(out, target)
    again = export_delta(out, target)
    assert (again.exported, again.already, again.commits) == ((), THREE, 0)
    assert delta_versions(target) == dict.fromkeys(MODELS, 2)

    assert publish(out, editions[3], 4) == "000004"
    fourth = export_delta(out, target)
    assert (fourth.exported, fourth.already, fourth.commits) == (("000004",), THREE, len(MODELS))
    assert delta_versions(target) == dict.fromkeys(MODELS, 3)
    for name in MODELS:
        assert mapping(target, name) == dict(enumerate((*THREE, "000004")))
        assert by_key(delta_table(target, name, 3), name).equals(by_key(project_table(out, "000004", name), name))
    assert by_key(delta_table(target, "papers", 0), "papers").equals(
        by_key(project_table(out, "000001", "papers"), "papers")
    )


class Interrupted(BaseException):
    """Stands for the process dying between two commits."""


def test_an_interrupted_export_is_completed_table_by_table(dataset: Path, tmp_path: Path, monkeypatch) -> None:
    real = deltalake.write_deltalake
    made: list[object] = []

    def commit(table_or_uri, data, **options):  # one call per Delta commit
        if len(made) == len(MODELS) + 2:  # all of 000001, then papers and authors of 000002
            raise Interrupted
        made.append(table_or_uri)
        return real(table_or_uri, data, **options)

    monkeypatch.setattr(deltalake, "write_deltalake", commit)
    target = tmp_path / "delta"
    with pytest.raises(Interrupted):
        export_delta(dataset, target)
    monkeypatch.undo()
    assert delta_versions(target) == {name: 1 if name in ("papers", "authors") else 0 for name in MODELS}

    result = export_delta(dataset, target)
    assert (result.exported, result.already) == (("000002", "000003"), ("000001",))
    assert result.commits == (len(MODELS) - 2) + len(MODELS)
    for name in MODELS:
        assert mapping(target, name) == dict(enumerate(THREE))  # 000002 committed once to papers and authors
        assert by_key(delta_table(target, name, 2), name).equals(by_key(project_table(dataset, "000003", name), name))


def test_data_files_of_an_interrupted_first_commit_are_no_obstacle(dataset: Path, tmp_path: Path) -> None:
    papers = tmp_path / "delta" / "papers"
    (papers / "_delta_log").mkdir(parents=True)
    pq.write_table(pa.table({"x": [1]}), papers / "part-00000-0c0ffee0-c000.snappy.parquet")  # no log names it
    export_delta(dataset, tmp_path / "delta")
    assert mapping(tmp_path / "delta", "papers") == dict(enumerate(THREE))
    assert by_key(delta_table(tmp_path / "delta", "papers", 0), "papers").equals(
        by_key(project_table(dataset, "000001", "papers"), "papers")
    )


def test_one_export_at_a_time_writes_to_a_target(dataset: Path, tmp_path: Path) -> None:
    (tmp_path / "delta").mkdir()
    with writer_lock(tmp_path / "delta" / ".lock", 0), pytest.raises(StoreLockedError, match="another run"):
        export_delta(dataset, tmp_path / "delta", lock_timeout_s=0)
    assert not (tmp_path / "delta" / "papers").exists()


def test_versions_pruned_after_their_export_keep_the_mapping(out: Path, editions, tmp_path: Path) -> None:
    exported_before = tmp_path / "delta"
    export_delta(out, exported_before)
    assert [publish(out, editions[3], n) for n in (4, 5)] == ["000004", "000005"]
    assert prune(Store.open(out), keep=2) == list(THREE)

    result = export_delta(out, exported_before)
    assert (result.exported, result.already, result.shifted) == (("000004", "000005"), (), ())
    assert mapping(exported_before, "papers") == dict(enumerate((*THREE, "000004", "000005")))


def test_versions_pruned_before_their_export_shift_the_delta_versions(out: Path, tmp_path: Path) -> None:
    assert prune(Store.open(out), keep=2) == ["000001"]
    lines: list[str] = []
    result = export_delta(out, tmp_path / "delta", on_progress=lines.append)
    assert (result.exported, result.shifted) == (("000002", "000003"), tuple(MODELS))
    assert mapping(tmp_path / "delta", "papers") == {0: "000002", 1: "000003"}
    assert by_key(delta_table(tmp_path / "delta", "papers", 0), "papers").equals(
        by_key(project_table(out, "000002", "papers"), "papers")
    )
    assert sum(line.startswith("note: ") for line in lines) == len(MODELS)


def _edited(file: Path) -> None:
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0x04
    file.write_bytes(bytes(data))


def _linked(file: Path) -> None:
    (other,) = [f for f in file.parent.iterdir() if f != file][:1]  # another version's papers
    file.unlink()
    file.symlink_to(other)


@pytest.mark.parametrize("damage", [_edited, _linked, Path.unlink], ids=["edited", "link", "missing"])
def test_a_damaged_version_stops_the_export_before_any_of_its_tables(out: Path, tmp_path: Path, damage) -> None:
    file = table_file(out, "000002", "papers")
    damage(file)
    with pytest.raises(VersionDamagedError, match=file.name):
        export_delta(out, tmp_path / "delta")
    # 000001 is exported; of 000002 nothing, not even the tables whose files are sound
    assert delta_versions(tmp_path / "delta") == dict.fromkeys(MODELS, 0)


def test_a_version_published_under_another_contract_keeps_its_own_columns(out: Path, tmp_path: Path) -> None:
    older = pq.read_table(table_file(out, "000003", "categories"))
    wider = older.append_column("note", pa.array(["kept"] * older.num_rows))
    staging = tmp_path / "wider.parquet"
    pq.write_table(wider, staging)
    digest = file_digest(staging)
    key = f"data/categories/000003-0000-{digest['sha256']}.parquet"
    staging.rename(out / key)
    path = out / "versions" / "000003" / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["tables"]["categories"]["files"] = [{"path": key, **digest, "rows": wider.num_rows, "generation": 3}]
    path.write_text(json.dumps(manifest), encoding="utf-8")

    export_delta(out, tmp_path / "delta")
    assert "note" not in delta_table(tmp_path / "delta", "categories", 1).column_names
    assert by_key(delta_table(tmp_path / "delta", "categories", 2), "categories").equals(by_key(wider, "categories"))


def test_targets_inside_the_dataset_are_refused(dataset: Path, tmp_path: Path) -> None:
    before = sorted(p.relative_to(dataset) for p in dataset.rglob("*"))
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "papers").symlink_to(dataset / "data", target_is_directory=True)
    for target in (dataset / "versions", dataset / "versions" / "000001", dataset / "staged" / "x", dataset / "data",
                   linked):  # fmt: skip
        with pytest.raises(ExportError, match="inside the dataset's own folders"):
            export_delta(dataset, target)
    with pytest.raises(ExportError, match="is the dataset folder itself"):
        export_delta(dataset, dataset / "versions" / "..")
    assert sorted(p.relative_to(dataset) for p in dataset.rglob("*")) == before


def test_a_versions_folder_that_is_a_link_is_not_followed(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "versions").symlink_to(dataset / "versions", target_is_directory=True)
    with pytest.raises(StoreError, match="is a link"):
        export_delta(out, tmp_path / "delta")


def test_a_path_deltalake_would_misread_is_refused(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="URL"):
        export_delta(dataset, tmp_path / "my delta")
    assert not (tmp_path / "my delta").exists()


def test_a_delta_table_written_by_something_else_is_refused(dataset: Path, tmp_path: Path) -> None:
    target = tmp_path / "delta"
    write_deltalake(str(target / "papers"), pa.table({"x": [1]}))
    with pytest.raises(ExportError, match="this export did not write"):
        export_delta(dataset, target)
    assert DeltaTable(str(target / "papers")).version() == 0
    assert not (target / "authors").exists()


def test_a_folder_of_other_files_is_refused(dataset: Path, tmp_path: Path) -> None:
    (tmp_path / "delta" / "authors").mkdir(parents=True)
    (tmp_path / "delta" / "authors" / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(ExportError, match="but no Delta table"):
        export_delta(dataset, tmp_path / "delta")


def test_the_export_of_another_dataset_is_refused(dataset: Path, editions, tmp_path: Path) -> None:
    other = tmp_path / "other"
    publish(other, editions[2], 1)  # a 000001 with other papers than the dataset's
    target = tmp_path / "delta"
    export_delta(other, target)
    with pytest.raises(ExportError, match="another dataset"):
        export_delta(dataset, target)
    assert delta_versions(target) == dict.fromkeys(MODELS, 0)


def test_an_export_ahead_of_the_dataset_is_refused(out: Path, dataset: Path, editions, tmp_path: Path) -> None:
    publish(out, editions[3], 4)
    target = tmp_path / "delta"
    export_delta(out, target)
    with pytest.raises(ExportError, match=r"holds version 000004, newer than the newest .* \(000003\)"):
        export_delta(dataset, target)
    assert delta_versions(target) == dict.fromkeys(MODELS, 3)


def test_without_deltalake_the_export_says_how_to_install_it(dataset: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "deltalake", None)  # what `import deltalake` meets when not installed
    with pytest.raises(ExportError, match=r"pip install 'paper-listings\[delta\]'"):
        export_delta(dataset, tmp_path / "delta")
    assert not (tmp_path / "delta").exists()


@pytest.mark.server
def test_an_s3_target_takes_each_new_version_with_conditional_put(s3, s3_prefix, out: Path, editions) -> None:
    from tests.s3server import SECRET_KEY

    target = f"{s3_prefix}/delta"
    lines: list[str] = []
    first = export_delta(out, target, on_progress=lines.append)
    assert (first.exported, first.commits, first.target) == (THREE, 3 * len(MODELS), target)
    assert publish(out, editions[3], 4) == "000004"
    fourth = export_delta(out, target)
    assert (fourth.exported, fourth.already) == (("000004",), THREE)
    options = open_storage(target).options()
    assert options["aws_conditional_put"] == "etag"  # deltalake's own put-if-absent for each commit
    for name in MODELS:
        table = DeltaTable(f"{target}/{name}", storage_options=options)
        assert table.version() == 3
        assert {c["version"]: c.get(VERSION_KEY) for c in table.history()} == dict(enumerate((*THREE, "000004")))
        got = DeltaTable(f"{target}/{name}", version=1, storage_options=options).to_pyarrow_table()
        assert by_key(got, name).equals(by_key(project_table(out, "000002", name), name))
    assert open_storage(target).head(".lock") is None  # the export's lock object is released
    assert SECRET_KEY not in "".join(lines) + repr(first)
    other = f"{s3_prefix}/other"
    open_storage(other).put("papers/notes.txt", b"someone else's")
    with pytest.raises(ExportError, match="no Delta table"):
        export_delta(out, other)


@pytest.mark.server
@pytest.mark.parametrize("inside", ["", "/versions", "/versions/000001", "/staged/x", "/data"])
def test_an_s3_target_inside_an_s3_dataset_is_refused(s3, s3_prefix, inside: str) -> None:
    from pipeline.consume.delta_target import DeltaTarget

    dataset = open_storage(f"{s3_prefix}/out")
    with pytest.raises(ExportError, match=r"dataset folder itself|inside the dataset's own folders"):
        DeltaTarget.at(open_storage(f"{dataset.url}{inside}")).check_apart_from(
            dataset, tuple(MODELS), ("versions", "data", "staged", "index", "rejected")
        )
    DeltaTarget.at(open_storage(f"{s3_prefix}/delta")).check_apart_from(dataset, tuple(MODELS), ("versions",))
