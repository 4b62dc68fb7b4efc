"""Prefect tasks: thin wrappers over the layers below; only I/O tasks retry, and only what a retry can cure."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from pipeline.assembled.batches import staged_rejects
from pipeline.assembled.build import build_version
from pipeline.assembled.captures import Assembled, CaptureFiles, ParentVersion
from pipeline.assembled.incremental import refresh_version
from pipeline.assembled.keys import key_failures
from pipeline.errors import PERMANENT_ERRNOS, DatasetInvalidError, StoreWriteError
from pipeline.orchestrate.progress import progress_meter
from pipeline.parse.reference import load_reference
from pipeline.published import Manifest, PublishOutcome, Store, VersionTransaction, write_version
from pipeline.published import rejected as rejected_runs
from pipeline.published.layout import REPORT_FILE
from pipeline.raw.sources import Source
from pipeline.reported.version_report import version_report_html
from pipeline.staged.capture import StagedCapture
from pipeline.staged.stage import stage_sources
from pipeline.storage import Lease, Storage
from schemas.validate import batch_failures


def transient_failure(task: Any, task_run: TaskRun, state: State[Any]) -> bool:
    """Retry condition for I/O tasks: retry an OS error that may pass, never a full or read-only
    disk (a clear error at once is better), nor a data or input error."""
    error = state.data
    if isinstance(error, StoreWriteError):
        return not error.permanent
    return isinstance(error, OSError) and error.errno not in PERMANENT_ERRNOS


# Only the I/O tasks (reading listings, writing files) retry: they can meet a passing OS error.
@task(
    name="stage-listings", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1, retry_condition_fn=transient_failure
)
def stage_listings(
    sources: list[Source], staged: Storage, cache: Path, refresh_cache: bool, workers: int, chunk_bytes: int
) -> list[StagedCapture]:
    """Parse a batch of raw listings into the staged layer (on `workers` processes), or find them
    there; the parsing's progress shown as it goes."""
    return stage_sources(sources, staged, refresh_cache, workers, chunk_bytes,
                         partial(progress_meter, "parsing", "bytes", "papers"), cache)  # fmt: skip


@task(name="assemble", cache_policy=NO_CACHE)
def assemble(
    database: Path, captures: list[CaptureFiles], parent: ParentVersion | None, whole_because: str | None
) -> Assembled:
    """Assemble the version's rows in a database file: the new captures against the parent's
    indexes, or, when `whole_because` says why, every capture."""
    if whole_because is None:
        assert parent is not None
        return refresh_version(database, captures, load_reference(), parent)
    return build_version(database, captures, load_reference(), parent, whole_because)


@task(name="check-keys", cache_policy=NO_CACHE)
def check_keys(database: Path, incremental: bool) -> None:
    """Uniqueness and foreign keys of what is written; raises DatasetInvalidError naming every bad row."""
    failures = key_failures(database, incremental)
    if len(failures):
        raise DatasetInvalidError(failures)


@task(name="publish", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1, retry_condition_fn=transient_failure)
def publish(
    store: Store,
    lease: Lease,
    parent: Manifest | None,
    built: Assembled,
    run: dict[str, Any],
    gate: Callable[[], None],
    rows: int,
    scratch: Path,
) -> PublishOutcome:
    """Write the version's new rows (validating each batch, progress shown over the `rows` to
    check) beside the parent's shared files; write its report; commit once `gate` returns (the key
    checks that ran beside the writing)."""
    parent_id = parent.id if parent is not None else None
    with (
        progress_meter("validating and publishing", "rows", "rows", rows) as advance,
        VersionTransaction(store, parent_id, lease) as tx,
    ):
        write_version(tx, parent, built, partial(_counted_check, advance))
        gate()
        # What the report reads of papers comes from the paper index: the papers' texts are not read.
        index = {name: tx.parts(files) for name, files in tx.index.items()}
        parts = {
            name: tx.parts(files) for name, files in tx.tables.items() if name != "papers" or "paper_index" not in index
        }
        parts.setdefault("papers", [])
        html = version_report_html(parts, tx.version_id, parent_id, tx.row_counts, scratch, index)
        tx.add_file(REPORT_FILE, html)
        return tx.commit(run, datetime.now(UTC))


def _counted_check(advance: Callable[[int, int], None], table: str, batch: Any, offset: int) -> Any:
    """`batch_failures`, each batch counted once checked."""
    found = batch_failures(table, batch, offset)
    advance(batch.num_rows, batch.num_rows)
    return found


@task(
    name="write-rejected", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1, retry_condition_fn=transient_failure
)
def write_rejected(store: Store, captures: list[CaptureFiles], run: dict[str, Any]) -> str:
    """Write a refused run's rejects where the operator can read them."""
    return rejected_runs.write_rejected(store, staged_rejects(captures), run)
