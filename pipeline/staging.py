"""The staged layer's shell: each raw listing parsed once, in parts across processes, into Parquet."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import re
import stat
import tempfile
from collections import Counter
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from pipeline import store
from pipeline.listing import MAX_HEADER_CHARS, MONTHS, decode_listing, is_header
from pipeline.reference import load_reference
from pipeline.report import HEADERLESS_RULES, CaptureCounts
from pipeline.sources import InputError, Source, code_fingerprint, listing_cache_key
from pipeline.sql import sql_files
from pipeline.tables import chunk_tables

# A part of a listing is parsed by one process: big enough that a part's fixed costs (four
# Parquet files) vanish, small enough that a worker needs ~100 MB beyond its imports.
DEFAULT_CHUNK_BYTES = 8 << 20
# Below this much text to parse, worker processes cost more (~1 s to start) than they save.
MIN_PARALLEL_BYTES = 8 << 20
_READ_BLOCK = 4 << 20
# A part is cut at the start of a record header; when none comes for this many parts' worth of
# bytes (a file without headers, all stray lines), it is cut at a line end instead, so that one
# hostile file never needs more memory than this.
_MAX_PART_FACTOR = 4


@dataclass(frozen=True, slots=True)
class Chunk:
    """A byte range of a listing that starts at a record header (or the file's start)."""

    offset: int
    length: int
    first_line: int  # number of its first line in the file
    sha256: str


@dataclass(frozen=True, slots=True)
class Scanned:
    """A listing read once: its digest, size and the parts it is parsed in."""

    sha256: str
    size_bytes: int
    chunks: tuple[Chunk, ...]


@dataclass(frozen=True, slots=True)
class StagedCapture:
    """One capture in the staged layer: where its tables are, and what it holds."""

    source: Source
    key: str
    sha256: str
    folder: Path
    parts: int
    counts: CaptureCounts
    from_cache: bool
    note: str | None = None

    def files(self, table: str) -> list[Path]:
        """The capture's Parquet files of one staged table, in line order."""
        return [self.folder / store.staged_part_name(table, index) for index in range(self.parts)]


@dataclass(frozen=True, slots=True)
class ChunkResult:
    """What parsing one part produced: its files' digests and its counts."""

    index: int
    files: dict[str, dict[str, Any]]
    papers: int
    rejects_by_rule: dict[str, int] = field(default_factory=dict)
    headed: int = 0  # papers plus rejects that had a record header


def _line_breaks(data: bytes | bytearray, end: int | None = None) -> int:
    """Lines ended in `data` (up to `end`), as `split_lines` counts them (LF, CRLF or a lone CR)."""
    end = len(data) if end is None else end
    lf = data.count(b"\n", 0, end)
    if data.find(b"\r", 0, end) < 0:  # the common case: one fast pass, not three
        return lf
    return lf + data.count(b"\r", 0, end) - data.count(b"\r\n", 0, end)


def _starts_record(line: bytes) -> bool:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return is_header(text.rstrip(" \t\u00a0"))


_LINE_END = re.compile(rb"\r\n|\r|\n")  # as split_lines reads them
# A line end followed, within a header's length, by a month name: the places where a record
# header may start, found at the regex engine's speed; each is then checked as a header.
_MAY_START_RECORD = re.compile(
    rb"(?:\r\n|\r|\n)(?=[^\r\n]{0,%d}?(?:%s))" % (MAX_HEADER_CHARS, "|".join(MONTHS).encode())
)
_LOOKAHEAD_BYTES = 4 * MAX_HEADER_CHARS + 8  # a header of 100 characters takes at most this many bytes


def _cut(buffer: bytearray, position: int, target: int, at_end: bool) -> tuple[int | None, int]:
    """Where to end a part of `buffer`, and where the next call resumes the search when more bytes
    are needed to tell (the cut is then None): after the first line end at or past `target` that a
    record header follows. When none comes before `_MAX_PART_FACTOR` times `target`, the part ends
    at the last line end before that limit, or at the limit itself inside a line that long."""
    limit = _MAX_PART_FACTOR * target
    position = max(position, target - 1)
    while (found := _MAY_START_RECORD.search(buffer, position)) is not None and found.start() < limit:
        end = found.end()
        following = _LINE_END.search(buffer, end)
        if following is None and not at_end:
            return None, found.start()
        if _starts_record(bytes(buffer[end : following.start() if following else len(buffer)])):
            return end, 0
        position = end
    if at_end:
        return len(buffer), 0
    if len(buffer) < limit:
        return None, max(position, len(buffer) - _LOOKAHEAD_BYTES)
    last = max(buffer.rfind(b"\n", target, limit), buffer.rfind(b"\r", target, limit - 1))
    return (last + 1 if last >= 0 else limit), 0


def _open_listing(source: Source) -> int:
    """A read-only descriptor of a listing, never through a link put in its place since discovery."""
    try:
        fd = os.open(source.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as err:
        raise InputError(f"cannot read {source.name}: {err.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InputError(f"cannot read {source.name}: not a regular file")
    return fd


@contextmanager
def _listing_fd(source: Source) -> Iterator[int]:
    """A listing's descriptor (`_open_listing`) for the block; a failed read is an InputError."""
    fd = _open_listing(source)
    try:
        yield fd
    except OSError as err:
        raise InputError(f"cannot read {source.name}: {err.strerror}") from None
    finally:
        os.close(fd)


def _changed(source: Source) -> InputError:
    return InputError(f"{source.name} changed while it was being read; run again when it is complete")


def _scan(source: Source, chunk_bytes: int) -> Generator[Chunk, None, tuple[str, int]]:
    """Read a listing once, in blocks, yielding parts of about `chunk_bytes` that each start at a
    record header as they are found (the file is never held whole in memory); return its sha256
    and size."""
    whole = hashlib.sha256()
    buffer = bytearray()
    offset, line, resume = 0, 1, 0

    def take(length: int) -> Chunk:
        nonlocal offset, line, buffer
        with memoryview(buffer) as view:  # hashed in place, not copied first
            digest = hashlib.sha256(view[:length]).hexdigest()
        chunk = Chunk(offset, length, line, digest)
        offset += length
        line += _line_breaks(buffer, length)
        del buffer[:length]
        return chunk

    taken = False
    with _listing_fd(source) as fd:
        while True:
            block = os.read(fd, _READ_BLOCK)
            whole.update(block)
            buffer += block
            at_end = not block
            while len(buffer) >= chunk_bytes:
                cut, resume = _cut(buffer, resume, chunk_bytes, at_end)
                if cut is None or (cut == len(buffer) and not at_end):
                    break
                yield take(cut)
                taken, resume = True, 0
            if at_end:
                break
    if buffer or not taken:
        yield take(len(buffer))
    return whole.hexdigest(), offset


def _each_chunk(scan: Generator[Chunk, None, tuple[str, int]], handle: Callable[[Chunk], object]) -> tuple[str, int]:
    """Hand every part of a scan to `handle` as it is found; the scan's sha256 and size."""
    while True:
        try:
            chunk = next(scan)
        except StopIteration as end:
            return end.value
        handle(chunk)


def scan_listing(source: Source, chunk_bytes: int) -> Scanned:
    """A listing read once: its sha256, size, and parts of about `chunk_bytes` that each start at
    a record header."""
    chunks: list[Chunk] = []
    sha256, size = _each_chunk(_scan(source, chunk_bytes), chunks.append)
    return Scanned(sha256, size, tuple(chunks))


def listing_digest(source: Source) -> tuple[str, int]:
    """The sha256 and size of a listing, read in blocks: what finds it in the staged layer. Only a
    listing not found there is scanned for its parts (`scan_listing`)."""
    digest, size = hashlib.sha256(), 0
    with _listing_fd(source) as fd:
        while block := os.read(fd, _READ_BLOCK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def read_chunk(source: Source, chunk: Chunk) -> bytes:
    """The bytes of one part, checked against the digest taken when the file was scanned."""
    parts, got = [], 0
    with _listing_fd(source) as fd:
        while got < chunk.length:
            piece = os.pread(fd, chunk.length - got, chunk.offset + got)
            if not piece:
                break
            parts.append(piece)
            got += len(piece)
    data = b"".join(parts)
    if hashlib.sha256(data).hexdigest() != chunk.sha256:
        raise _changed(source)
    return data


def stage_chunk(
    source: Source, chunk: Chunk, folder: Path, index: int, earlier: Mapping[str, int] | None = None
) -> ChunkResult:
    """Parse one part of a listing and write its staged tables into `folder` (runs in a worker)."""
    data = read_chunk(source, chunk)
    text, undecodable = decode_listing(data, chunk.first_line)
    tables = chunk_tables(
        text, source.capture_date, load_reference(), first_line=chunk.first_line, undecodable=undecodable,
        earlier=earlier,
    )  # fmt: skip
    files = store.write_staged_part(folder, index, tables)
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


@contextmanager
def worker_pool(workers: int) -> Iterator[Executor]:
    """`workers` processes for parsing parts (this process alone when 1). They are forked from a
    clean server process that has only the parser loaded: never from this one, whose threads
    (Prefect's) would not survive a fork."""
    if workers <= 1:
        yield _Inline()
        return
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["pipeline.staging"])
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield pool


def _cross_part_duplicates(folder: Path, parts: int) -> dict[int, dict[str, int]]:
    """Papers listed again in a later part of the same capture: part index → {paper id: line of
    its first listing}. Each part already keeps only the first of its own repeats."""
    files = sql_files([folder / store.staged_part_name("papers", i) for i in range(parts)])
    listed = (
        "SELECT paper_id, source_line, CAST(regexp_extract(filename, '-([0-9]+)\\.parquet$', 1) AS INTEGER) AS part "
        f"FROM read_parquet({files}, filename = true)"
    )
    with (
        tempfile.TemporaryDirectory(prefix="pipeline-parts-") as spill,
        duckdb.connect(config={"memory_limit": "128MB", "threads": 1, "temp_directory": spill}) as con,
    ):
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
    """A listing the staged layer does not hold yet."""

    source: Source
    sha256: str
    size_bytes: int
    key: str
    note: str | None
    replace: bool  # --refresh: what is staged under the key gives way to this parse


def _staged_or_to_parse(source: Source, staged_dir: Path, refresh: bool) -> StagedCapture | _ToParse:
    """The listing as the staged layer holds it (keyed on its content), or what parsing it needs.

    With `refresh`, what is staged is not used (but is replaced). A staged entry that fails
    verification is parsed again, with a note.
    """
    sha256, size = listing_digest(source)
    key = listing_cache_key(source, sha256, code_fingerprint())
    note = None
    if not refresh:
        try:
            meta = store.read_staged(staged_dir, key)
        except store.StagedEntryInvalidError as err:
            meta, note = None, f"{source.name}: staged parse ignored and parsed again ({err})"
            store.discard_staged(staged_dir, key)
        if meta is not None:
            counts = CaptureCounts.from_json(source.name, meta["counts"])
            return StagedCapture(source, key, sha256, staged_dir / key, meta["parts"], counts, True, note)
    return _ToParse(source, sha256, size, key, note, replace=refresh)


def _commit(todo: _ToParse, folder: Path, staged_dir: Path, results: list[ChunkResult]) -> StagedCapture:
    source = todo.source
    counts = CaptureCounts(
        source.name, todo.size_bytes, sum(r.papers for r in results),
        dict(sum((Counter(r.rejects_by_rule) for r in results), Counter())), sum(r.headed for r in results),
    )  # fmt: skip
    files = {name: digest for r in results for name, digest in r.files.items()}
    meta = {"source_file": source.name, "sha256": todo.sha256, "parts": len(results),
            "counts": counts.to_json(), "files": files}  # fmt: skip
    if todo.replace:
        # Else the rename into place would keep the entry that --refresh means to replace.
        store.discard_staged(staged_dir, todo.key)
    store.commit_staged(folder, staged_dir, todo.key, meta)
    return StagedCapture(source, todo.key, todo.sha256, staged_dir / todo.key, len(results), counts, False, todo.note)


def _parse(todo: Sequence[_ToParse], staged_dir: Path, workers: int, chunk_bytes: int) -> dict[str, StagedCapture]:
    """Parse the parts of every listing of `todo` on up to `workers` processes (all parts of all
    files in one pool, so that small files keep every core busy too), then stage each listing.

    Each part goes to the workers as soon as the scan finds it: the scan of a large file runs
    beside the parsing of its first parts, not before it."""
    size = sum(t.size_bytes for t in todo)
    with ExitStack() as stack:
        folders = [stack.enter_context(store.staging_folder(staged_dir, t.key)) for t in todo]
        chunks: list[list[Chunk]] = [[] for _ in todo]
        futures: list[list[Future[ChunkResult]]] = [[] for _ in todo]
        with worker_pool(workers if size >= MIN_PARALLEL_BYTES else 1) as pool:
            for t, folder, found, parts in zip(todo, folders, chunks, futures, strict=True):

                def submit(chunk: Chunk, t: _ToParse = t, folder: Path = folder, found: list[Chunk] = found,
                           parts: list[Future[ChunkResult]] = parts) -> None:  # fmt: skip
                    parts.append(pool.submit(stage_chunk, t.source, chunk, folder, len(found)))
                    found.append(chunk)

                if _each_chunk(_scan(t.source, chunk_bytes), submit)[0] != t.sha256:
                    raise _changed(t.source)
            results = [[f.result() for f in parts] for parts in futures]
        # The workers are gone before the checks below take memory of their own.
        staged = {}
        for t, folder, found, done in zip(todo, folders, chunks, results, strict=True):
            if len(done) > 1:
                for i, earlier in _cross_part_duplicates(folder, len(done)).items():
                    done[i] = stage_chunk(t.source, found[i], folder, i, earlier)
            staged[t.source.name] = _commit(t, folder, staged_dir, done)
    return staged


def stage_sources(
    sources: Sequence[Source], staged_dir: Path, refresh: bool, workers: int, chunk_bytes: int
) -> list[StagedCapture]:
    """Every listing of `sources` in the staged layer: found there, or parsed in parts of about
    `chunk_bytes` on up to `workers` processes when there is enough to parse to repay their start."""
    found = [_staged_or_to_parse(s, staged_dir, refresh) for s in sources]
    parsed = _parse([f for f in found if isinstance(f, _ToParse)], staged_dir, workers, chunk_bytes)
    return [parsed[f.source.name] if isinstance(f, _ToParse) else f for f in found]
