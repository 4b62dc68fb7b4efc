"""Test helper: the flow's steps without Prefect, for fast tests of sequences of refreshes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pipeline.assembled.build import build_version
from pipeline.assembled.captures import Assembled, CaptureFiles
from pipeline.assembled.incremental import refresh_version
from pipeline.assembled.keys import key_failures
from pipeline.errors import DatasetInvalidError
from pipeline.orchestrate.decisions import run_facts
from pipeline.orchestrate.steps import assembly_choice, parent_version
from pipeline.parse.reference import load_reference
from pipeline.published import Store, VersionTransaction, write_version
from pipeline.raw.sources import code_fingerprint, find_listings
from pipeline.staged.stage import no_meter, stage_sources
from pipeline.staged.store import local_entry
from pipeline.storage import open_storage
from schemas.contract import schema_fingerprint
from schemas.validate import batch_failures


def refresh(raw: Path | str, out: Path | str, whole: bool = False, keep_database: bool = False) -> Assembled:
    """Publish the listings of `raw` as a new version of `out`, as the flow does (minus Prefect,
    the guards and retention): assembled from the new captures against latest's indexes when
    that can be, unless `whole`. Returns what assembly built."""
    store = Store.open(out)
    inputs = find_listings(open_storage(raw), None)
    staged = stage_sources(inputs.sources, store.staged, False, 1, 8 << 20, no_meter, store.cache)
    run = run_facts(staged, inputs.notices, code_fingerprint(), schema_fingerprint())
    with store.lock(30) as lease, store.storage.workspace() as scratch:
        latest = store.latest_id()
        parent = store.manifest(latest) if latest is not None else None
        index, _, reason, needed = assembly_choice(store, parent, staged, "asked to" if whole else None)
        captures = [CaptureFiles(c.source.name, c.source.capture_date, c.key,
                                 local_entry(store.staged, c.key, store.cache).files) for c in needed]  # fmt: skip
        base = parent_version(store, parent, index) if parent is not None else None
        database = scratch / "assembly.duckdb"
        if reason is None:
            assert base is not None
            built = refresh_version(database, captures, load_reference(), base)
        else:
            built = build_version(database, captures, load_reference(), base, reason)
        failures = key_failures(database, built.incremental)
        if len(failures):
            raise DatasetInvalidError(failures)
        with VersionTransaction(store, latest, lease) as tx:
            write_version(tx, parent, built, batch_failures)
            tx.commit(run.manifest, datetime.now(UTC))
    return built
