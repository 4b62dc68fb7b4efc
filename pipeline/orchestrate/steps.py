"""The flow's named steps: each calls down into one layer, logs its progress and hands back its result."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import NoReturn

from prefect import get_run_logger
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.futures import PrefectFuture, as_completed

from pipeline.assembled import batches as assembled_batches
from pipeline.assembled.batches import papers_batches, staged_rejects
from pipeline.assembled.captures import Assembled, CaptureFiles, ParentVersion
from pipeline.errors import (
    NothingToPublishError,
    RefusedError,
    RejectRateExceededError,
    RemovalRateExceededError,
    StoreError,
)
from pipeline.orchestrate import decisions
from pipeline.orchestrate.decisions import RunFacts, capture_files
from pipeline.orchestrate.tasks import assemble, check_keys, publish, stage_listings, write_rejected
from pipeline.parse.tables import CHANGE_INPUTS
from pipeline.published.cleanup import clean_incomplete, prune_versions, remove_legacy_cache
from pipeline.published.index import paper_index
from pipeline.published.layout import LEGACY_CACHE, REPORT_FILE, check_writable
from pipeline.published.manifest import read_manifest
from pipeline.published.remote import Output
from pipeline.published.splice import KeptRows
from pipeline.published.transaction import PublishOutcome
from pipeline.published.verify import verified_files
from pipeline.published.versions import version_path
from pipeline.raw.sources import InputNotice, Source, code_fingerprint
from pipeline.reported.summary import REJECT_SAMPLE, RunSummary, report_markdown
from pipeline.staged.capture import StagedCapture
from pipeline.staged.remote import StagedPlace, pull_missing, this_process
from pipeline.staged.store import STAGED, prune_staged
from pipeline.storage.lease import Lease, object_lock
from pipeline.storage.lock import LOCK_FILE
from pipeline.storage.lock import writer_lock as local_writer_lock
from schemas.contract import schema_fingerprint

SUMMARY_ARTIFACT = "listings-run-summary"
REJECTS_ARTIFACT = "listings-rejects"
REPORT_ARTIFACT = "listings-version-report"


# --- raw → staged -------------------------------------------------------------------------------


def prepare_output(out: Output) -> None:
    """OUT writable and of the right shape, with what interrupted runs left removed (on object
    storage, under the writer lock: see `writer_lock`)."""
    if out.remote is not None:
        out.remote.storage.check_usable()
        return
    out_dir = out.local
    logger = get_run_logger()
    check_writable(out_dir)
    for leftover in clean_incomplete(out_dir):
        logger.info("removed %s, left by an interrupted run", leftover)
    if remove_legacy_cache(out_dir):
        logger.info("deleted the pickle cache of an earlier release (%s), unread", out_dir / LEGACY_CACHE)


def staged_place(out: Output) -> StagedPlace:
    """Where this run stages: OUT's staged layer, shared through object storage when OUT is there."""
    location = out.remote.location if out.remote is not None else None
    return StagedPlace(out.local / STAGED, location, this_process())


