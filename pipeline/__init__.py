"""Paper listings → cleaned, validated, versioned Parquet tables.

Reading a published version: `load(table, version="latest", engine="pandas", out="data/processed")`
and `load_duckdb(version="latest", out=...)` (see `pipeline.consume.read`).
"""

from typing import Any

from pipeline.settings import VERSION

__version__ = VERSION

__all__ = ["__version__", "load", "load_duckdb"]


def __getattr__(name: str) -> Any:
    # The readers load pandas and DuckDB: a process that only parses (the parsers' server, which
    # must tie itself to its run at once) does not wait for them.
    if name in ("load", "load_duckdb"):
        from pipeline.consume import read

        return getattr(read, name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
