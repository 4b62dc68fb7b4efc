"""The staged layer: each listing parsed once, in parts on worker processes; --refresh parses again."""

from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.parse.tables import STAGED_TABLES
from pipeline.raw.sources import InputError
from pipeline.staged.stage import PARSER_MODULES, no_meter, stage_sources, start_parsers
from pipeline.staged.store import STAGED_META
from pipeline.storage import LocalStorage
from pipeline.storage.files import file_digest
from tests.conftest import ONE_RECORD as LISTING
from tests.listings import contents, only_source, record, stage, staged_files


@pytest.fixture
def pool_for_any_size(monkeypatch):
    """Worker processes even for the small listings of these tests."""
    from pipeline import settings

    monkeypatch.setattr(settings, "MIN_PARALLEL_BYTES", 0)


# --- parts: the same result however many, on however many worker processes -------------------


def test_a_listing_in_parts_gives_what_it_gives_whole_on_one_worker_or_two(
    raw: Path, tmp_path: Path, pool_for_any_size
) -> None:
    # CRLF line ends, blank lines, a stray line, a truncated record and a bad date among them.
    before, after = range(300), range(300, 330)  # the records that make papers, either side of the bad lines
    text = "\ufeff" + "".join(record(n) for n in before).replace("\n", "\r\n")
    text += "stray line\r\n\r\n" + "LGMar 3, 2025\r\n" + "LGFeb 30, 2025\r\nA TitleAnn Lee\r\nAbs.\r\n"
    text += "".join(record(n) for n in after)
    (raw / "listing_2026-01-01.txt").write_text(text, encoding="utf-8", newline="")
    source = only_source(raw)
    whole = contents(stage(source, tmp_path / "whole"), tmp_path / "whole")
    in_parts = stage(source, tmp_path / "parts-1", workers=1, chunk_bytes=3_000)
    assert in_parts.parts > 5
    on_two = stage(source, tmp_path / "parts-2", workers=2, chunk_bytes=3_000)
    for table in STAGED_TABLES:
        assert contents(in_parts, tmp_path / "parts-1")[table].equals(whole[table]), table
        assert contents(on_two, tmp_path / "parts-2")[table].equals(whole[table]), table
    assert whole["papers"].num_rows == len(before) + len(after)
    assert sorted(whole["rejects"].column("rule").to_pylist()) == ["invalid_date", "stray_lines", "truncated_record"]
    assert in_parts.counts == stage(source, tmp_path / "whole").counts


def test_hostile_lines_stage_the_same_in_parts_of_a_few_bytes(raw: Path, tmp_path: Path) -> None:
    """Issue 21: header-less lines, an endless line, bad bytes and a repeated paper give the same
    staged tables in parts of 5 or 97 bytes as whole (the scan-level property test covers more)."""
    lines = [b"page chrome", b"x" * 60_000, b"caf\xe9", record(1).encode(), b"", b"more chrome", b"\xff" * 50_000]
    listing = b"\n".join([*lines, record(2).encode(), record(1).encode(), b"trailing"]).replace(b"\n\n", b"\r\n")
    (raw / "listing_2026-01-01.txt").write_bytes(listing)
    source = only_source(raw)
    whole = contents(stage(source, tmp_path / "whole"), tmp_path / "whole")
    assert sorted(set(whole["rejects"].column("rule").to_pylist())) == [
        "duplicate_paper",
        "invalid_encoding",
        "stray_lines",
    ]
    for size in (5, 97):
        in_parts = stage(source, tmp_path / f"parts-{size}", chunk_bytes=size)
        assert in_parts.parts >= 3
        for table in STAGED_TABLES:
            assert contents(in_parts, tmp_path / f"parts-{size}")[table].equals(whole[table]), (size, table)


