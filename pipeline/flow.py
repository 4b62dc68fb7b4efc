"""Prefect wiring: per-file parse tasks, then build, validate and publish as coarse stages."""

# No `from __future__ import annotations` here: a deployment validates its parameters with a
# pydantic model that Prefect builds from the flow's evaluated annotations.
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.futures import PrefectFuture, as_completed
from prefect.states import State
from prefect.task_runners import TaskRunner

from pipeline import __version__, store
from pipeline import assemble as assemble_module
from pipeline.assemble import (
    Assembled,
    CaptureFiles,
    ParentVersion,
    build_version,
    index_metadata,
    index_schema,
    key_failures,
    papers_batches,
    staged_rejects,
    table_batches,
)
from pipeline.reference import load_reference
from pipeline.report import REJECT_SAMPLE, CaptureCounts, RunSummary, input_warnings, mass_removal, report_markdown
from pipeline.sources import Source, code_fingerprint, discover_sources
from pipeline.staging import StagedCapture, stage_sources
from pipeline.tables import CHANGE_INPUTS, STAGED_TABLES
from pipeline.version_report import REPORT_FILE
from schemas import MODELS, DatasetInvalidError
from schemas.contract import schema_fingerprint
from schemas.validate import batch_failures

# pylatexenc logs a warning for every malformed macro it meets: one hostile abstract would flood
# the run's log (and Prefect's database) with thousands of lines; the rendering itself is kept.
logging.getLogger("pylatexenc").setLevel(logging.ERROR)

SUMMARY_ARTIFACT = "listings-run-summary"
REJECTS_ARTIFACT = "listings-rejects"
REPORT_ARTIFACT = "listings-version-report"

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
    name="stage-listings", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1, retry_condition_fn=transient_failure
)
def stage_listings(
    sources: list[Source], staged_dir: Path, refresh_cache: bool, workers: int, chunk_bytes: int
) -> list[StagedCapture]:
    """Parse a batch of raw listings into the staged layer (on `workers` processes), or find them there."""
    return stage_sources(sources, staged_dir, refresh_cache, workers, chunk_bytes)


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
    database: Path,
    manifest: dict[str, Any],
    force: bool,
    captures: list[CaptureFiles],
    kept: store.KeptRows | None,
    gate: Callable[[], None],
) -> store.PublishOutcome:
    """Stream the tables into a new version, validating each batch, and swap `latest` once `gate`
    returns (retried: I/O)."""
    tables = {name: partial(table_batches, database, name) for name in MODELS}
    paper_index = partial(table_batches, database, "paper_index")
    index = store.IndexSource(paper_index, index_schema(), partial(index_metadata, captures))
    now = datetime.now(UTC)
    return store.publish_version(
        out_dir, tables, manifest, now, batch_failures, force=force, kept=kept, index=index, gate=gate
    )


@task(
    name="write-rejected", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1, retry_condition_fn=transient_failure
)
def write_rejected(out_dir: Path, captures: list[CaptureFiles], manifest: dict[str, Any]) -> Path:
    """Write a refused run's rejects where the operator can read them."""
    return store.write_rejected(out_dir, staged_rejects(captures), manifest)


# --- plain helpers ----------------------------------------------------------------------------


def input_entries(staged: list[StagedCapture]) -> list[dict[str, Any]]:
    """The manifest's description of every input file."""
    return [
        {
            "path": c.source.name,
            "sha256": c.sha256,
            "bytes": c.counts.size_bytes,
            "capture_date": c.source.capture_date.isoformat(),
            "capture_date_from": c.source.capture_date_from,
            "records": c.counts.records,
            "rejects": c.counts.rejects,
        }
        for c in staged
    ]


def run_manifest(staged: list[StagedCapture], skipped: list[str]) -> dict[str, Any]:
    """What the version will say about its inputs, code and contract (ids and counts come later)."""
    inputs = input_entries(staged)
    code, schema = code_fingerprint(), schema_fingerprint()
    return {
        "pipeline_version": __version__,
        "inputs": inputs,
        "skipped_inputs": skipped,
        "records": sum(c.counts.records for c in staged),
        "rejects": sum(c.counts.rejects for c in staged),
        "code_fingerprint": code,
        "schema_fingerprint": schema,
        "fingerprint": run_fingerprint(inputs, code, schema),
    }


def capture_files(staged: list[StagedCapture]) -> list[CaptureFiles]:
    """What assembly reads of each staged capture."""
    return [
        CaptureFiles(c.source.name, c.source.capture_date, c.key, {t: c.files(t) for t in STAGED_TABLES})
        for c in staged
    ]


