"""The assembled layer: staged captures and the parent version → a new version's tables, in DuckDB."""
