"""The reference data as published tables: the registry and the taxonomy, with the contract's schemas."""

from __future__ import annotations

from pipeline.parse.reference_tables import categories_table, registry_table
from schemas.tables import arrow_schema


def test_the_registry_and_the_taxonomy_as_published_tables(reference) -> None:
    registry = registry_table(reference)
    assert registry.schema.equals(arrow_schema("organizations"))
    assert registry.column("org_id").to_pylist() == list(reference.organizations)
    assert registry.column("ror_id").null_count == sum(o.ror_id is None for o in reference.organizations.values())
    categories = categories_table(reference)
    assert categories.schema.equals(arrow_schema("categories"))
    assert categories.num_rows == len(reference.categories)
    assert "NA" not in categories.column("category").to_pylist()  # codes, not suffixes
    assert categories.column("alias_of").drop_null().to_pylist() == [
        c.alias_of for c in reference.categories.values() if c.alias_of is not None
    ]
