"""The flow: raw → staged → assembled → published → reported, each step handed the last one's result."""

# No `from __future__ import annotations` here: a deployment validates its parameters with a
# pydantic model that Prefect builds from the flow's evaluated annotations.
import logging
from datetime import date
from functools import partial
from pathlib import Path

from prefect import flow

from pipeline.orchestrate import steps
from pipeline.orchestrate.decisions import file_batches, too_many_rejects, up_to_date
from pipeline.published.cleanup import scratch_folder
from pipeline.published.layout import STAGED
from pipeline.published.versions import fingerprint, latest_id
from pipeline.raw.sources import discover_sources
from pipeline.reported.summary import RunSummary
from pipeline.storage.lock import writer_lock

# pylatexenc logs a warning for every malformed macro it meets: one hostile abstract would flood
# the run's log (and Prefect's database) with thousands of lines; the rendering itself is kept.
logging.getLogger("pylatexenc").setLevel(logging.ERROR)


@flow(name="listings-to-parquet", log_prints=False)
def refresh(
    raw_dir: Path,
    out_dir: Path,
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
    """Parse every listing under `raw_dir` and publish the dataset as a new version of `out_dir`.

    Every parameter is required: the defaults live at the entry points (`pipeline.cli`).

    Listings are parsed once into the staged layer (``out_dir/staged``, keyed on their content;
    `refresh_cache` parses all again), in parts of about `chunk_bytes` on `workers` processes
    per staging task. Files are grouped into staging tasks of about `batch_bytes`, at least
    `min_tasks` of them (a few per worker when a Dask runner spreads the tasks). The staged
    captures are then assembled in DuckDB and the version is streamed to Parquet.

    Raises RejectRateExceededError (rejects written aside) when more than `max_reject_rate` of
    the records are rejected, RemovalRateExceededError when more than `max_removed_rate` of the
    current papers would disappear, NothingToPublishError for an empty first version,
    DatasetInvalidError when validation fails (nothing is published in these cases), and
    InputError or StoreError when inputs or store are unusable.
    """
    steps.prepare_output(out_dir)
    found = discover_sources(raw_dir, as_of)
    staged = steps.stage_all(found.sources, file_batches(found.sources, batch_bytes, min_tasks), out_dir / STAGED,
                             refresh_cache, workers, chunk_bytes)  # fmt: skip
    run = steps.describe(staged, found.notices)
    if up_to_date(run, fingerprint(out_dir, latest_id(out_dir)), force, max_reject_rate):
        return steps.report_up_to_date(out_dir, run, staged)
    with writer_lock(out_dir, lock_timeout_s, partial(steps.log_waiting, out_dir)), scratch_folder(out_dir) as scratch:
        staged = steps.restage_pruned(staged, out_dir / STAGED, workers, chunk_bytes)
        if rejected := too_many_rejects(run, max_reject_rate):
            steps.refuse_rejects(out_dir, rejected, run, staged)
        parent_id = latest_id(out_dir)
        if up_to_date(run, fingerprint(out_dir, parent_id), force, max_reject_rate):
            return steps.report_up_to_date(out_dir, run, staged)
        built, parent = steps.assemble_version(scratch, staged, out_dir, parent_id)
        steps.guard_removals(built, run, parent_id, max_removed_rate, staged)
        outcome = steps.publish_version(out_dir, parent_id, parent, built, run, staged)
        pruned = steps.pruned_versions(out_dir, keep, {c.key for c in staged})
    return steps.report_published(outcome, built, run, staged, pruned)
