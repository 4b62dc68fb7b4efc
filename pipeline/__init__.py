"""Paper listings → cleaned, validated, versioned Parquet tables.

Reading a published version: `load(table, version="latest", engine="pandas", out="data/processed")`
and `load_duckdb(version="latest", out=...)` (see `pipeline.consume.read`).
"""

from pipeline.consume.read import load, load_duckdb
from pipeline.settings import VERSION

__version__ = VERSION

__all__ = ["__version__", "load", "load_duckdb"]
