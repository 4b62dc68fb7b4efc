"""Whole-dataset validation of pandas frames, for tests: every table against its model, then the foreign keys.

The pipeline itself checks batch by batch (`schemas.validate.batch_failures`) and keys in DuckDB
(`pipeline.assembled.keys`); this is the plain reading of the same contract that tests compare with.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import pandera.pandas as pa

from pipeline.errors import DatasetInvalidError
from schemas.tables import FOREIGN_KEYS, MODELS
from schemas.validate import REPORT_COLUMNS, schema_failures


def foreign_key_failures(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Rows whose foreign key has no parent row, one report row each."""
    frames = []
    for (child, column), (parent, parent_column) in FOREIGN_KEYS.items():
        if child not in tables or parent not in tables:
            continue
        values = tables[child][column]
        missing = values[~values.isin(tables[parent][parent_column])]
        if len(missing):
            frames.append(
                pd.DataFrame(
                    {
                        "table": child,
                        "column": column,
                        "check": f"foreign_key({parent}.{parent_column})",
                        "row": missing.index.astype("string"),
                        "failure_case": missing.astype("string"),
                    }
                )
            )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=REPORT_COLUMNS)


def validate_dataset(tables: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Validate every table (lazily, so all failures are collected) and the foreign keys.

    Returns the validated (coerced) tables; raises DatasetInvalidError naming every bad row.
    """
    missing_tables = sorted(set(MODELS) - set(tables))
    failures = []
    if missing_tables:
        failures.append(
            pd.DataFrame(
                {"table": missing_tables, "column": None, "check": "table_present", "row": None, "failure_case": None}
            )
        )
    validated: dict[str, pd.DataFrame] = {}
    for name, frame in tables.items():
        if name not in MODELS:
            failures.append(
                pd.DataFrame(
                    [{"table": name, "column": None, "check": "known_table", "row": None, "failure_case": None}]
                )
            )
            continue
        try:
            validated[name] = MODELS[name].validate(frame, lazy=True)
        except pa.errors.SchemaErrors as error:
            failures.append(schema_failures(name, error))
    failures.append(foreign_key_failures(tables))
    report = pd.concat(failures, ignore_index=True) if failures else pd.DataFrame(columns=REPORT_COLUMNS)
    if len(report):
        raise DatasetInvalidError(report.reset_index(drop=True))
    return validated
