"""Benchmarks and the synthetic-listing generator (not part of the installed package)."""
