"""Refreshes that reuse the parent: a refresh that only adds later captures is assembled from them
alone, against the parent's hidden indexes, and shares the parent's files; any other is assembled whole.

Each scenario publishes a first version, then a second from other inputs twice: once as the flow
chooses (incrementally when it can) and once assembled whole from every capture (the choice
forced). Both must publish the same tables, row for row and in the same order.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from pipeline.consume.read import load
from pipeline.errors import StoreWriteError, VersionDamagedError
from pipeline.orchestrate import decisions
from pipeline.published import Manifest, Store, check_version
from pipeline.published.layout import INDEX
from pipeline.storage.verified import cache_path
from schemas.tables import MODELS
from tests.assembly import version_tables
from tests.conftest import SAMPLE, own_copy
from tests.conftest import run_flow as run

pytestmark = pytest.mark.flow

RECORDS = [
    "\n".join(lines) + "\n" for lines in zip(*[iter(SAMPLE.read_text(encoding="utf-8").splitlines())] * 3, strict=True)
]
FIRST = 30  # records of the sample in the first version of most scenarios
# The tables a refresh writes as a new generation beside the parent's files (the others are small, written whole).
GENERATIONAL = ("papers", "paper_authors", "authors")


@pytest.fixture
def assemblies(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, str | None]]:
    """How each run of the flow assembled its version: the captures it assembled, and why whole
    (None: incrementally, against the parent's indexes), in order."""
    from pipeline.orchestrate import steps

    found: list[tuple[int, str | None]] = []
    task = steps.assemble

    def recorded(database: Path, captures: list, parent: object, whole_because: str | None):
        found.append((len(captures), whole_because))
        return task(database, captures, parent, whole_because)

    monkeypatch.setattr(steps, "assemble", recorded)
    return found


@pytest.fixture
def forced_whole(monkeypatch: pytest.MonkeyPatch):
    """Run the flow with its choice of assembly forced to whole (from every capture)."""

    def run_whole(raw: Path, out: Path, **overrides: object):
        with monkeypatch.context() as patch:
            patch.setattr(decisions, "whole_assembly", lambda *args: "forced by the test")
            return run(raw, out, **overrides)

    return run_whole


def _write_raw(raw: Path, listings: dict[str, list[str]]) -> None:
    if raw.exists():
        shutil.rmtree(raw)
    raw.mkdir(parents=True)
    for name, records in listings.items():
        (raw / name).write_text("".join(records), encoding="utf-8")


def _tables(out: Path, version_id: str) -> dict[str, pd.DataFrame]:
    return version_tables(out / "versions" / version_id)


def _assert_same_tables(
    got: dict[str, pd.DataFrame], want: dict[str, pd.DataFrame], skip: tuple[str, ...] = ()
) -> None:
    for name in MODELS:
        if name not in skip:
            pd.testing.assert_frame_equal(got[name], want[name], obj=name)


def _manifests(out: Path) -> tuple[Manifest, Manifest]:
    store = Store.open(out)
    return store.manifest("000001"), store.manifest("000002")


def _refresh_both_ways(
    tmp_path: Path,
    first: dict[str, list[str]],
    second: dict[str, list[str]],
    run_whole,
    **overrides: object,
) -> tuple[Path, Path]:
    """The dataset refreshed as the flow chooses, and a copy of it refreshed whole: both 000002."""
    raw, out = tmp_path / "raw", tmp_path / "chosen"
    _write_raw(raw, first)
    assert run(raw, out, **overrides).version_id == "000001"
    whole = own_copy(out, tmp_path / "whole")
    _write_raw(raw, second)
    for folder, refresh in ((out, run), (whole, run_whole)):
        summary = refresh(raw, folder, **overrides)
        assert (summary.published, summary.version_id) == (True, "000002")
    _assert_same_tables(_tables(out, "000002"), _tables(whole, "000002"))
    return out, whole


def _assert_shares_the_parent(out: Path) -> None:
    """Version 000002 lists every file of its parent's large tables and indexes, and new files of
    its own generation beside them (an incremental refresh)."""
    parent, child = _manifests(out)
    for name in GENERATIONAL:
        kept = set(child.tables[name])
        assert set(parent.tables[name]) <= kept, name
        assert {f.generation for f in kept - set(parent.tables[name])} == {2}, name
    assert set(parent.index["paper_index"]) <= set(child.index["paper_index"])


def _assert_written_whole(out: Path) -> None:
    """Version 000002 shares no file of its parent's papers: every row was written again."""
    parent, child = _manifests(out)
    assert not set(parent.tables["papers"]) & set(child.tables["papers"])
    assert {f.generation for f in child.tables["papers"]} == {2}


def test_a_new_capture_is_assembled_alone_and_shares_the_parent_files(
    tmp_path: Path, prefect_server, assemblies: list[tuple[int, str | None]], forced_whole
) -> None:
    out, _ = _refresh_both_ways(
        tmp_path,
        {"listing_2026-11-26.txt": RECORDS[:FIRST]},
        {"listing_2026-11-26.txt": RECORDS[:FIRST], "listing_2026-11-27.txt": RECORDS[FIRST:]},
        forced_whole,
    )
    assert assemblies[1:] == [(1, None), (2, "forced by the test")]  # the new capture alone, against 000001
    _assert_shares_the_parent(out)
    child = _manifests(out)[1]
    # the new generation holds the new capture's papers only
    new_papers = sum(f.rows for f in child.tables["papers"] if f.generation == 2)
    assert new_papers == len(RECORDS[FIRST:])
    assert child.row_counts["papers"] == len(RECORDS)
    tables = _tables(out, "000002")
    assert set(tables["changes"]["change"]) == {"added"}
    assert len(tables["changes"]) == len(RECORDS[FIRST:])
    assert len(tables["papers"]) == len(RECORDS)
    # The same as one run over both files from nothing, but for the changes.
    scratch = tmp_path / "scratch"
    run(tmp_path / "raw", scratch)
    _assert_same_tables(_tables(scratch, "000001"), tables, skip=("changes",))


def test_a_paper_captured_again_with_a_new_abstract_is_updated(
    tmp_path: Path, prefect_server, assemblies: list[tuple[int, str | None]], forced_whole
) -> None:
    row = 5
    head, body, _abstract = RECORDS[row].split("\n", 2)
    edited = f"{head}\n{body}\nA rewritten abstract.\n"
    out, _ = _refresh_both_ways(
        tmp_path,
        {"listing_2026-11-26.txt": RECORDS[:FIRST]},
        {"listing_2026-11-26.txt": RECORDS[:FIRST], "listing_2026-11-27.txt": [edited, *RECORDS[FIRST:40]]},
        forced_whole,
    )
    assert assemblies[1] == (1, None)
    _assert_shares_the_parent(out)
    tables = _tables(out, "000002")
    changes = tables["changes"]
    updated = changes[changes["change"] == "updated"]
    assert len(updated) == 1
    assert updated["changed_fields"].iloc[0] == "abstract,abstract_text"
    assert (changes["change"] == "added").sum() == len(RECORDS[FIRST:40])
    paper = tables["papers"].set_index("paper_id").loc[updated["paper_id"].iloc[0]]
    assert paper["abstract"] == "A rewritten abstract."
    assert paper["source_file"] == "listing_2026-11-27.txt"
    assert (str(paper["first_seen"]), str(paper["last_seen"])) == ("2026-11-26", "2026-11-27")


def test_a_removed_capture_removes_its_papers(
    tmp_path: Path, prefect_server, assemblies: list[tuple[int, str | None]], forced_whole
) -> None:
    out, _ = _refresh_both_ways(
        tmp_path,
        {"listing_2026-11-26.txt": RECORDS[:20], "listing_2026-11-27.txt": RECORDS[20:40]},
        {"listing_2026-11-26.txt": RECORDS[:20]},
        forced_whole,
        max_removed_rate=1.0,
    )
    assert assemblies[1] == (1, "a capture of its parent is gone or changed (listing_2026-11-27.txt)")
    _assert_written_whole(out)
    tables = _tables(out, "000002")
    assert len(tables["changes"]) == len(RECORDS[20:40])
    assert set(tables["changes"]["change"]) == {"removed"}
    assert len(tables["papers"]) == len(RECORDS[:20])
    assert _manifests(out)[1].row_counts["papers"] == len(RECORDS[:20])


def test_an_earlier_capture_added_later_is_assembled_whole(
    tmp_path: Path, prefect_server, assemblies: list[tuple[int, str | None]], forced_whole
) -> None:
    out, _ = _refresh_both_ways(
        tmp_path,
        {"listing_2026-11-27.txt": RECORDS[20:40]},
        {"listing_2026-11-26.txt": RECORDS[:20], "listing_2026-11-27.txt": RECORDS[20:40]},
        forced_whole,
    )
    assert assemblies[1] == (2, "a new capture comes before its parent's newest (listing_2026-11-26.txt)")
    _assert_written_whole(out)
    tables = _tables(out, "000002")
    assert set(tables["changes"]["change"]) == {"added"}
    assert len(tables["changes"]) == 20
    # the same tables as one run over both files from nothing, but for the changes
    scratch = tmp_path / "scratch"
    run(tmp_path / "raw", scratch)
    _assert_same_tables(_tables(scratch, "000001"), tables, skip=("changes",))


def test_an_index_of_another_recipe_is_not_read(
    tmp_path: Path, prefect_server, assemblies: list[tuple[int, str | None]], forced_whole
) -> None:
    """A parent whose indexes this code does not read (another recipe): assembled whole, same tables."""
    raw, out = tmp_path / "raw", tmp_path / "out"
    _write_raw(raw, {"listing_2026-11-26.txt": RECORDS[:FIRST]})
    run(raw, out)
    manifest = out / "versions" / "000001" / "manifest.json"
    document = json.loads(manifest.read_text(encoding="utf-8"))
    document["index_recipe"] = "an older recipe"
    manifest.chmod(0o644)
    manifest.write_text(json.dumps(document), encoding="utf-8")
    whole = own_copy(out, tmp_path / "whole")
    _write_raw(raw, {"listing_2026-11-26.txt": RECORDS[:FIRST], "listing_2026-11-27.txt": RECORDS[FIRST:]})
    summary = run(raw, out)
    assert summary.changes == {"added": len(RECORDS[FIRST:])}
    assert assemblies[1] == (2, "its parent has no index this code reads (an older layout or recipe)")
    _assert_written_whole(out)
    forced_whole(raw, whole)
    _assert_same_tables(_tables(out, "000002"), _tables(whole, "000002"))


def test_a_parent_papers_file_edited_behind_its_manifest_is_never_laundered(tmp_path: Path, prefect_server) -> None:
    """A refresh shares the parent's papers files unread (their size checked, not their bytes):
    an edit that keeps the size goes into no new file, and the new version lists the file with
    its true sha256, so that readers refuse it and `validate` names it, in both versions."""
    raw, out = tmp_path / "raw", tmp_path / "out"
    _write_raw(raw, {"listing_2026-11-26.txt": RECORDS[:FIRST]})
    run(raw, out)
    (file,) = Store.open(out).manifest("000001").tables["papers"]
    papers = out / file.key
    data = bytearray(papers.read_bytes())
    data[100] ^= 0x01  # a file the refresh shares as it is
    papers.chmod(0o644)
    papers.write_bytes(bytes(data))
    _write_raw(raw, {"listing_2026-11-26.txt": RECORDS[:FIRST], "listing_2026-11-27.txt": RECORDS[FIRST:]})
    run(raw, out)
    store = Store.open(out)
    assert file in store.manifest("000002").tables["papers"]  # listed as it was: sha256 and all
    for version_id in ("000001", "000002"):
        failures = check_version(store, version_id)
        named = zip(failures["check"], failures["table"], strict=True)
        assert ("sha256", True) in {(check, file.key in str(label)) for check, label in named}
        with pytest.raises(VersionDamagedError, match="differs from the sha256 in its manifest"):
            load("papers", version=version_id, out=out)


def test_a_listing_edited_in_place_is_compared_not_kept(
    tmp_path: Path, prefect_server, assemblies: list[tuple[int, str | None]], forced_whole
) -> None:
    """The same name, other bytes: a new staged capture; the parent's is gone, so nothing is shared."""
    head, body, _abstract = RECORDS[2].split("\n", 2)
    edited = [*RECORDS[:2], f"{head}\n{body}\nA rewritten abstract.\n", *RECORDS[3:FIRST]]
    out, _ = _refresh_both_ways(
        tmp_path, {"listing_2026-11-26.txt": RECORDS[:FIRST]}, {"listing_2026-11-26.txt": edited}, forced_whole
    )
    assert assemblies[1] == (1, "a capture of its parent is gone or changed (listing_2026-11-26.txt)")
    _assert_written_whole(out)
    changes = _tables(out, "000002")["changes"]
    assert list(zip(changes["change"], changes["changed_fields"], strict=True)) == [
        ("updated", "abstract,abstract_text")
    ]


def test_other_code_keeps_nothing_of_the_parent(
    tmp_path: Path, prefect_server, assemblies: list[tuple[int, str | None]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Other code makes other staged keys: its rows may differ, so the version is assembled whole."""
    from pipeline.orchestrate import steps
    from pipeline.staged import stage

    raw, out = tmp_path / "raw", tmp_path / "out"
    _write_raw(raw, {"listing_2026-11-26.txt": RECORDS[:FIRST]})
    run(raw, out)
    for module in (steps, stage):
        monkeypatch.setattr(module, "code_fingerprint", lambda: "other code")
    _write_raw(raw, {"listing_2026-11-26.txt": RECORDS[:FIRST], "listing_2026-11-27.txt": RECORDS[FIRST:]})
    summary = run(raw, out)
    assert summary.changes == {"added": len(RECORDS[FIRST:])}
    assert summary.parsed_files == ["listing_2026-11-26.txt", "listing_2026-11-27.txt"]  # other staged keys
    assert assemblies[1] == (2, "the code (or a library whose output is data) changed since its parent")
    _assert_written_whole(out)


def _assert_nothing_published(out: Path) -> None:
    """Latest is still 000001, and nothing of the refused version was left behind."""
    store = Store.open(out)
    assert store.version_ids() == ["000001"]
    assert (out / "LATEST_ID").read_text() == "000001\n"
    assert not (out / "versions" / "000002").exists()
    listed = {f.key for f in store.manifest("000001").data_files()}
    stored = {p.relative_to(out).as_posix() for area in ("data", INDEX) for p in (out / area).rglob("*")}
    assert {key for key in stored if (out / key).is_file()} <= listed
    assert not [p for p in out.rglob(".tmp*")]


@pytest.mark.parametrize(
    ("table", "damage", "cached"),
    [("papers", "deleted", False), ("papers", "truncated", False), ("papers", "deleted", True),
     ("papers", "truncated", True)],
)  # fmt: skip
def test_a_missing_or_truncated_parent_file_is_damage_not_a_write_error(
    tmp_path: Path, prefect_server, monkeypatch: pytest.MonkeyPatch, table: str, damage: str, cached: bool
) -> None:
    """`cached`: this machine's readers' cache holds a good copy of the file (read from object
    storage once, say): the store's own file is still the one checked, and the damage still found."""
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path / "reader-cache"))
    raw, out = tmp_path / "raw", tmp_path / "out"
    _write_raw(raw, {"listing_2026-11-26.txt": RECORDS[:FIRST]})
    run(raw, out)
    manifest = Store.open(out).manifest("000001")
    (file,) = manifest.tables[table] if table in manifest.tables else manifest.index[table]
    path = out / file.key
    if cached:
        copy = cache_path(tmp_path / "reader-cache", file.sha256)
        copy.parent.mkdir(parents=True)
        shutil.copyfile(path, copy)
    path.chmod(0o644)
    if damage == "deleted":
        path.unlink()
    else:
        path.write_bytes(path.read_bytes()[:-100])
    _write_raw(raw, {"listing_2026-11-26.txt": RECORDS[:FIRST], "listing_2026-11-27.txt": RECORDS[FIRST:]})
    with pytest.raises(VersionDamagedError, match=file.key) as refused:
        run(raw, out)
    assert not isinstance(refused.value, StoreWriteError)
    assert refused.value.exit_code == 2
    assert ("is missing" if damage == "deleted" else "differs from the sha256 in its manifest") in str(refused.value)
    _assert_nothing_published(out)


def test_a_damaged_parent_index_costs_a_whole_assembly_from_its_tables(
    tmp_path: Path, prefect_server, assemblies: list[tuple[int, str | None]], forced_whole
) -> None:
    """An index is not data: a file of the parent's that is damaged is read around (its tables
    instead), with a warning, and the new version lists none of its files."""
    raw, out = tmp_path / "raw", tmp_path / "out"
    _write_raw(raw, {"listing_2026-11-26.txt": RECORDS[:FIRST]})
    run(raw, out)
    intact = own_copy(out, tmp_path / "intact")
    (file,) = Store.open(out).manifest("000001").index["paper_index"]
    (out / file.key).chmod(0o644)
    (out / file.key).write_bytes((out / file.key).read_bytes()[:-100])
    _write_raw(raw, {"listing_2026-11-26.txt": RECORDS[:FIRST], "listing_2026-11-27.txt": RECORDS[FIRST:]})
    assert run(raw, out).version_id == "000002"
    assert assemblies[1][0] == 2
    assert str(assemblies[1][1]).startswith(f"its parent's index cannot be read ({out / file.key}")
    _assert_written_whole(out)
    store = Store.open(out)
    assert file not in store.manifest("000002").index["paper_index"]
    assert check_version(store, "000002").empty
    forced_whole(raw, intact)
    _assert_same_tables(_tables(out, "000002"), _tables(intact, "000002"))
