"""The staged layer's shell: each raw listing parsed once, in parts across processes, into Parquet."""

from __future__ import annotations

import dataclasses
import multiprocessing
import multiprocessing.forkserver
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline import settings
from pipeline.db import connect, sql_files
from pipeline.parse.listing import decode_listing
from pipeline.parse.reference import load_reference
from pipeline.parse.tables import chunk_tables, staged_schemas
from pipeline.raw.scan import Chunk, changed_error, each_chunk, listing_digest, read_part, scan
from pipeline.raw.sources import Source, code_fingerprint, listing_cache_key
from pipeline.staged.capture import CaptureCounts, StagedCapture
from pipeline.staged.lifeline import mark_run, run_alive, start_worker
from pipeline.staged.store import (
    KnownInput,
    commit_staged,
    known_inputs,
    staged_meta,
    staged_part_name,
    write_staged_part,
)
from pipeline.storage import Storage
from schemas.rules import HEADERLESS_RULES

# Opens the progress of parsing `total` bytes: a function told (bytes, papers) as each part is done.
OpenMeter = Callable[[int], AbstractContextManager[Callable[[int, int], None]]]


def no_meter(total: int) -> AbstractContextManager[Callable[[int, int], None]]:
    """A meter that shows nothing (callers with no one to tell)."""
    return nullcontext(lambda done, papers: None)


@dataclass(frozen=True, slots=True)
class ChunkResult:
    """What parsing one part produced: its files' digests and its counts."""

    index: int
    files: dict[str, dict[str, Any]]
    papers: int
    rejects_by_rule: dict[str, int] = field(default_factory=dict)
    headed: int = 0  # papers plus rejects that had a record header


def stage_chunk(
    source: Source, chunk: Chunk, folder: Path, index: int, schemas: Mapping[str, pa.Schema],
    earlier: Mapping[str, int] | None = None,
) -> ChunkResult:  # fmt: skip
    """Parse one part of a listing and write its staged tables (`schemas`, from `staged_schemas`)
    into `folder` (runs in a worker)."""
    part = read_part(source, chunk)
    text, undecodable = decode_listing(part.data, chunk.first_line)
    lengths, undecodable = part.line_lengths, undecodable | part.undecodable
    del part  # the bytes are not kept beside their text: a worker's peak is a few copies of its part
    tables = chunk_tables(
        text, source.capture_date, load_reference(), first_line=chunk.first_line, undecodable=undecodable,
        line_lengths=lengths, earlier=earlier, schemas=schemas,
    )  # fmt: skip
    if not run_alive():
        raise SystemExit("the run this worker parsed for has ended: nothing written")
    files = write_staged_part(folder, index, tables)
    rules = Counter(tables["rejects"].column("rule").to_pylist())
    headed = tables["papers"].num_rows + sum(n for rule, n in rules.items() if rule not in HEADERLESS_RULES)
    return ChunkResult(index, files, tables["papers"].num_rows, dict(rules), headed)


# --- running parts on worker processes ---------------------------------------------------------


class _Inline(Executor):
    """Runs each call at once in this process: one worker needs no pool."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as err:  # handed to the caller through the future, as a pool would
            future.set_exception(err)
        return future


# What the parsers' server loads before it forks a worker. The lifeline first: the server is tied
# to its run before it loads the rest.
PARSER_MODULES = ("pipeline.staged.lifeline", "pipeline.staged.stage", "pipeline.staged.worker")


def _parsers_context() -> Any:
    mark_run()  # the server, once started, ends with this process (`pipeline.staged.lifeline`)
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(PARSER_MODULES))
    return context


def worth_starting_parsers(listing_bytes: int, workers: int) -> bool:
    """Whether a run with `listing_bytes` of listings may parse on `workers` processes."""
    return workers > 1 and listing_bytes >= settings.MIN_PARALLEL_BYTES


def start_parsers() -> None:
    """Start the server process that forks the parsers now, while the run is still starting: it
    loads the parser and builds what every part needs (~6 s), and the first part waits for it."""
    _parsers_context()
    multiprocessing.forkserver.ensure_running()


class _OpenPools:
    """How many pools of this process use the forkserver (Prefect may run staging tasks on
    several threads): the last one to close stops it."""

    lock = threading.Lock()
    count = 0


def stop_parsers() -> None:
    """Stop the parsers' forkserver unless a pool uses it: once parsing is done, its ~130 MB
    (no longer shared with any worker) would stay the run's until it ends, at its peak."""
    with _OpenPools.lock:
        # CPython's own stop (its tests use it); where it is missing, the server ends with the run.
        stop = getattr(getattr(multiprocessing.forkserver, "_forkserver", None), "_stop", None)
        if _OpenPools.count == 0 and stop is not None:
            stop()


