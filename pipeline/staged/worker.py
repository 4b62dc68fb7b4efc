"""A parsing worker's start: what every part needs, built once in the forkserver (which ends with its run)."""

from __future__ import annotations

import gc

from pipeline.parse.reference import load_reference


def warm() -> None:
    """Build the reference data in this process, then keep the garbage collector off everything
    built so far.

    Run where the forkserver imports this module (`pipeline.staged.stage.worker_pool`), so that the
    workers it forks share it. A collection in a worker writes to every object it visits, which
    would copy into each worker the pages it shares with the server: frozen objects are not
    visited (measured: ~60 MiB less for two workers). The staged tables' schemas are not built
    here but given with each part: they come from the contract's pandera models, whose import
    would cost every parser ~2 s and ~85 MB.
    """
    load_reference()
    gc.freeze()


warm()
