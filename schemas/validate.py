"""Validate a whole dataset once: every table against its model, then the foreign keys."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import pandera.pandas as pa
import pyarrow

from schemas.tables import FOREIGN_KEYS, MODELS

REPORT_COLUMNS = ["table", "column", "check", "row", "failure_case"]


class DatasetInvalidError(Exception):
    """The dataset does not conform; `report` names every failing table, column, check and row."""

    def __init__(self, report: pd.DataFrame) -> None:
        self.report = report
        super().__init__(format_report(report))


def format_report(report: pd.DataFrame, limit: int = 50) -> str:
    """A readable summary: failures per table/column/check, then the first `limit` rows."""
    counts = report.groupby(["table", "column", "check"], dropna=False).size().reset_index(name="rows")
    lines = [f"{len(report)} failure(s):"]
    for r in counts.itertuples(index=False):
        where = f"{r.table}.{r.column}" if isinstance(r.column, str) else str(r.table)
        lines.append(f"  {where}: {r.check} ({r.rows} row(s))")
    shown = report.head(limit).to_string(index=False)
    return "\n".join([*lines, shown] + ([f"... {len(report) - limit} more"] if len(report) > limit else []))


def _schema_failures(table: str, error: pa.errors.SchemaErrors) -> pd.DataFrame:
    cases = error.failure_cases
    return pd.DataFrame(
        {
            "table": table,
            "column": cases["column"].astype("string"),
            "check": cases["check"].astype("string"),
            "row": cases["index"].astype("string"),
            "failure_case": cases["failure_case"].astype("string"),
        }
    )


def batch_failures(table: str, batch: pyarrow.RecordBatch, offset: int) -> pd.DataFrame:
    """The failures of one batch of a table against its model (every bad row, numbered in the
    whole table from `offset`); empty when the batch conforms. Rules over whole tables
    (uniqueness, foreign keys) are checked apart, where the whole table is at hand."""
    frame = batch.to_pandas(date_as_object=True)
    frame.index += offset
    try:
        MODELS[table].validate(frame, lazy=True)
    except pa.errors.SchemaErrors as error:
        return _schema_failures(table, error)
    return pd.DataFrame(columns=REPORT_COLUMNS)


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
            failures.append(_schema_failures(name, error))
    failures.append(foreign_key_failures(tables))
    report = pd.concat(failures, ignore_index=True) if failures else pd.DataFrame(columns=REPORT_COLUMNS)
    if len(report):
        raise DatasetInvalidError(report.reset_index(drop=True))
    return validated