def test_a_paper_repeated_in_a_later_part_is_a_duplicate_there(raw: Path, tmp_path: Path, pool_for_any_size) -> None:
    text = "".join(record(n) for n in range(40)) + record(3) + "".join(record(n) for n in range(40, 60)) + record(3)
    (raw / "listing_2026-01-01.txt").write_text(text, encoding="utf-8")
    source = only_source(raw)
    whole = contents(stage(source, tmp_path / "whole"), tmp_path / "whole")
    parts = stage(source, tmp_path / "parts", workers=2, chunk_bytes=1_000)
    assert parts.parts > 3
    for table in STAGED_TABLES:
        assert contents(parts, tmp_path / "parts")[table].equals(whole[table]), table
    rejects = whole["rejects"].to_pylist()
    assert [(r["source_line"], r["rule"]) for r in rejects] == [(121, "duplicate_paper"), (184, "duplicate_paper")]
    assert all("line 10" in r["reason"] for r in rejects)
    assert parts.counts.rejects_by_rule == {"duplicate_paper": 2}


def test_an_empty_listing_is_one_empty_part(raw: Path, tmp_path: Path) -> None:
    (raw / "listing_2026-01-01.txt").write_bytes(b"")
    capture = stage(only_source(raw), tmp_path / "staged")
    assert (capture.parts, capture.counts.records, capture.counts.size_bytes) == (1, 0, 0)


def test_big_inputs_are_parsed_on_worker_processes(raw: Path, tmp_path: Path, monkeypatch) -> None:
    from pipeline import settings
    from pipeline.staged import stage as staging

    records = range(100)
    (raw / "listing_2026-01-01.txt").write_text("".join(record(n) for n in records), encoding="utf-8")
    used: list[int] = []
    real_pool = staging.worker_pool

    def spy(workers: int):
        used.append(workers)
        return real_pool(workers)

    monkeypatch.setattr(staging, "worker_pool", spy)
    monkeypatch.setattr(settings, "MIN_PARALLEL_BYTES", 1_000)
    (capture,) = stage_sources(
        [only_source(raw)], LocalStorage(tmp_path / "staged"), False, 2, 2_000, no_meter, tmp_path / "c"
    )
    assert used == [2]
    assert capture.counts.papers == len(records)
    monkeypatch.setattr(settings, "MIN_PARALLEL_BYTES", 10**9)
    stage_sources([only_source(raw)], LocalStorage(tmp_path / "again"), False, 2, 2_000, no_meter, tmp_path / "c")
    assert used == [2, 1]  # a small input is parsed in this process


# --- progress: each part counted as it ends --------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_the_meter_hears_of_each_part_before_the_listing_is_staged(
    raw: Path, tmp_path: Path, pool_for_any_size, workers: int
) -> None:
    (raw / "listing_2026-01-01.txt").write_text("".join(record(n) for n in range(200)), encoding="utf-8")
    source = only_source(raw)
    staged = tmp_path / "staged"
    heard: list[tuple[int, int, bool]] = []
    totals: list[int] = []

    @contextmanager
    def meter(total: int):
        totals.append(total)
        # Whether anything is staged yet when a part is counted: nothing, until the last part is in.
        yield lambda done, papers: heard.append((done, papers, any(staged.glob(f"*/{STAGED_META}"))))

    (capture,) = stage_sources([source], LocalStorage(staged), False, workers, 2_000, meter, tmp_path / "c")
    assert totals == [source.size_bytes]
    assert len(heard) == capture.parts > 3
    assert sum(done for done, _, _ in heard) == source.size_bytes
    assert sum(papers for _, papers, _ in heard) == capture.counts.papers == 200
    assert not any(committed for _, _, committed in heard)


def test_nothing_to_parse_opens_no_meter_worth_showing(raw: Path, tmp_path: Path) -> None:
    (raw / "listing_2026-01-01.txt").write_text(record(1), encoding="utf-8")
    stage(only_source(raw), tmp_path / "staged")
    totals: list[int] = []

    @contextmanager
    def meter(total: int):
        totals.append(total)
        yield lambda done, papers: None

    (capture,) = stage_sources([only_source(raw)], LocalStorage(tmp_path / "staged"), False, 1, 2_000, meter,
                               tmp_path / "c")  # fmt: skip
    assert capture.from_cache
    assert totals == [0]


def _forkservers() -> list[psutil.Process]:
    return [p for p in psutil.Process().children() if "forkserver" in " ".join(p.cmdline())]


