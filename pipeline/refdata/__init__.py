"""Reference data shipped with the package (CSV): the arXiv taxonomy, the organisation registry, given names."""
