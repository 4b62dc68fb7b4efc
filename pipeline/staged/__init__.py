"""The staged layer: each raw listing parsed once, in parts across processes, into Parquet keyed on its content."""
