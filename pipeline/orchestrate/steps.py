"""The flow's named steps: each calls down into one layer, logs its progress and hands back its result."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import NamedTuple, NoReturn

from prefect import get_run_logger
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.futures import as_completed

from pipeline.assembled.batches import staged_rejects
from pipeline.assembled.captures import Assembled, CaptureFiles, ParentVersion
from pipeline.assembled.generations import Part
from pipeline.assembled.index import INDEX_NAMES, index_recipe
from pipeline.errors import (
    NothingToPublishError,
    RefusedError,
    RejectRateExceededError,
    RemovalRateExceededError,
    StagedEntryInvalidError,
    StoreError,
    VersionDamagedError,
)
from pipeline.orchestrate import decisions
from pipeline.orchestrate.decisions import RunFacts
from pipeline.orchestrate.tasks import assemble, check_keys, publish, stage_listings, write_rejected
from pipeline.published import Manifest, PublishOutcome, Store, collect_garbage, prune, version_parts
from pipeline.published.layout import REPORT_FILE
from pipeline.published.verify import table_batches
from pipeline.raw.sources import InputNotice, Inputs, Source, code_fingerprint, find_listings
from pipeline.reported.summary import REJECT_SAMPLE, RunSummary, report_markdown
from pipeline.settings import gc_grace_s
from pipeline.staged.capture import StagedCapture
from pipeline.staged.store import KnownInput, discard_staged, local_entry, prune_staged, remember_inputs
from pipeline.storage import Lease, Location, open_storage
from schemas.contract import schema_fingerprint

SUMMARY_ARTIFACT = "listings-run-summary"
REJECTS_ARTIFACT = "listings-rejects"
REPORT_ARTIFACT = "listings-version-report"


# --- raw → staged -------------------------------------------------------------------------------


def open_store(out_dir: Location) -> Store:
    """The dataset the run publishes to, checked usable (writable, of the right shape)."""
    store = Store.open(out_dir)
    store.check_usable()
    return store


def find_inputs(raw_dir: Location, as_of: date | None) -> Inputs:
    """The run's listings (`find_listings`), from a folder or an s3:// prefix."""
    return find_listings(open_storage(raw_dir), as_of)


def stage_all(
    sources: list[Source], batches: list[list[Source]], store: Store, refresh_cache: bool, workers: int,
    chunk_bytes: int,
) -> list[StagedCapture]:  # fmt: skip
    """Every listing in the staged layer, in the order of `sources`, with progress per file; what
    was read of each remembered, so that the next run need not read it again."""
    logger = get_run_logger()
    logger.info("%d listing(s) in %d staging task(s), %d process(es) each", len(sources), len(batches), workers)
    futures = stage_listings.map(batches, staged=store.staged, cache=store.cache, refresh_cache=refresh_cache,
                                 workers=workers, chunk_bytes=chunk_bytes)  # fmt: skip
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
    staged = [by_name[s.name] for s in sources]
    with contextlib.suppress(StoreError):  # a record that only spares reading: never a failed run
        remember_inputs(store.staged, [(c.source.name, KnownInput(c.source.tag, c.source.size_bytes, c.sha256))
                                       for c in staged])  # fmt: skip
    return staged


def describe(staged: list[StagedCapture], notices: list[InputNotice]) -> RunFacts:
    """What the run is (`decisions.run_facts`), its warnings logged."""
    run = decisions.run_facts(staged, notices, code_fingerprint(), schema_fingerprint())
    for warning in run.summary["warnings"]:
        get_run_logger().warning(warning)
    return run


def latest_fingerprint(store: Store) -> str | None:
    """The content fingerprint of the latest version (None when there is none)."""
    current = store.latest_id()
    return store.manifest(current).fingerprint if current is not None else None


@contextlib.contextmanager
def writer_lock(store: Store, timeout_s: float) -> Iterator[Lease]:
    """Hold the store's writer lock; its holder then removes what dead writers left."""

    def waiting(holder: str) -> None:
        get_run_logger().info("waiting for the writer lock on %s (held by %s)", store.url, holder)

    with store.lock(timeout_s, waiting) as lease:
        for leftover in store.clean_uncommitted():
            get_run_logger().info("removed %s, left by an interrupted run", leftover)
        yield lease


