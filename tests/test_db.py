"""The DuckDB connection factory and SQL literals: quoting, connections closed and spilling into
their own temporary folder, DuckDB's write failures as the store's. (Which paths DuckDB reads as
themselves: tests/storage/test_verified.py.)"""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.db import connect, reading, sql_files, sql_text
from pipeline.errors import EXIT_UNUSABLE, OutOfMemoryError, StoreWriteError, UnreadableInputError

HOSTILE_TEXTS = ["plain", "it's", "''", "'); DROP TABLE papers; --", "back\\slash", "a\nb", "é ✓", ""]


def test_sql_text_quotes_a_quote_by_doubling_it() -> None:
    assert sql_text("it's") == "'it''s'"
    assert sql_text("") == "''"


@pytest.mark.parametrize("text", HOSTILE_TEXTS)
def test_sql_text_reads_back_as_the_text_itself(text: str) -> None:
    assert duckdb.execute(f"SELECT {sql_text(text)}").fetchone() == (text,)


def test_sql_files_is_a_list_literal_duckdb_reads_the_files_of(tmp_path: Path) -> None:
    paths = [tmp_path / "one.parquet", tmp_path / "it's two.parquet"]
    for n, path in enumerate(paths):
        pq.write_table(pa.table({"n": [n]}), path)
    assert sql_files(paths) == f"['{paths[0]}', '{tmp_path}/it''s two.parquet']"
    rows = duckdb.execute(f"SELECT n FROM read_parquet({sql_files(paths)}) ORDER BY n").fetchall()
    assert rows == [(0,), (1,)]
    assert sql_files([]) == "[]"


def test_connect_closes_the_connection_and_removes_its_spill_folder() -> None:
    with connect() as con:
        (spill,) = con.execute("SELECT current_setting('temp_directory')").fetchone() or (None,)
        folder = Path(str(spill))
        assert folder.name.startswith("pipeline-duckdb-")
        assert folder.is_dir()
        with connect() as other:  # each connection spills into a folder of its own
            assert other.execute("SELECT current_setting('temp_directory')").fetchone() != (spill,)
    assert not folder.exists()
    with pytest.raises(duckdb.ConnectionException):
        con.execute("SELECT 1")


def test_a_connection_draws_no_progress_bar_of_its_own() -> None:
    # DuckDB's bar goes to stdout past 2 s: a run's log showed it beside the run's own progress.
    # In a plain interpreter, as the CLI runs (under pytest DuckDB starts with it off).
    probe = (
        "from pipeline.db import connect\nwith connect() as con:\n"
        "    print(con.execute(\"SELECT current_setting('enable_progress_bar')\").fetchone()[0])"
    )
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert shown.stdout.strip() == "False"


def test_connect_spills_where_it_is_told_and_leaves_that_folder_alone(tmp_path: Path) -> None:
    spill = tmp_path / "spill"
    spill.mkdir()
    (spill / "keep.txt").write_text("mine", encoding="utf-8")
    with connect(spill=spill) as con:
        assert con.execute("SELECT current_setting('temp_directory')").fetchone() == (str(spill),)
    assert (spill / "keep.txt").read_text(encoding="utf-8") == "mine"


def test_connect_read_only_writes_no_spill_folder(tmp_path: Path) -> None:
    database = tmp_path / "db.duckdb"
    with connect(database) as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS n")
    with connect(database, read_only=True) as con:
        (spill,) = con.execute("SELECT current_setting('temp_directory')").fetchone() or (None,)
        assert not Path(str(spill)).name.startswith("pipeline-duckdb-")
        assert con.execute("SELECT n FROM t").fetchall() == [(1,)]
        with pytest.raises(duckdb.Error):
            con.execute("CREATE TABLE u AS SELECT 2 AS n")


def test_duckdb_write_failures_are_store_write_errors() -> None:
    with pytest.raises(StoreWriteError, match="No space left") as err, reading():
        raise duckdb.IOException('Could not write file "x.duckdb.wal": No space left on device')
    assert err.value.permanent


def test_a_write_failure_of_unknown_cause_may_be_retried() -> None:
    with pytest.raises(StoreWriteError, match="Input/output error") as err, reading():
        raise duckdb.IOException('Could not write file "x.duckdb.wal": Input/output error')
    assert (err.value.errno, err.value.permanent) == (None, False)
    with pytest.raises(StoreWriteError, match="Read-only file system") as err, reading():
        raise duckdb.IOException('Could not write file "x.duckdb.wal": Read-only file system')
    assert (err.value.errno, err.value.permanent) == (errno.EROFS, True)


def test_values_duckdb_cannot_read_are_unreadable_input(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"title": pa.array([b"\xff"], pa.binary()).view(pa.string())}), path)
    with pytest.raises(UnreadableInputError, match="a Parquet file cannot be read"), reading():
        duckdb.execute(f"SELECT * FROM read_parquet({sql_text(str(path))})").fetchall()


def test_running_out_of_the_memory_limit_is_one_line_that_names_the_setting_to_raise(tmp_path: Path) -> None:
    with (
        pytest.raises(OutOfMemoryError) as raised,
        reading("PIPELINE_SOME_MEMORY"),
        connect(tmp_path / "x.duckdb", memory_limit="64KB") as con,
    ):
        con.execute("CREATE TABLE t AS SELECT range AS n, repeat('x', 100) AS s FROM range(100000)")
    assert "\n" not in raised.value.message
    assert raised.value.message.startswith("DuckDB ran out of its memory limit (Out of Memory Error: ")
    assert raised.value.message.endswith("; give it more with PIPELINE_SOME_MEMORY")
    assert raised.value.exit_code == EXIT_UNUSABLE
