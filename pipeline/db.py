"""The one DuckDB connection factory: memory limit, threads and spill folder; SQL literals; DuckDB's errors as ours."""

from __future__ import annotations

import contextlib
import errno
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb

from pipeline.errors import OutOfMemoryError, StoreWriteError, UnreadableInputError
from pipeline.settings import READER_MEMORY


def sql_text(text: str) -> str:
    """`text` as a SQL string literal (a quote in a path or name doubled, never closing it)."""
    return "'" + text.replace("'", "''") + "'"


def sql_files(paths: Sequence[Path]) -> str:
    """A list of paths as a DuckDB list literal (for read_parquet)."""
    return "[" + ", ".join(sql_text(str(p)) for p in paths) + "]"


def new_connection(
    database: Path | None = None,
    *,
    memory_limit: str | None = READER_MEMORY,
    threads: int | None = None,
    spill: Path | None = None,
    read_only: bool = False,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection to `database` (in memory when None), within `memory_limit` (DuckDB's
    own default when None), spilling into `spill` beyond it. `threads`: DuckDB's default when
    None (a streaming reader wants 1: more threads only buffer ahead)."""
    config: dict[str, str | bool | int | float | list[str]] = {}
    if memory_limit is not None:
        config["memory_limit"] = memory_limit
    if threads is not None:
        config["threads"] = threads
    if spill is not None:
        config["temp_directory"] = str(spill)
    where = str(database) if database is not None else ":memory:"
    connection = duckdb.connect(where, read_only=read_only, config=config)
    # DuckDB draws its own bar on stdout for a query of over 2 s: in a log, lines of carriage
    # returns beside the run's progress (`pipeline.orchestrate.progress`) that --quiet would not
    # hush. A connection's setting, not a database's: it cannot be given in `config`.
    connection.execute("SET enable_progress_bar = false")
    return connection


@contextmanager
def connect(
    database: Path | None = None,
    *,
    memory_limit: str | None = READER_MEMORY,
    threads: int | None = None,
    spill: Path | None = None,
    read_only: bool = False,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """`new_connection` for the block, closed on the way out. A connection that may write and is
    given no `spill` folder spills into a temporary folder of its own, removed with it."""
    with contextlib.ExitStack() as stack:
        if spill is None and not read_only:
            spill = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pipeline-duckdb-")))
        connection = new_connection(database, memory_limit=memory_limit, threads=threads, spill=spill,
                                    read_only=read_only)  # fmt: skip
        stack.callback(connection.close)
        yield connection


# What DuckDB says (in its message only) when the disk refuses a write.
_WRITE_ERRNOS = (("No space left", errno.ENOSPC), ("Read-only file system", errno.EROFS),
                 ("Permission denied", errno.EACCES), ("Disk quota", errno.EDQUOT))  # fmt: skip


@contextmanager
def reading(memory_setting: str | None = None) -> Iterator[None]:
    """DuckDB's errors as the store's: a file's values it cannot read (invalid UTF-8, say) are
    damage; a database or spill file it cannot write is a write error with its cause (a full or
    read-only disk: exit 2, one line); running out of its memory limit is one line too, naming
    `memory_setting` when the operator can raise that limit; never a crash."""
    try:
        yield
    except duckdb.OutOfMemoryException as err:
        cause = str(err).strip().splitlines()[0][:300]
        remedy = f"; give it more with {memory_setting}" if memory_setting else ""
        raise OutOfMemoryError(f"DuckDB ran out of its memory limit ({cause}){remedy}") from None
    except duckdb.InvalidInputException as err:
        raise UnreadableInputError(f"a Parquet file cannot be read: {str(err)[:300]}") from None
    except (duckdb.IOException, duckdb.TransactionException) as err:
        code = next((number for text, number in _WRITE_ERRNOS if text in str(err)), None)
        raise StoreWriteError(f"assembly could not write its working files: {str(err)[:300]}", code) from None