@contextmanager
def worker_pool(workers: int) -> Iterator[Executor]:
    """`workers` processes for parsing parts (this process alone when 1). They are forked from a
    clean server process that has only the parser loaded: never from this one, whose threads
    (Prefect's) would not survive a fork. The server stops with the last pool."""
    if workers <= 1:
        yield _Inline()
        return
    with _OpenPools.lock:
        _OpenPools.count += 1
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=_parsers_context(), initializer=start_worker) as pool:
            yield pool
    finally:
        with _OpenPools.lock:
            _OpenPools.count -= 1
        stop_parsers()


def _cross_part_duplicates(folder: Path, parts: int) -> dict[int, dict[str, int]]:
    """Papers listed again in a later part of the same capture: part index → {paper id: line of
    its first listing}. Each part already keeps only the first of its own repeats."""
    files = sql_files([folder / staged_part_name("papers", i) for i in range(parts)])
    listed = (
        "SELECT paper_id, source_line, CAST(regexp_extract(filename, '-([0-9]+)\\.parquet$', 1) AS INTEGER) AS part "
        f"FROM read_parquet({files}, filename = true)"
    )
    with connect(memory_limit=settings.PART_CHECK_MEMORY, threads=1) as con:
        # Ids first (one narrow column), then the lines and parts of the few that repeat.
        con.execute(
            f"CREATE TEMP TABLE repeated AS SELECT paper_id FROM ({listed}) GROUP BY paper_id HAVING count(*) > 1"
        )
        rows = con.execute(
            "SELECT paper_id, list(source_line ORDER BY source_line), list(part ORDER BY source_line) "
            f"FROM ({listed}) WHERE paper_id IN (SELECT paper_id FROM repeated) GROUP BY paper_id"
        ).fetchall()
    again: dict[int, dict[str, int]] = {}
    for paper_id, lines, where in rows:
        for part in set(where) - {where[0]}:
            again.setdefault(part, {})[paper_id] = lines[0]
    return again


@dataclass(frozen=True, slots=True)
class _ToParse:
    """A listing the staged layer does not hold yet (its `source` with a local copy to read)."""

    source: Source
    sha256: str
    size_bytes: int
    key: str


def listing_key(source: Source, known: Mapping[str, KnownInput], refresh: bool, into: Path) -> tuple[Source, str, int]:
    """The listing's content sha256 and size, and the source with a local copy when it had to be
    read for them: a listing whose storage tag is the one recorded when a run last read it is not
    read again (`--refresh` reads every one)."""
    entry = known.get(source.name)
    if not refresh and entry is not None and entry.tag == source.tag and entry.size == source.size_bytes:
        return source, entry.sha256, entry.size
    local = source.with_local_copy(into)
    sha256, size = listing_digest(local)
    return local, sha256, size


def _staged_or_to_parse(
    source: Source, staged: Storage, refresh: bool, known: Mapping[str, KnownInput], into: Path
) -> StagedCapture | _ToParse:
    """The listing as the staged layer holds it (keyed on its content), or what parsing it needs.

    With `refresh`, what is staged is not used (but is replaced). Whether a staged entry is whole
    is checked when it is read (`pipeline.staged.store.local_entry`), not here: a refresh never
    reads the entries of the captures it does not assemble."""
    read, sha256, size = listing_key(source, known, refresh, into)
    key = listing_cache_key(source.name, source.capture_date, sha256, code_fingerprint())
    if not refresh:
        meta = staged_meta(staged, key)
        if meta is not None:
            counts = CaptureCounts.from_json(source.name, meta["counts"])
            return StagedCapture(source, key, sha256, meta["parts"], counts, True)
    return _ToParse(read.with_local_copy(into), sha256, size, key)


