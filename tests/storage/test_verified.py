"""Plain paths and verified local copies: a path DuckDB would read as a pattern is never handed to
it (a store there is refused, a file there is read through a copy under a plain name), and a copy
is only ever the object it was listed as."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.db import sql_text
from pipeline.errors import StoreError
from pipeline.storage import LocalStorage
from pipeline.storage.files import file_digest
from pipeline.storage.verified import DigestMismatchError, cache_path, plain_path, verified_copy

PATTERN_NAMES = ["out[1]", "out*", "what?", "a{b,c}", "back\\slash", "x]"]


@pytest.mark.parametrize("name", PATTERN_NAMES)
def test_a_path_duckdb_would_read_as_a_pattern_is_not_plain(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    assert not plain_path(path)
    with pytest.raises(StoreError, match="DuckDB reads as a file pattern or option") as err:
        LocalStorage(path).check_usable()  # a store (or raw folder) there is refused before a write
    assert str(path) in str(err.value)
    assert not path.exists()


def test_a_path_with_spaces_quotes_and_commas_is_plain(tmp_path: Path) -> None:
    path = tmp_path / "out (1), it's fine"
    assert plain_path(path)
    LocalStorage(path).check_usable()


def test_a_relative_path_is_judged_by_where_it_leads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    odd = tmp_path / "work[1]"
    odd.mkdir()
    monkeypatch.chdir(odd)
    assert not plain_path(Path("out"))
    with pytest.raises(StoreError, match=r"\[ \]"):
        LocalStorage(Path("out")).check_usable()


@pytest.mark.parametrize("name", PATTERN_NAMES)
def test_a_file_under_a_pattern_path_is_read_through_a_plain_copy(tmp_path: Path, name: str) -> None:
    """DuckDB given `out[1]/t.parquet` would read `out1/t.parquet` (or nothing): the verified copy
    of such a file lies under a plain name, with the same bytes."""
    storage = LocalStorage(tmp_path / name)
    source = tmp_path / "t.parquet"
    pq.write_table(pa.table({"n": [1, 2]}), source)
    listed = file_digest(source)
    storage.put("data/t.parquet", source.read_bytes())
    decoy = tmp_path / name.replace("[", "").replace("]", "")  # what `out[1]` matches as a pattern
    if decoy != storage.root:
        decoy.mkdir(exist_ok=True)
        pq.write_table(pa.table({"n": [9]}), decoy / "t.parquet")
    cache = tmp_path / "cache"
    path = verified_copy(storage, "data/t.parquet", listed["sha256"], listed["bytes"], cache)
    assert plain_path(path)
    assert cache in path.parents
    assert file_digest(path) == listed
    assert duckdb.execute(f"SELECT n FROM read_parquet({sql_text(str(path))}) ORDER BY n").fetchall() == [(1,), (2,)]


def test_a_file_in_a_plain_folder_is_read_in_place_and_only_as_listed(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "out")
    storage.put("data/t.parquet", b"listed bytes")
    listed = file_digest(storage.path("data/t.parquet"))
    cache = tmp_path / "cache"
    assert verified_copy(storage, "data/t.parquet", listed["sha256"], listed["bytes"], cache) == (
        storage.path("data/t.parquet").resolve()
    )
    storage.put("data/t.parquet", b"edited bytes")
    with pytest.raises(DigestMismatchError, match="differs from its sha256"):
        verified_copy(storage, "data/t.parquet", listed["sha256"], listed["bytes"], cache)
    with pytest.raises(FileNotFoundError):
        verified_copy(storage, "data/missing.parquet", listed["sha256"], listed["bytes"], cache)


def test_a_good_copy_in_the_cache_never_hides_a_damaged_file_on_disk(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "out")
    storage.put("data/t.parquet", b"listed bytes")
    listed = file_digest(storage.path("data/t.parquet"))
    cache = tmp_path / "cache"
    good = cache_path(cache, listed["sha256"])
    good.parent.mkdir(parents=True)
    good.write_bytes(b"listed bytes")  # another store's file of the same content, say
    storage.put("data/t.parquet", b"damaged byte")
    with pytest.raises(DigestMismatchError):
        verified_copy(storage, "data/t.parquet", listed["sha256"], listed["bytes"], cache)
