"""Parsing and normalising, pure: listing text → records, names, dates, categories → staged Arrow tables."""
