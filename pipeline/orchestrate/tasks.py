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

from pipeline.assembled.batches import staged_rejects, table_batches
from pipeline.assembled.build import build_version
from pipeline.assembled.captures import Assembled, CaptureFiles, ParentVersion
from pipeline.assembled.index import index_metadata, index_schema
from pipeline.assembled.keys import key_failures
from pipeline.errors import PERMANENT_ERRNOS, DatasetInvalidError, StoreWriteError
from pipeline.orchestrate.progress import progress_meter
from pipeline.parse.reference import load_reference
from pipeline.published import rejected
from pipeline.published.index import IndexSource
from pipeline.published.layout import REPORT_FILE
from pipeline.published.remote import RemoteStore
from pipeline.published.splice import KeptRows
from pipeline.published.transaction import PublishOutcome, VersionTransaction
from pipeline.raw.sources import Source
from pipeline.reported.version_report import version_report_html
from pipeline.staged.capture import StagedCapture
from pipeline.staged.remote import StagedPlace, stage_at
from pipeline.storage.lease import Lease
from schemas import MODELS
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
    sources: list[Source], place: StagedPlace, refresh_cache: bool, workers: int, chunk_bytes: int
) -> list[StagedCapture]:
    """Parse a batch of raw listings into the staged layer (on `workers` processes), or find them
    there; the parsing's progress shown as it goes."""
    return stage_at(sources, place, refresh_cache, workers, chunk_bytes,
                    partial(progress_meter, "parsing", "bytes", "papers"))  # fmt: skip


@task(name="assemble", cache_policy=NO_CACHE)
def assemble(database: Path, captures: list[CaptureFiles], parent: ParentVersion | None) -> Assembled:
    """Assemble the staged captures into the version's tables, in a database file."""
    return build_version(database, captures, load_reference(), parent)


@task(name="check-keys", cache_policy=NO_CACHE)
def check_keys(database: Path) -> None:
    """Uniqueness and foreign keys over whole tables; raises DatasetInvalidError naming every bad row."""
    failures = key_failures(database)
    if len(failures):
        raise DatasetInvalidError(failures)


@task(name="publish", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1, retry_condition_fn=transient_failure)
def publish(
    out_dir: Path,
    parent_id: str | None,
    database: Path,
    run: dict[str, Any],
    captures: list[CaptureFiles],
    kept: KeptRows | None,
    gate: Callable[[], None],
    remote: RemoteStore | None,
    lease: Lease | None,
    rows: int,
) -> PublishOutcome:
    """Stream the assembled tables into a new version, validating each batch (progress shown over
    the `rows` to check); write its report; commit once `gate` returns (the key checks that ran
    beside the writing)."""
    index = IndexSource(partial(table_batches, database, "paper_index"), index_schema(),
                        partial(index_metadata, captures))  # fmt: skip
    with (
        progress_meter("validating and publishing", "rows", "rows", rows) as advance,
        VersionTransaction(out_dir, parent_id, remote, lease) as tx,
    ):
        tables = {name: partial(table_batches, database, name) for name in MODELS}
        tx.write_tables(tables, partial(_counted_check, advance), kept, index)
        gate()
        tx.add_file(REPORT_FILE, version_report_html(tx.table_files(), tx.version_id, parent_id, tx.folder))
        return tx.commit(run, datetime.now(UTC))


def _counted_check(advance: Callable[[int, int], None], table: str, batch: Any, offset: int) -> Any:
    """`batch_failures`, each batch counted once checked."""
    found = batch_failures(table, batch, offset)
    advance(batch.num_rows, batch.num_rows)
    return found


@task(
    name="write-rejected", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1, retry_condition_fn=transient_failure
)
def write_rejected(out_dir: Path, captures: list[CaptureFiles], run: dict[str, Any]) -> Path:
    """Write a refused run's rejects where the operator can read them."""
    return rejected.write_rejected(out_dir, staged_rejects(captures), run)
