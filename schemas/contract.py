"""The contract shipped inside every version: exported schemas, data dictionary, fingerprint.

Each is a function of the models alone, which are fixed once imported: computed once per process
(each version and each Parquet file carries them).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from functools import cache
from typing import Any

from schemas.tables import FOREIGN_KEYS, MODELS, SORTED_BY, arrow_schema, published_schema


def _table_schema(table: str) -> Any:
    with warnings.catch_warnings():
        # Custom dataframe checks are exported by name only; pandera warns about it.
        warnings.simplefilter("ignore")
        return json.loads(MODELS[table].to_schema().to_json())


@cache
def contract_json() -> str:
    """Every table's pandera schema, exported as one JSON document (table → schema)."""
    schemas = {name: _table_schema(name) for name in MODELS}
    return json.dumps(schemas, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@cache
def table_contract_json(table: str) -> str:
    """One table's part of `contract_json`, compact: what its Parquet files carry in their footer."""
    return json.dumps(_table_schema(table), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


@cache
def schema_fingerprint() -> str:
    """sha256 of the Arrow types (as written: dictionaries included), the declared sort orders and
    the pandera schemas: changes whenever the contract does."""
    arrow = {name: published_schema(name).to_string() for name in MODELS}
    arrow["sorted_by"] = json.dumps(SORTED_BY, sort_keys=True)
    payload = json.dumps({"arrow": arrow, "pandera": json.loads(contract_json())}, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@cache
def data_dictionary() -> str:
    """Markdown data dictionary: table, column, type, nullable, description, constraints."""
    lines = ["# Data dictionary", "", f"Schema fingerprint: `{schema_fingerprint()}`", ""]
    for name, model in MODELS.items():
        schema = model.to_schema()
        arrow = arrow_schema(name)
        lines += [f"## {name}", "", (model.__doc__ or "").strip(), ""]
        if schema.unique:
            lines += [f"Unique together: {', '.join(schema.unique)}", ""]
        lines += ["| column | type | nullable | description | constraints |", "|---|---|---|---|---|"]
        for column_name, column in schema.columns.items():
            constraints = [c.error or c.name for c in column.checks]
            if column.unique:
                constraints.insert(0, "unique")
            fk = FOREIGN_KEYS.get((name, column_name))
            if fk:
                constraints.append(f"references {fk[0]}.{fk[1]}")
            rule = "; ".join(constraints).replace("|", "\\|")
            lines.append(
                f"| {column_name} | {arrow.field(column_name).type} | {'yes' if column.nullable else 'no'} | "
                f"{column.description or ''} | {rule} |"
            )
        lines.append("")
    return "\n".join(lines)
