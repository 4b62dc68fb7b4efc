"""SQL literals for DuckDB queries built from paths and names: one quoting rule for every module."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def sql_text(text: str) -> str:
    """`text` as a SQL string literal (a quote in a path or name doubled, never closing it)."""
    return "'" + text.replace("'", "''") + "'"


def sql_files(paths: Sequence[Path]) -> str:
    """A list of paths as a DuckDB list literal (for read_parquet)."""
    return "[" + ", ".join(sql_text(str(p)) for p in paths) + "]"
