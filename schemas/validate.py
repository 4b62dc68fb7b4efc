"""Checking rows against the contract: a batch of a table against its model, and the report format of every failure."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pandera.pandas as pa
import pyarrow

from schemas.tables import MODELS

REPORT_COLUMNS = ["table", "column", "check", "row", "failure_case"]


def report_row(table: str, check: str, case: object = None, column: str | None = None) -> dict[str, Any]:
    """One failure in the report format, for a check that names no row (a file, a footer, a count)."""
    return {"table": table, "column": column, "check": check, "row": None, "failure_case": case}


def format_report(report: pd.DataFrame, limit: int = 50) -> str:
    """A readable summary: failures per table/column/check, then the first `limit` rows."""
    counts = report.groupby(["table", "column", "check"], dropna=False).size().reset_index(name="rows")
    lines = [f"{len(report)} failure(s):"]
    for r in counts.itertuples(index=False):
        where = f"{r.table}.{r.column}" if isinstance(r.column, str) else str(r.table)
        lines.append(f"  {where}: {r.check} ({r.rows} row(s))")
    shown = report.head(limit).to_string(index=False)
    return "\n".join([*lines, shown] + ([f"... {len(report) - limit} more"] if len(report) > limit else []))


def schema_failures(table: str, error: pa.errors.SchemaErrors) -> pd.DataFrame:
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
        return schema_failures(table, error)
    return pd.DataFrame(columns=REPORT_COLUMNS)
