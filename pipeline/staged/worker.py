"""A parsing worker's start: what every part needs, built once in the forkserver (which ends with its run)."""

from __future__ import annotations

from pipeline.parse.reference import load_reference


def warm() -> None:
    """Build the reference data in this process.

    Run where the forkserver imports this module (`pipeline.staged.stage.worker_pool`), so that the
    workers it forks share it. The staged tables' schemas are not built here but given with each
    part: they come from the contract's pandera models, whose import would cost every parser
    ~2 s and ~85 MB. (`gc.freeze()` here saved memory, but a frozen heap makes a worker's full
    collections more frequent as its caches grow: parsing 1M papers took ~9% longer.)
    """
    load_reference()


warm()
