"""Paper listings → cleaned, validated, versioned Parquet tables.

Reading a published version: `load(table, version="latest", engine="pandas", out="data/processed")`
and `load_duckdb(version="latest", out=...)` (see `pipeline.read`).
"""

__version__ = "0.1.0"

from pipeline.read import load, load_duckdb

__all__ = ["__version__", "load", "load_duckdb"]