def stage_all(
    sources: list[Source], batches: list[list[Source]], place: StagedPlace, refresh_cache: bool, workers: int,
    chunk_bytes: int,
) -> list[StagedCapture]:  # fmt: skip
    """Every listing in the staged layer, in the order of `sources`, with progress per file."""
    logger = get_run_logger()
    logger.info("%d listing(s) in %d staging task(s), %d process(es) each", len(sources), len(batches), workers)
    futures = stage_listings.map(
        batches, place=place, refresh_cache=refresh_cache, workers=workers, chunk_bytes=chunk_bytes
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
    return [by_name[s.name] for s in sources]


def describe(staged: list[StagedCapture], notices: list[InputNotice]) -> RunFacts:
    """What the run is (`decisions.run_facts`), its warnings logged."""
    run = decisions.run_facts(staged, notices, code_fingerprint(), schema_fingerprint())
    for warning in run.summary["warnings"]:
        get_run_logger().warning(warning)
    return run


def latest_fingerprint(out: Output) -> str | None:
    """The content fingerprint of the latest version (None when there is none)."""
    current = out.latest_id()
    value = out.manifest(current).get("fingerprint") if current is not None else None
    return str(value) if value is not None else None


@contextlib.contextmanager
def writer_lock(out: Output, timeout_s: float) -> Iterator[Lease | None]:
    """Hold OUT's writer lock: a file lock on disk; on object storage a leased lock object (see
    `object_lock`), whose holder then removes what dead writers left."""

    def waiting(holder: str) -> None:
        get_run_logger().info("waiting for the writer lock on %s (held by %s)", out.name, holder)

    if out.remote is None:
        with local_writer_lock(out.local, timeout_s, waiting):
            yield None
        return
    with object_lock(out.remote.storage, LOCK_FILE, timeout_s, waiting) as lease:
        for leftover in out.remote.clean_uncommitted():
            get_run_logger().info("removed %s, left by an interrupted run", leftover)
        yield lease


def restage_missing(
    staged: list[StagedCapture], place: StagedPlace, workers: int, chunk_bytes: int
) -> list[StagedCapture]:
    """The captures again, all whole in the driver's staged folder: those staged on other
    machines pulled, and those another run pruned while this one waited for the lock (its raw
    folder differs) staged anew: under the lock, no run prunes them."""
    gone = pull_missing(staged, place)
    if not gone:
        return staged
    get_run_logger().info("%d staged listing(s) were pruned or damaged meanwhile: staging them again", len(gone))
    again = {c.source.name: c for c in stage_listings(gone, place, False, workers, chunk_bytes)}
    return [again.get(c.source.name, c) for c in staged]


# --- staged → assembled → published ---------------------------------------------------------------


def refuse_rejects(out: Output, why: str, run: RunFacts, staged: list[StagedCapture]) -> NoReturn:
    """Write the rejects aside (under the lock: read from staged files no other run prunes now),
    then refuse the run."""
    captures = capture_files(staged)
    folder = write_rejected(out.local, captures, run.manifest)
    where = str(folder / "rejects.csv") if out.remote is None else f"{out.remote.push_rejected(folder)}/rejects.csv"
    reason = f"{why}; nothing was published. The rejects are in {where}"
    refuse(RejectRateExceededError(reason), out.latest_id(), run, captures)


def parent_id(out: Output) -> str | None:
    """The latest version, the new one's parent; on object storage, copied (verified) into the
    working folder with its paper index, where assembly reads it."""
    current = out.latest_id()
    if current is not None and out.remote is not None:
        out.remote.pull(current, out.local)
        out.remote.pull_index(current, out.local)
    return current


def parent_version(out_dir: Path, parent_id: str | None) -> ParentVersion | None:
    """Latest as the parent of a new version: its files (verified against its manifest when they
    are read), and its paper index when there is one."""
    if parent_id is None:
        return None
    path = version_path(out_dir, parent_id)
    papers_sha256 = str(read_manifest(path)["files"]["papers.parquet"]["sha256"])
    files = partial(verified_files, path, CHANGE_INPUTS)
    return ParentVersion(files, papers_sha256, paper_index(out_dir, parent_id))


def assemble_version(
    scratch: Path, staged: list[StagedCapture], out_dir: Path, parent_id: str | None
) -> tuple[Assembled, ParentVersion | None]:
    """The new version's tables, assembled against its parent."""
    captures = capture_files(staged)
    parent = parent_version(out_dir, parent_id)
    get_run_logger().info("assembling %d listing(s)", len(captures))
    return assemble(scratch / "assembly.duckdb", captures, parent), parent


def guard_removals(
    built: Assembled, run: RunFacts, parent_id: str | None, max_removed_rate: float, staged: list[StagedCapture]
) -> None:
    """Refuse a version that would remove too many of the parent's papers, or a first one without any."""
    removed = decisions.too_many_removed(built.parent_papers, built.removed_by_origin, run.manifest["inputs"],
                                         max_removed_rate)  # fmt: skip
    if removed:
        refuse(RemovalRateExceededError(removed), parent_id, run, capture_files(staged))
    if empty := decisions.empty_first_version(parent_id, built.row_counts["papers"]):
        refuse(NothingToPublishError(empty), parent_id, run, capture_files(staged))


def kept_rows(
    out_dir: Path, database: Path, parent_id: str | None, parent: ParentVersion | None, built: Assembled
) -> KeptRows | None:
    """The leading papers rows that the parent holds as they are, for publishing."""
    if parent_id is None or parent is None or not built.parent_rows_kept:
        return None
    rows = assembled_batches.TEXT_BATCH_ROWS  # read when called: tests make row groups small
    tail = partial(papers_batches, database, batch_rows=rows)
    papers = version_path(out_dir, parent_id) / "papers.parquet"
    return KeptRows(parent_id, papers, parent.papers_sha256, built.parent_rows_kept, tail, rows)


def _wait(future: PrefectFuture[None]) -> None:
    """The outcome of a task run beside this one: what it raised is raised here."""
    future.result()


def publish_version(
    out: Output, lease: Lease | None, parent_id: str | None, parent: ParentVersion | None, built: Assembled,
    run: RunFacts, staged: list[StagedCapture],
) -> PublishOutcome:  # fmt: skip
    """The new version, published while its keys are checked beside the writing (the commit
    waits for the checks)."""
    get_run_logger().info("checking keys while validating and publishing %d tables", len(built.row_counts))
    keys = check_keys.submit(built.database)
    kept = kept_rows(out.local, built.database, parent_id, parent, built)
    to_check = sum(built.row_counts.values()) - (kept.rows if kept is not None else 0)
    return publish(out.local, parent_id, built.database, run.manifest, capture_files(staged), kept,
                   partial(_wait, keys), out.remote, lease, to_check)  # fmt: skip


def pruned_versions(out: Output, keep: int | None, staged_keys: set[str]) -> list[str]:
    """Versions removed by `--keep`, and staged captures of files no longer in the raw folder (a
    failure to remove either is a warning: the new version is already published)."""
    pruned: list[str] = []
    try:
        if keep is not None:
            pruned = prune_versions(out.local, keep) if out.remote is None else out.remote.prune(keep)
        if out.remote is not None:
            out.remote.staged.prune(staged_keys)
    except StoreError as err:
        get_run_logger().warning("could not prune old versions or staged captures: %s", err)
    prune_staged(out.local / STAGED, staged_keys)
    return pruned


# --- reported -------------------------------------------------------------------------------------


def report_up_to_date(out: Output, run: RunFacts, staged: list[StagedCapture]) -> RunSummary:
    """The summary of a run that found latest up to date."""
    current = out.latest_id()
    if current is None:  # up to date means a latest whose fingerprint matched
        raise StoreError(f"no version under {out.name}")
    get_run_logger().info("up to date: version %s already has these inputs and code", current)
    path = version_path(out.local, current) if out.remote is None else out.remote.version_url(current)
    summary = RunSummary(current, path, False, current, row_counts=out.manifest(current)["row_counts"], **run.summary)
    publish_artifacts(summary, capture_files(staged))
    return summary


def report_published(
    outcome: PublishOutcome, built: Assembled, run: RunFacts, staged: list[StagedCapture], pruned: list[str]
) -> RunSummary:
    """The summary of a run that published a version."""
    logger = get_run_logger()
    if pruned:
        logger.info("pruned versions %s", ", ".join(pruned))
    logger.info("published version %s at %s", outcome.version_id, outcome.path)
    summary = RunSummary(outcome.version_id, outcome.path, True, outcome.parent_id, row_counts=built.row_counts,
                         changes=built.changes, pruned=pruned, **run.summary)  # fmt: skip
    publish_artifacts(summary, capture_files(staged))
    return summary


def refuse(refusal: RefusedError, latest: str | None, run: RunFacts, captures: list[CaptureFiles]) -> NoReturn:
    """Report a refused run (nothing published) as the run's artifacts, then fail with `refusal`."""
    summary = RunSummary(None, None, False, latest, row_counts={}, refused=str(refusal), **run.summary)
    publish_artifacts(summary, captures)
    raise refusal


def publish_artifacts(summary: RunSummary, captures: list[CaptureFiles]) -> None:
    """The run's summary and first rejects as Prefect artifacts; a report, so a failure to record
    them (the API went away) is a warning, never a failed run after the version is published."""
    try:
        sample = [row for batch in staged_rejects(captures, REJECT_SAMPLE) for row in batch.to_pylist()]
        create_markdown_artifact(markdown=report_markdown(summary), key=SUMMARY_ARTIFACT, description="Run summary")
        if summary.published and summary.path is not None:
            create_link_artifact(
                link=(summary.path / REPORT_FILE).absolute().as_uri()
                if isinstance(summary.path, Path)
                else f"{summary.path}/{REPORT_FILE}",
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
