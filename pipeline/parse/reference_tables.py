"""The reference data as published tables: the organisation registry and the arXiv taxonomy."""

from __future__ import annotations

import pyarrow as pa

from pipeline.parse.reference import Reference
from schemas.tables import arrow_schema


def registry_table(reference: Reference) -> pa.Table:
    """The organisation registry as rows of the published ``organizations`` table."""
    rows = [{"org_id": o.org_id, "name": o.name, "ror_id": o.ror_id} for o in reference.organizations.values()]
    return pa.Table.from_pylist(rows, schema=arrow_schema("organizations"))


def categories_table(reference: Reference) -> pa.Table:
    """The arXiv taxonomy as the published ``categories`` table."""
    rows = [
        {"category": c.code, "name": c.name, "archive": c.archive, "group": c.group, "alias_of": c.alias_of}
        for c in reference.categories.values()
    ]
    return pa.Table.from_pylist(rows, schema=arrow_schema("categories"))