def _wait(future: PrefectFuture[None]) -> None:
    """The outcome of a task run beside this one: what it raised is raised here."""
    future.result()


def parent_version(out_dir: Path, parent_id: str | None) -> ParentVersion | None:
    """Latest as the parent of a new version: its files (verified against its manifest when they
    are read), and its paper index when there is one."""
    if parent_id is None:
        return None
    path = store.version_path(out_dir, parent_id)
    papers_sha256 = str(store.read_manifest(path)["files"]["papers.parquet"]["sha256"])
    files = partial(store.verified_files, path, CHANGE_INPUTS)
    return ParentVersion(files, papers_sha256, store.paper_index(out_dir, parent_id))


def kept_rows(
    out_dir: Path, database: Path, parent_id: str | None, parent: ParentVersion | None, built: Assembled
) -> store.KeptRows | None:
    """The leading papers rows that the parent holds as they are, for publishing."""
    if parent_id is None or parent is None or not built.parent_rows_kept:
        return None
    rows = assemble_module.TEXT_BATCH_ROWS  # read when called: tests make row groups small
    tail = partial(papers_batches, database, batch_rows=rows)
    papers = store.version_path(out_dir, parent_id) / "papers.parquet"
    return store.KeptRows(parent_id, papers, parent.papers_sha256, built.parent_rows_kept, tail, rows)


def run_fingerprint(inputs: list[dict[str, Any]], code: str, schema: str) -> str:
    """Identity of a run's content: inputs (hash + capture date), code and contract."""
    keyed = sorted((i["path"], i["sha256"], i["capture_date"]) for i in inputs)
    payload = json.dumps({"inputs": keyed, "code": code, "schema": schema})
    return hashlib.sha256(payload.encode()).hexdigest()


def _publish_artifacts(summary: RunSummary, captures: list[CaptureFiles]) -> None:
    """The run's summary and first rejects as Prefect artifacts; a report, so a failure to record
    them (the API went away) is a warning, never a failed run after the version is published."""
    try:
        sample = [row for batch in staged_rejects(captures, REJECT_SAMPLE) for row in batch.to_pylist()]
        create_markdown_artifact(markdown=report_markdown(summary), key=SUMMARY_ARTIFACT, description="Run summary")
        if summary.published and summary.path is not None:
            create_link_artifact(
                link=(summary.path / REPORT_FILE).absolute().as_uri(),
                link_text=f"report of version {summary.version_id}",
                key=REPORT_ARTIFACT,
                description="The version at a glance: counts, changes, papers per month, top names, rejects, nulls",
            )
        create_table_artifact(
            table=[{k: v for k, v in row.items() if k != "raw"} for row in sample],
            key=REJECTS_ARTIFACT,
            description=f"First {REJECT_SAMPLE} rejects of the run ({summary.rejects} in all)",
        )
    except Exception as err:  # any failure of the API client: the data is safe either way
        get_run_logger().warning("the run's artifacts could not be recorded in Prefect: %s", err)


def _refuse(refusal: RefusedError, latest: str | None, base: dict[str, Any], captures: list[CaptureFiles]) -> NoReturn:
    """Report a refused run (nothing published) as the run's artifacts, then fail with `refusal`."""
    summary = RunSummary(None, None, False, latest, row_counts={}, refused=str(refusal), **base)
    _publish_artifacts(summary, captures)
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