def _commit(todo: _ToParse, folder: Path, staged: Storage, results: list[ChunkResult], cache: Path) -> StagedCapture:
    source = todo.source
    counts = CaptureCounts(
        source.name, todo.size_bytes, sum(r.papers for r in results),
        dict(sum((Counter(r.rejects_by_rule) for r in results), Counter())), sum(r.headed for r in results),
    )  # fmt: skip
    files = {name: digest for r in results for name, digest in r.files.items()}
    meta = {"source_file": source.name, "sha256": todo.sha256, "parts": len(results),
            "counts": counts.to_json(), "files": files}  # fmt: skip
    commit_staged(staged, folder, todo.key, meta, cache)
    return StagedCapture(dataclasses.replace(source, path=None), todo.key, todo.sha256, len(results), counts, False)


def _parse(
    todo: Sequence[_ToParse], staged: Storage, work: Path, workers: int, chunk_bytes: int, meter: OpenMeter,
    cache: Path,
) -> dict[str, StagedCapture]:  # fmt: skip
    """Parse the parts of every listing of `todo` on up to `workers` processes (all parts of all
    files in one pool, so that small files keep every core busy too), then stage each listing.

    Each part goes to the workers as soon as the scan finds it: the scan of a large file runs
    beside the parsing of its first parts, not before it. The meter hears of each part as it ends."""
    size = sum(t.size_bytes for t in todo)
    schemas = staged_schemas()  # built here: the parsers never load the contract's pandera models
    with ExitStack() as stack:
        folders = []
        for number in range(len(todo)):
            folder = work / f"capture-{number:06d}"
            folder.mkdir()
            folders.append(folder)
        chunks: list[list[Chunk]] = [[] for _ in todo]
        futures: list[list[Future[ChunkResult]]] = [[] for _ in todo]
        advance = stack.enter_context(meter(size))
        with worker_pool(workers if worth_starting_parsers(size, workers) else 1) as pool:
            for t, folder, found, parts in zip(todo, folders, chunks, futures, strict=True):

                def submit(chunk: Chunk, t: _ToParse = t, folder: Path = folder, found: list[Chunk] = found,
                           parts: list[Future[ChunkResult]] = parts) -> None:  # fmt: skip
                    future = pool.submit(stage_chunk, t.source, chunk, folder, len(found), schemas)
                    future.add_done_callback(partial(_count, size=chunk.length, advance=advance))
                    parts.append(future)
                    found.append(chunk)

                if each_chunk(scan(t.source, chunk_bytes), submit)[0] != t.sha256:
                    raise changed_error(t.source)
            results = [[f.result() for f in parts] for parts in futures]
        # The workers are gone before the checks below take memory of their own.
        staged_captures = {}
        for t, folder, found, done in zip(todo, folders, chunks, results, strict=True):
            if len(done) > 1:
                for i, earlier in _cross_part_duplicates(folder, len(done)).items():
                    done[i] = stage_chunk(t.source, found[i], folder, i, schemas, earlier)
            staged_captures[t.source.name] = _commit(t, folder, staged, done, cache)
    return staged_captures


def _count(part: Future[ChunkResult], size: int, advance: Callable[[int, int], None]) -> None:
    """Tell the meter of a part that ended (a failed one is raised where its result is read)."""
    if not part.cancelled() and part.exception() is None:
        advance(size, part.result().papers)


def stage_sources(
    sources: Sequence[Source], staged: Storage, refresh: bool, workers: int, chunk_bytes: int, meter: OpenMeter,
    cache: Path,
) -> list[StagedCapture]:  # fmt: skip
    """Every listing of `sources` in the staged layer `staged`: found there, or parsed in parts of
    about `chunk_bytes` on up to `workers` processes when there is enough to parse to repay their
    start (`meter` opened for the bytes to parse). A listing on storage that is not a local disk is
    read from a local copy; the parts parsed here are kept in `cache` as they are stored, so that
    this machine does not download them again."""
    known = known_inputs(staged)
    with staged.workspace() as work:
        found = [_staged_or_to_parse(s, staged, refresh, known, work / f"listing-{n:06d}.txt")
                 for n, s in enumerate(sources)]  # fmt: skip
        parsed = _parse([f for f in found if isinstance(f, _ToParse)], staged, work, workers, chunk_bytes, meter,
                        cache)  # fmt: skip
        stop_parsers()  # started early (`start_parsers`) for what turned out to be staged already
    return [parsed[f.source.name] if isinstance(f, _ToParse) else f for f in found]
