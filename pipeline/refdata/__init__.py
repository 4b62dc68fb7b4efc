"""Reference data shipped with the package: the arXiv taxonomy and the organisation registry (CSV)."""
