"""The flow: raw → staged → assembled → published → reported, each step handed the last one's result."""

# No `from __future__ import annotations` here: a deployment validates its parameters with a
# pydantic model that Prefect builds from the flow's evaluated annotations.
import logging
from datetime import date
from pathlib import Path

from prefect import flow

from pipeline.orchestrate import steps
from pipeline.orchestrate.decisions import file_batches, too_many_rejects, up_to_date
from pipeline.reported.summary import RunSummary

# pylatexenc logs a warning for every malformed macro it meets: one hostile abstract would flood
# the run's log (and Prefect's database) with thousands of lines; the rendering itself is kept.
logging.getLogger("pylatexenc").setLevel(logging.ERROR)


@flow(name="listings-to-parquet", log_prints=False)
def refresh(
    raw_dir: str | Path,
    out_dir: str | Path,
    as_of: date | None,
    force: bool,
    lock_timeout_s: float,
    max_reject_rate: float,
    max_removed_rate: float,
    keep: int | None,
    refresh_cache: bool,
    batch_bytes: int,
    min_tasks: int,
    workers: int,
    chunk_bytes: int,
) -> RunSummary:
    """Parse every listing under `raw_dir` and publish the dataset as a new version of `out_dir`
    (each a folder, or an ``s3://bucket/prefix`` URL).

    Every parameter is required: the defaults live at the entry points (`pipeline.cli`).

    Listings are parsed once into the staged layer (``out_dir/staged``, keyed on their content;
    `refresh_cache` parses all again), in parts of about `chunk_bytes` on `workers` processes
    per staging task. Files are grouped into staging tasks of about `batch_bytes`, at least
    `min_tasks` of them (a few per worker when a Dask runner spreads the tasks). The new captures
    are then assembled in DuckDB against the latest version's indexes (or every capture, when
    that cannot be), and the version is written: its new rows as new files beside the files it
    shares with its parent, its manifest last.

    Raises RejectRateExceededError (rejects written aside) when more than `max_reject_rate` of
    the records are rejected, RemovalRateExceededError when more than `max_removed_rate` of the
    current papers would disappear, NothingToPublishError for an empty first version,
    DatasetInvalidError when validation fails (nothing is published in these cases), and
    InputError or StoreError when inputs or store are unusable.
    """
    store = steps.open_store(out_dir)
    found = steps.find_inputs(raw_dir, as_of)
    staged = steps.stage_all(found.sources, file_batches(found.sources, batch_bytes, min_tasks), store, refresh_cache,
                             workers, chunk_bytes)  # fmt: skip
    run = steps.describe(staged, found.notices)
    if up_to_date(run, steps.latest_fingerprint(store), force, max_reject_rate):
        return steps.report_up_to_date(store, run)
    with steps.writer_lock(store, lock_timeout_s) as lease, store.storage.workspace() as scratch:
        if rejected := too_many_rejects(run, max_reject_rate):
            steps.refuse_rejects(store, rejected, run, staged, workers, chunk_bytes)
        if up_to_date(run, steps.latest_fingerprint(store), force, max_reject_rate):
            return steps.report_up_to_date(store, run)
        parent = steps.parent_manifest(store)
        built = steps.assemble_version(scratch, store, staged, parent, workers, chunk_bytes)
        steps.guard_removals(built, run, parent.id if parent is not None else None, max_removed_rate)
        outcome = steps.publish_version(store, lease, parent, built, run, scratch)
        pruned = steps.retention(store, keep, {c.key for c in staged})
    return steps.report_published(store, outcome, built, run, pruned)