def test_the_parsers_server_stops_once_the_listings_are_parsed(raw: Path, tmp_path: Path, pool_for_any_size) -> None:
    (raw / "listing_2026-01-01.txt").write_text("".join(record(n) for n in range(100)), encoding="utf-8")
    start_parsers()
    assert _forkservers()
    (capture,) = stage_sources(
        [only_source(raw)], LocalStorage(tmp_path / "staged"), False, 2, 2_000, no_meter, tmp_path / "c"
    )
    assert capture.parts > 1
    assert not _forkservers()  # its memory is not the run's until the run ends
    start_parsers()
    (again,) = stage_sources(
        [only_source(raw)], LocalStorage(tmp_path / "staged"), False, 2, 2_000, no_meter, tmp_path / "c"
    )
    assert again.from_cache
    assert not _forkservers()  # started early for nothing: stopped all the same


# --- refresh: parsed again, whatever is staged ------------------------------------------------


def test_refresh_parses_again_and_new_content_has_a_new_key(raw: Path, tmp_path: Path) -> None:
    source, staged = only_source(raw), tmp_path / "staged"
    first = stage(source, staged)
    assert not stage(source, staged, refresh=True).from_cache
    source.path.write_text(LISTING + "\n", encoding="utf-8")
    changed = stage(only_source(raw), staged)
    assert (changed.from_cache, changed.key != first.key) == (False, True)


def test_refresh_replaces_what_is_staged(raw: Path, tmp_path: Path) -> None:
    """A staged entry edited in place (its digests rewritten too, so that it verifies) is not used
    by --refresh: the fresh parse takes its place."""
    import json

    source, staged = only_source(raw), tmp_path / "staged"
    first = stage(source, staged)
    papers = staged_files(first, staged)["papers"][0]
    table = pq.read_table(papers)
    edited = table.set_column(1, "title", pa.array(["STALE TITLE"], pa.string()).cast(table.schema.field(1).type))
    pq.write_table(edited.cast(table.schema), papers)
    meta_file = staged / first.key / "capture.json"
    meta = json.loads(meta_file.read_text())
    meta["files"][papers.name] = file_digest(papers)
    meta_file.write_text(json.dumps(meta))
    assert contents(stage(source, staged), staged)["papers"].column("title").to_pylist() == ["STALE TITLE"]

    fresh = stage(source, staged, refresh=True)
    assert not fresh.from_cache
    assert contents(fresh, staged)["papers"].column("title").to_pylist() == ["A Study of Graphs"]
    assert contents(stage(source, staged), staged)["papers"].column("title").to_pylist() == ["A Study of Graphs"]


def test_old_mac_line_ends_are_cut_into_parts_too(raw: Path, tmp_path: Path, pool_for_any_size) -> None:
    records = range(120)
    text = "".join(record(n) for n in records).replace("\n", "\r")
    (raw / "listing_2026-01-01.txt").write_text(text, encoding="utf-8", newline="")
    source = only_source(raw)
    parts = stage(source, tmp_path / "parts", workers=2, chunk_bytes=1_000)
    assert parts.parts > 5
    whole = contents(stage(source, tmp_path / "whole"), tmp_path / "whole")
    assert whole["papers"].num_rows == len(records)
    for table in STAGED_TABLES:
        assert contents(parts, tmp_path / "parts")[table].equals(whole[table]), table


def test_a_listing_changed_between_its_digest_and_its_scan_is_an_input_error(raw: Path, tmp_path, monkeypatch) -> None:
    from pipeline.staged import stage as staging

    monkeypatch.setattr(staging, "listing_digest", lambda source: ("0" * 64, 0))  # what was read first
    with pytest.raises(InputError, match="changed while it was being read"):
        stage(only_source(raw), tmp_path / "staged")


def test_the_parsers_load_no_pandas_nor_pandera() -> None:
    """What each parser shares with its server stays small: the contract's pandera models (with
    pandas and dask) cost each of them ~2 s and ~85 MB, and the schemas they need come with each part."""
    loaded = f"import sys, {', '.join(PARSER_MODULES)}; print(' '.join(sorted(sys.modules)))"
    modules = set(
        subprocess.run([sys.executable, "-c", loaded], capture_output=True, text=True, check=True).stdout.split()
    )
    assert set(PARSER_MODULES) <= modules
    assert not {m.split(".")[0] for m in modules} & {"pandas", "pandera", "dask", "prefect"}