def local_captures(
    captures: Sequence[StagedCapture], store: Store, workers: int, chunk_bytes: int
) -> list[CaptureFiles]:
    """Staged captures as assembly reads them: each entry's parts verified local files (downloaded
    where the store is not a local disk). An entry that is gone or damaged (another run pruned it,
    a disk flipped a bit) is staged again: under the writer lock, no run prunes it meanwhile."""
    found: dict[str, CaptureFiles] = {}
    again: list[StagedCapture] = []
    for capture in captures:
        try:
            entry = local_entry(store.staged, capture.key, store.cache)
        except StagedEntryInvalidError as err:
            get_run_logger().warning("%s: staged parse ignored and parsed again (%s)", capture.source.name, err)
            with contextlib.suppress(StoreError):
                discard_staged(store.staged, capture.key)
            again.append(capture)
            continue
        found[capture.key] = CaptureFiles(capture.source.name, capture.source.capture_date, capture.key, entry.files)
    if again:
        get_run_logger().info("%d staged listing(s) were pruned or damaged meanwhile: staging them again", len(again))
        for restaged in stage_listings([c.source for c in again], store.staged, store.cache, False, workers,
                                       chunk_bytes):  # fmt: skip
            entry = local_entry(store.staged, restaged.key, store.cache)
            found[restaged.key] = CaptureFiles(restaged.source.name, restaged.source.capture_date, restaged.key,
                                               entry.files)  # fmt: skip
    return [found[c.key] for c in captures]


# --- staged → assembled → published ---------------------------------------------------------------


def parent_manifest(store: Store) -> Manifest | None:
    """The latest version's manifest: the new version's parent (read under the writer lock)."""
    current = store.latest_id()
    return store.manifest(current) if current is not None else None


def refuse_rejects(
    store: Store, why: str, run: RunFacts, staged: list[StagedCapture], workers: int, chunk_bytes: int
) -> NoReturn:
    """Write the rejects aside (under the lock: read from staged files no other run prunes now),
    then refuse the run."""
    captures = local_captures(staged, store, workers, chunk_bytes)
    where = write_rejected(store, captures, run.manifest)
    reason = f"{why}; nothing was published. The rejects are in {where}/rejects.csv"
    refuse(RejectRateExceededError(reason), store.latest_id(), run, captures)


def has_indexes(parent: Manifest) -> bool:
    """True when a version holds every index a refresh reads, written with this code's recipe."""
    return parent.layout >= 2 and set(parent.index) == set(INDEX_NAMES) and parent.index_recipe == index_recipe()


def parent_index(store: Store, parent: Manifest) -> tuple[dict[str, list[Part]], str | None]:
    """The parent's indexes as verified local files (none when it has none of today's recipe), and
    what is wrong with them when a file of theirs is missing or damaged (then none)."""
    if not has_indexes(parent):
        return {}, None
    try:
        return {name: store.parts(parent.index[name]) for name in INDEX_NAMES}, None
    except VersionDamagedError as err:
        return {}, str(err)


def parent_version(store: Store, parent: Manifest, index: Mapping[str, list[Part]]) -> ParentVersion:
    """The parent as assembly reads it: its indexes (`parent_index`), and its tables on demand."""

    def tables(wanted: Sequence[str]) -> dict[str, list[object]]:
        return version_parts(store, parent, wanted, check_types=False)  # type: ignore[return-value]

    return ParentVersion(parent.id, dict(index), tables, parent.row_counts, parent.index_counts)  # type: ignore[arg-type]


class AssemblyChoice(NamedTuple):
    """What a run assembles: the parent's indexes (`parent_index`) and what is wrong with them,
    why it assembles whole (None: the new captures alone, against the parent's indexes), and the
    staged captures it reads."""

    indexes: dict[str, list[Part]]
    damage: str | None
    reason: str | None
    needed: list[StagedCapture]


def assembly_choice(
    store: Store, parent: Manifest | None, staged: Sequence[StagedCapture], forced: str | None = None
) -> AssemblyChoice:
    """`decisions.whole_assembly` on the parent and these captures (`forced`: assemble whole, for
    this reason, whatever it says)."""
    index, damage = parent_index(store, parent) if parent is not None else ({}, None)
    facts = None
    if parent is not None:
        facts = decisions.parent_facts(parent.document, parent.layout, has_indexes(parent), damage)
    orders = {c.key: (c.source.capture_date, c.source.name) for c in staged}
    reason = forced or decisions.whole_assembly(facts, orders, code_fingerprint())
    needed = list(staged) if reason is not None or facts is None else [c for c in staged if c.key not in facts.captures]
    return AssemblyChoice(index, damage, reason, needed)


def assemble_version(
    scratch: Path, store: Store, staged: list[StagedCapture], parent: Manifest | None, workers: int,
    chunk_bytes: int,
) -> Assembled:  # fmt: skip
    """The new version's rows, assembled from its new captures against the parent's indexes when
    it can be (`assembly_choice`), else from every capture."""
    logger = get_run_logger()
    index, damage, reason, needed = assembly_choice(store, parent, staged)
    captures = local_captures(needed, store, 1 if workers < 1 else workers, chunk_bytes)
    base = parent_version(store, parent, index) if parent is not None else None
    if damage is not None:
        logger.warning("version %s: %s; its tables are read instead (`validate` names the damage)",
                       parent.id if parent else "-", damage)  # fmt: skip
    if reason is None:
        logger.info("assembling %d new listing(s) against version %s", len(captures), parent.id if parent else "-")
    else:
        logger.info("assembling %d listing(s) whole: %s", len(captures), reason)
    return assemble(scratch / "assembly.duckdb", captures, base, reason)


