"""Paper listings → cleaned, validated, versioned Parquet tables."""

__version__ = "0.1.0"