def _stage_all(
    sources: list[Source], batches: list[list[Source]], staged_dir: Path, refresh_cache: bool, workers: int,
    chunk_bytes: int,
) -> dict[str, StagedCapture]:  # fmt: skip
    """Every listing in the staged layer, by name, with progress per file."""
    logger = get_run_logger()
    logger.info("%d listing(s) in %d staging task(s), %d process(es) each", len(sources), len(batches), workers)
    futures = stage_listings.map(
        batches, staged_dir=staged_dir, refresh_cache=refresh_cache, workers=workers, chunk_bytes=chunk_bytes
    )
    by_name: dict[str, StagedCapture] = {}
    for future in as_completed(futures):
        for capture in future.result():
            by_name[capture.source.name] = capture
            if capture.note:
                logger.warning(capture.note)
            logger.info(
                "[%d/%d] %s: %d records, %d rejects (%s)",
                len(by_name), len(sources), capture.source.name, capture.counts.records, capture.counts.rejects,
                "from cache" if capture.from_cache else f"parsed in {capture.parts} part(s)",
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
    workers: int,
    chunk_bytes: int,
) -> RunSummary:
    """Parse every listing under `raw_dir` and publish the dataset as a new version of `out_dir`.

    Every parameter is required: the defaults live at the entry points (`pipeline.__main__`).

    Listings are parsed once into the staged layer (``out_dir/staged``, keyed on their content;
    `refresh_cache` parses all again), in parts of about `chunk_bytes` on `workers` processes
    per staging task. Files are grouped into staging tasks of about `batch_bytes`, at least
    `min_tasks` of them (a few per worker when a Dask runner spreads the tasks). The staged
    captures are then assembled in DuckDB and the version is streamed to Parquet.

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
    batches = file_batches(sources, batch_bytes, min_tasks)
    by_name = _stage_all(sources, batches, staged_dir, refresh_cache, workers, chunk_bytes)
    staged = [by_name[s.name] for s in sources]
    captures = capture_files(staged)
    counts: list[CaptureCounts] = [c.counts for c in staged]
    warnings = [str(notice) for notice in found.notices] + input_warnings(counts)
    for warning in warnings:
        logger.warning(warning)
    manifest = run_manifest(staged, [str(n) for n in found.notices if n.action == "skipped"])
    records, rejects = manifest["records"], manifest["rejects"]
    by_rule: Counter[str] = sum((Counter(c.rejects_by_rule) for c in counts), Counter())
    base = {
        "records": records,
        "rejects": rejects,
        "rejects_by_rule": dict(by_rule.most_common()),
        "inputs": manifest["inputs"],
        "parsed_files": [c.source.name for c in staged if not c.from_cache],
        "cached_files": [c.source.name for c in staged if c.from_cache],
        "warnings": warnings,
    }

    too_many_rejects = bool(records) and rejects / records > max_reject_rate
    current = store.latest_id(out_dir)
    if (
        not too_many_rejects
        and not force
        and current
        and store.fingerprint(out_dir, current) == manifest["fingerprint"]
    ):
        logger.info("up to date: version %s already has these inputs and code", current)
        path = store.version_path(out_dir, current)
        summary = RunSummary(current, path, False, current, row_counts=store.read_manifest(path)["row_counts"], **base)
        _publish_artifacts(summary, captures)
        return summary

    def waiting(holder: str) -> None:
        logger.info("waiting for the writer lock on %s (held by %s)", out_dir, holder)

    with store.writer_lock(out_dir, lock_timeout_s, on_wait=waiting), store.scratch_folder(out_dir) as scratch:
        # Another run may have pruned this run's staged captures while it waited for the lock
        # (its raw folder differs): stage them again; under the lock, no run prunes them now.
        gone = [c.source for c in staged if not store.staged_present(staged_dir, c.key)]
        if gone:
            logger.info("%d staged listing(s) were pruned by another run meanwhile: staging them again", len(gone))
            again = {c.source.name: c for c in stage_listings(gone, staged_dir, False, workers, chunk_bytes)}
            staged = [again.get(c.source.name, c) for c in staged]
            captures = capture_files(staged)
        # Under the lock: the rejects are read from staged files that no other run prunes now.
        if too_many_rejects:
            folder = write_rejected(out_dir, captures, manifest)
            reason = (
                f"{rejects} of {records} records rejected ({rejects / records:.1%} > {max_reject_rate:.1%}); "
                f"nothing was published. The rejects are in {folder / 'rejects.csv'}"
            )
            _refuse(RejectRateExceededError(reason), store.latest_id(out_dir), base, captures)
        parent_id = store.latest_id(out_dir)
        parent = parent_version(out_dir, parent_id)
        logger.info("assembling %d listing(s)", len(captures))
        built = assemble(scratch / "assembly.duckdb", captures, parent)
        too_many_removed = mass_removal(built.parent_papers, built.removed_by_origin, manifest["inputs"],
                                        max_removed_rate)  # fmt: skip
        if too_many_removed:
            _refuse(RemovalRateExceededError(too_many_removed), parent_id, base, captures)
        if parent is None and not built.row_counts["papers"]:
            nothing = "no input holds a single usable record: a first version without papers is not published"
            _refuse(NothingToPublishError(nothing), parent_id, base, captures)
        logger.info("checking keys while validating and publishing %d tables", len(built.row_counts))
        # Beside the writing: publish waits for the checks before anything is published.
        keys = check_keys.submit(built.database)
        kept = kept_rows(out_dir, built.database, parent_id, parent, built)
        outcome = publish(out_dir, built.database, manifest, force, captures, kept, partial(_wait, keys))
        pruned = _pruned_versions(out_dir, keep)
        store.prune_staged(staged_dir, {c.key for c in staged})
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
        row_counts=built.row_counts,
        changes=built.changes if outcome.published else {},
        pruned=pruned,
        **base,
    )
    _publish_artifacts(summary, captures)
    return summary