def guard_removals(built: Assembled, run: RunFacts, parent_id: str | None, max_removed_rate: float) -> None:
    """Refuse a version that would remove too many of the parent's papers, or a first one without any."""
    removed = decisions.too_many_removed(built.parent_papers, built.removed_by_origin, run.manifest["inputs"],
                                         max_removed_rate)  # fmt: skip
    if removed:
        refuse(RemovalRateExceededError(removed), parent_id, run, [])
    if empty := decisions.empty_first_version(parent_id, built.row_counts["papers"]):
        refuse(NothingToPublishError(empty), parent_id, run, [])


def publish_version(
    store: Store, lease: Lease, parent: Manifest | None, built: Assembled, run: RunFacts, scratch: Path
) -> PublishOutcome:
    """The new version, published while its keys are checked beside the writing (the commit
    waits for the checks)."""
    get_run_logger().info("checking keys while validating and publishing %d tables", len(built.tables))
    if built.database is None:
        raise TypeError("the flow publishes what an assembly database holds: this assembly has none")
    keys = check_keys.submit(built.database, built.incremental)
    to_check = sum(rows.count for rows in built.tables.values())
    return publish(store, lease, parent, built, run.manifest, keys.result, to_check, scratch)


def retention(store: Store, keep: int | None, staged_keys: set[str]) -> list[str]:
    """Prune versions past `keep`, collect the files no kept version lists (after their grace),
    and drop staged captures no longer in the raw folder (under the lock). A failure here is a
    warning: the version is published."""
    pruned: list[str] = []
    logger = get_run_logger()
    try:
        if keep is not None:
            pruned = prune(store, keep)
        deleted = collect_garbage(store, gc_grace_s())
        if deleted:
            logger.info("deleted %d file(s) that no kept version lists", len(deleted))
        prune_staged(store.staged, staged_keys)
    except StoreError as err:
        logger.warning("could not prune old versions or staged captures: %s", err)
    return pruned


# --- reported -------------------------------------------------------------------------------------


def report_up_to_date(store: Store, run: RunFacts) -> RunSummary:
    """The summary of a run that found latest up to date."""
    current = store.latest_id()
    if current is None:  # up to date means a latest whose fingerprint matched
        raise StoreError(f"no version under {store.url}")
    get_run_logger().info("up to date: version %s already has these inputs and code", current)
    manifest = store.manifest(current)
    summary = RunSummary(current, store.version_url(current), False, current, row_counts=manifest.row_counts,
                         **run.summary)  # fmt: skip
    publish_artifacts(summary, store, current)
    return summary


def report_published(store: Store, outcome: PublishOutcome, built: Assembled, run: RunFacts,
                     pruned: list[str]) -> RunSummary:  # fmt: skip
    """The summary of a run that published a version."""
    logger = get_run_logger()
    if pruned:
        logger.info("pruned versions %s", ", ".join(pruned))
    logger.info("published version %s at %s", outcome.version_id, outcome.path)
    summary = RunSummary(outcome.version_id, outcome.path, True, outcome.parent_id, row_counts=built.row_counts,
                         changes=built.changes, pruned=pruned, **run.summary)  # fmt: skip
    publish_artifacts(summary, store, outcome.version_id)
    return summary


def refuse(refusal: RefusedError, latest: str | None, run: RunFacts, captures: list[CaptureFiles]) -> NoReturn:
    """Report a refused run (nothing published) as the run's artifacts, then fail with `refusal`."""
    summary = RunSummary(None, None, False, latest, row_counts={}, refused=str(refusal), **run.summary)
    publish_artifacts(summary, None, None, captures)
    raise refusal


def _rejects_sample(store: Store | None, version_id: str | None, captures: Sequence[CaptureFiles]) -> list[dict]:
    """The first rejects: of the version (its rejects table) or, for a refused run, of its captures."""
    if store is not None and version_id is not None:
        manifest = store.manifest(version_id)
        parts = version_parts(store, manifest, ["rejects"])["rejects"]
        rows: list[dict] = []
        for batch in table_batches("rejects", parts, REJECT_SAMPLE):
            rows += batch.to_pylist()
            break
        return rows[:REJECT_SAMPLE]
    return [row for batch in staged_rejects(captures, REJECT_SAMPLE) for row in batch.to_pylist()]


def publish_artifacts(
    summary: RunSummary, store: Store | None, version_id: str | None, captures: Sequence[CaptureFiles] = ()
) -> None:
    """The run's summary and first rejects as Prefect artifacts; a report, so a failure to record
    them (the API went away) is a warning, never a failed run after the version is published."""
    try:
        sample = _rejects_sample(store, version_id, captures)
        create_markdown_artifact(markdown=report_markdown(summary), key=SUMMARY_ARTIFACT, description="Run summary")
        if summary.published and store is not None and version_id is not None:
            where = store.storage.uri(f"versions/{version_id}/{REPORT_FILE}")
            create_link_artifact(
                link=Path(where).as_uri() if where.startswith("/") else where,
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
