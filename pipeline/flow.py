"""Prefect wiring: per-file parse tasks, then build, validate and publish as coarse stages."""

# No `from __future__ import annotations` here: a deployment validates its parameters with a
# pydantic model that Prefect builds from the flow's evaluated annotations.
import hashlib
import json
import logging
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, NoReturn

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.futures import as_completed
from prefect.states import State
from prefect.task_runners import TaskRunner
from prefect.utilities.annotations import quote

from pipeline import __version__, store
from pipeline.reference import load_reference
from pipeline.report import REJECT_SAMPLE, RunSummary, input_warnings, mass_removal, report_markdown
from pipeline.sources import (
    Loaded,
    Source,
    code_fingerprint,
    discover_sources,
    listing_cache_key,
    load_source,
)
from pipeline.tables import CHANGE_INPUTS, ListingResult, build_tables, changes_table, rejects_table
from schemas import validate_dataset
from schemas.contract import schema_fingerprint

# pylatexenc logs a warning for every malformed macro it meets: one hostile abstract would flood
# the run's log (and Prefect's database) with thousands of lines; the rendering itself is kept.
logging.getLogger("pylatexenc").setLevel(logging.ERROR)

SUMMARY_ARTIFACT = "listings-run-summary"
REJECTS_ARTIFACT = "listings-rejects"

__all__ = [
    "NothingToPublishError",
    "RefusedError",
    "RejectRateExceededError",
    "RemovalRateExceededError",
    "RunSummary",
    "refresh",
]


class RefusedError(Exception):
    """The run's data failed a guard; nothing was published."""


class RejectRateExceededError(RefusedError):
    """More records were rejected than the run allows; nothing was published."""


class RemovalRateExceededError(RefusedError):
    """More of the current papers would disappear than the run allows; nothing was published."""


class NothingToPublishError(RefusedError):
    """A first version would hold no paper at all (empty or unusable inputs); nothing was published."""


def transient_failure(task: Any, task_run: TaskRun, state: State[Any]) -> bool:
    """Retry condition for I/O tasks: retry an OS error that may pass, never a full or read-only
    disk (a clear error at once is better), nor a data or input error."""
    error = state.data
    if isinstance(error, store.StoreWriteError):
        return not error.permanent
    return isinstance(error, OSError) and error.errno not in store.PERMANENT_ERRNOS


# --- tasks: thin wrappers; data errors become rejects, so only I/O is retried -----------------


@task(
    name="parse-listings", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1, retry_condition_fn=transient_failure
)
def parse_listing_files(sources: list[Source], staged_dir: Path | None, refresh_cache: bool) -> list[Loaded]:
    """Read and parse a batch of raw listings, or take them from the staged layer."""
    return [load_source(source, load_reference(), staged_dir, refresh_cache) for source in sources]


@task(name="build-tables", cache_policy=NO_CACHE)
def build_dataset(results: list[ListingResult]) -> dict[str, pd.DataFrame]:
    """Assemble all listings into the dataset's tables."""
    return build_tables(results, load_reference())


