"""A parsing worker's start: what every part needs, built once in the forkserver (which ends with its run)."""

from __future__ import annotations

from pipeline.parse.reference import load_reference
from pipeline.parse.tables import STAGED_TABLES, staged_schema


def warm() -> None:
    """Build the reference data and the staged tables' schemas in this process.

    Run where the forkserver imports this module (`pipeline.staged.stage.worker_pool`), so that the
    workers it forks share them: each worker would otherwise build them at its first part, ~2 s
    and ~18 MB of its own (a pandera model imports dask's typing when dask is installed).
    """
    load_reference()
    for table in STAGED_TABLES:
        staged_schema(table)


warm()