@task(name="validate", cache_policy=NO_CACHE)
def validate(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Validate every table and foreign key once; raises DatasetInvalidError naming every bad row."""
    return validate_dataset(tables)


@task(name="publish", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1, retry_condition_fn=transient_failure)
def publish(
    out_dir: Path, tables: dict[str, pd.DataFrame], manifest: dict[str, Any], force: bool
) -> store.PublishOutcome:
    """Write the version aside and swap `latest` (retried: writing is I/O)."""
    return store.publish_version(out_dir, tables, manifest, datetime.now(UTC), force=force)


@task(
    name="write-rejected", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1, retry_condition_fn=transient_failure
)
def write_rejected(out_dir: Path, results: list[ListingResult], manifest: dict[str, Any]) -> Path:
    """Write a refused run's rejects where the operator can read them."""
    return store.write_rejected(out_dir, rejects_table(results), manifest)


# --- plain helpers ----------------------------------------------------------------------------


def input_entries(results: list[ListingResult], sources: list[Source]) -> list[dict[str, Any]]:
    """The manifest's description of every input file."""
    origin = {s.name: s.capture_date_from for s in sources}
    return [
        {
            "path": r.source_file,
            "sha256": r.sha256,
            "bytes": r.size_bytes,
            "capture_date": r.capture_date.isoformat(),
            "capture_date_from": origin[r.source_file],
            "records": r.records,
            "rejects": len(r.rejects),
        }
        for r in results
    ]


def run_manifest(results: list[ListingResult], sources: list[Source], skipped: list[str]) -> dict[str, Any]:
    """What the version will say about its inputs, code and contract (ids and counts come later)."""
    inputs = input_entries(results, sources)
    code, schema = code_fingerprint(), schema_fingerprint()
    return {
        "pipeline_version": __version__,
        "inputs": inputs,
        "skipped_inputs": skipped,
        "records": sum(r.records for r in results),
        "rejects": sum(len(r.rejects) for r in results),
        "code_fingerprint": code,
        "schema_fingerprint": schema,
        "fingerprint": run_fingerprint(inputs, code, schema),
    }


def run_fingerprint(inputs: list[dict[str, Any]], code: str, schema: str) -> str:
    """Identity of a run's content: inputs (hash + capture date), code and contract."""
    keyed = sorted((i["path"], i["sha256"], i["capture_date"]) for i in inputs)
    payload = json.dumps({"inputs": keyed, "code": code, "schema": schema})
    return hashlib.sha256(payload.encode()).hexdigest()


def _publish_artifacts(summary: RunSummary, results: list[ListingResult]) -> None:
    """The run's summary and first rejects as Prefect artifacts; a report, so a failure to record
    them (the API went away) is a warning, never a failed run after the version is published."""
    sample = rejects_table(results).head(REJECT_SAMPLE)
    try:
        create_markdown_artifact(markdown=report_markdown(summary), key=SUMMARY_ARTIFACT, description="Run summary")
        create_table_artifact(
            table=[
                {str(k): v for k, v in row.items()} for row in sample.drop(columns=["raw"]).to_dict(orient="records")
            ],
            key=REJECTS_ARTIFACT,
            description=f"First {REJECT_SAMPLE} rejects of the run ({summary.rejects} in all)",
        )
    except Exception as err:  # any failure of the API client: the data is safe either way
        get_run_logger().warning("the run's artifacts could not be recorded in Prefect: %s", err)


def _refuse(refusal: RefusedError, latest: str | None, base: dict[str, Any], results: list[ListingResult]) -> NoReturn:
    """Report a refused run (nothing published) as the run's artifacts, then fail with `refusal`."""
    summary = RunSummary(None, None, False, latest, row_counts={}, refused=str(refusal), **base)
    _publish_artifacts(summary, results)
    raise refusal


def _pruned_versions(out_dir: Path, keep: int | None) -> list[str]:
    """Versions removed by `--keep`; a failure to remove one is a warning (the new version is
    already published), not a failed run."""
    if keep is None:
        return []
    try:
        return store.prune_versions(out_dir, keep)
    except store.StoreError as err:
        get_run_logger().warning("could not prune old versions (--keep %d): %s", keep, err)
        return []


def file_batches(sources: list[Source], batch_bytes: int, min_batches: int = 1) -> list[list[Source]]:
    """Consecutive groups of listings of about `batch_bytes` each (a file is never split), smaller
    when needed to make at least `min_batches` groups, so that every worker gets some."""
    total = sum(s.size_bytes for s in sources)
    target = max(min(batch_bytes, -(-total // max(min_batches, 1))), 1)
    batches: list[list[Source]] = []
    size = target
    for source in sources:
        if size >= target:
            batches.append([])
            size = 0
        batches[-1].append(source)
        size += source.size_bytes
    return batches


def task_runner(workers: int | None, dask_address: str | None) -> TaskRunner[Any] | None:
    """A Dask task runner for the per-file tasks (an existing cluster, or a local one of N
    worker processes), or None for Prefect's default thread pool on this machine."""
    if dask_address is None and workers is None:
        return None
    from prefect_dask import DaskTaskRunner

    if dask_address is not None:
        return DaskTaskRunner(address=dask_address)
    assert workers is not None
    return DaskTaskRunner(cluster_kwargs=local_cluster_kwargs(workers))


def local_cluster_kwargs(workers: int) -> dict[str, Any]:
    """A local Dask cluster of `workers` processes that listens on 127.0.0.1 only: a dashboard
    shows task data to anyone who can reach it. The scheduler's HTTP endpoints take a free port
    (with no address they still try 8787, and warn on stderr when another cluster holds it)."""
    return {
        "n_workers": workers,
        "threads_per_worker": 1,
        "processes": True,
        "host": "127.0.0.1",
        "dashboard_address": "127.0.0.1:0",
        "worker_dashboard_address": None,
    }


def _parse_all(
    sources: list[Source], batches: list[list[Source]], staged_dir: Path, refresh_cache: bool
) -> dict[str, Loaded]:
    """Every listing parsed (or taken from the staged layer), by name, with progress per file."""
    logger = get_run_logger()
    logger.info("%d listing(s) in %d parse task(s)", len(sources), len(batches))
    futures = parse_listing_files.map(batches, staged_dir=staged_dir, refresh_cache=refresh_cache)
    by_name: dict[str, Loaded] = {}
    for future in as_completed(futures):
        for loaded in future.result():
            result = loaded.result
            by_name[result.source_file] = loaded
            if loaded.note:
                logger.warning(loaded.note)
            logger.info(
                "[%d/%d] %s: %d records, %d rejects (%s)",
                len(by_name), len(sources), result.source_file, result.records, len(result.rejects),
                "from cache" if loaded.from_cache else "parsed",
            )  # fmt: skip
    return by_name


# --- the flow ---------------------------------------------------------------------------------


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
) -> RunSummary:
    """Parse every listing under `raw_dir` and publish the dataset as a new version of `out_dir`.

    Every parameter is required: the defaults live at the entry points (`pipeline.__main__`).

    Parsed listings are staged under ``out_dir/staged`` on their content; `refresh_cache` re-parses
    all. Files are parsed in tasks of about `batch_bytes` each (a task run costs ~25 ms, so one
    per small file would cost more than the parsing), and in at least `min_tasks` tasks (set it to
    a few per worker when a Dask runner is used).

    Raises RejectRateExceededError (rejects written aside) when more than `max_reject_rate` of
    the records are rejected, RemovalRateExceededError when more than `max_removed_rate` of the
    current papers would disappear, DatasetInvalidError when validation fails (nothing is
    published in these cases), and InputError or StoreError when inputs or store are unusable.
    """
    logger = get_run_logger()
    store.check_writable(out_dir)
    for leftover in store.clean_incomplete(out_dir):
        logger.info("removed %s, left by an interrupted run", leftover)
    if store.remove_legacy_cache(out_dir):
        logger.info("deleted the pickle cache of an earlier release (%s), unread", out_dir / store.LEGACY_CACHE)
    found = discover_sources(raw_dir, as_of)
    sources = found.sources
    staged_dir = out_dir / store.STAGED
    by_name = _parse_all(sources, file_batches(sources, batch_bytes, min_tasks), staged_dir, refresh_cache)
    results = [by_name[s.name].result for s in sources]
    warnings = [str(notice) for notice in found.notices] + input_warnings(results)
    for warning in warnings:
        logger.warning(warning)
    manifest = run_manifest(results, sources, [str(n) for n in found.notices if n.action == "skipped"])
    records, rejects = manifest["records"], manifest["rejects"]
    base = {
        "records": records,
        "rejects": rejects,
        "rejects_by_rule": dict(Counter(j.rule for r in results for j in r.rejects).most_common()),
        "inputs": manifest["inputs"],
        "parsed_files": [s.name for s in sources if not by_name[s.name].from_cache],
        "cached_files": [s.name for s in sources if by_name[s.name].from_cache],
        "warnings": warnings,
    }

    if records and rejects / records > max_reject_rate:
        folder = write_rejected(out_dir, quote(results), manifest)  # type: ignore[call-overload]
        reason = (
            f"{rejects} of {records} records rejected ({rejects / records:.1%} > {max_reject_rate:.1%}); "
            f"nothing was published. The rejects are in {folder / 'rejects.csv'}"
        )
        _refuse(RejectRateExceededError(reason), store.latest_id(out_dir), base, results)

    current = store.latest_id(out_dir)
    if not force and current and store.fingerprint(out_dir, current) == manifest["fingerprint"]:
        logger.info("up to date: version %s already has these inputs and code", current)
        path = store.version_path(out_dir, current)
        summary = RunSummary(current, path, False, current, row_counts=store.read_manifest(path)["row_counts"], **base)
        _publish_artifacts(summary, results)
        return summary

    logger.info("building tables from %d listing(s)", len(results))
    # quote(): Prefect would otherwise walk every object of the inputs looking for futures
    # (about 5 s per 30k papers); these inputs hold none.
    tables = build_dataset(quote(results))  # type: ignore[call-overload]

    def waiting(holder: str) -> None:
        logger.info("waiting for the writer lock on %s (held by %s)", out_dir, holder)

    with store.writer_lock(out_dir, lock_timeout_s, on_wait=waiting):
        parent_id = store.latest_id(out_dir)
        parent = store.read_tables(store.version_path(out_dir, parent_id), CHANGE_INPUTS) if parent_id else None
        tables["changes"] = changes_table(parent, tables)
        too_many_removed = mass_removal(parent, tables["changes"], manifest["inputs"], max_removed_rate)
        if too_many_removed:
            _refuse(RemovalRateExceededError(too_many_removed), parent_id, base, results)
        if parent is None and not len(tables["papers"]):
            nothing = "no input holds a single usable record: a first version without papers is not published"
            _refuse(NothingToPublishError(nothing), parent_id, base, results)
        logger.info("validating %d tables", len(tables))
        validated = validate(quote(tables))  # type: ignore[call-overload]
        outcome = publish(out_dir, quote(validated), manifest, force)  # type: ignore[call-overload]
        pruned = _pruned_versions(out_dir, keep)
        code = code_fingerprint()
        store.prune_staged(
            staged_dir, {listing_cache_key(s, r.sha256, code) for s, r in zip(sources, results, strict=True)}
        )
    if pruned:
        logger.info("pruned versions %s (--keep %d)", ", ".join(pruned), keep)
    logger.info(
        "%s version %s at %s", "published" if outcome.published else "up to date:", outcome.version_id, outcome.path
    )
    summary = RunSummary(
        outcome.version_id,
        outcome.path,
        outcome.published,
        outcome.parent_id,
        row_counts={name: len(frame) for name, frame in tables.items()},
        changes=dict(Counter(tables["changes"]["change"])) if outcome.published else {},
        pruned=pruned,
        **base,
    )
    _publish_artifacts(summary, results)
    return summary
