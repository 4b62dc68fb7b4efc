"""Prefect wiring: per-file parse tasks, then build, validate and publish as coarse stages."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from pipeline import __version__, store
from pipeline.reference import load_reference
from pipeline.sources import Source, code_fingerprint, discover_sources, read_source
from pipeline.tables import ListingResult, build_tables, changes_table, rejects_table
from schemas import validate_dataset
from schemas.contract import schema_fingerprint

PARENT_TABLES = ("papers", "paper_authors", "paper_organizations")


@dataclass(frozen=True)
class RunSummary:
    """What a run did, for the CLI and for tests."""

    version_id: str
    path: Path
    published: bool
    parent_id: str | None
    records: int
    rejects: int
    rejects_by_rule: dict[str, int]
    row_counts: dict[str, int]
    inputs: list[dict[str, Any]] = field(default_factory=list)
    changes: dict[str, int] = field(default_factory=dict)
    pruned: list[str] = field(default_factory=list)


@task(name="parse-listing", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def parse_listing_file(source: Source) -> ListingResult:
    """Read and parse one raw listing (retried: reading is I/O)."""
    return read_source(source, load_reference())


@task(name="build-tables", cache_policy=NO_CACHE)
def build_dataset(results: list[ListingResult]) -> dict[str, pd.DataFrame]:
    """Assemble all listings into the dataset's tables."""
    return build_tables(results, load_reference())


@task(name="validate", cache_policy=NO_CACHE)
def validate(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Validate every table and foreign key once; raises DatasetInvalidError naming every bad row."""
    return validate_dataset(tables)


@task(name="publish", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def publish(
    out_dir: Path, tables: dict[str, pd.DataFrame], manifest: dict[str, Any], force: bool
) -> store.PublishOutcome:
    """Write the version aside and swap `latest` (retried: writing is I/O)."""
    return store.publish_version(out_dir, tables, manifest, datetime.now(UTC), force=force)


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


def run_manifest(results: list[ListingResult], sources: list[Source]) -> dict[str, Any]:
    """What the version will say about its inputs, code and contract (ids and counts come later)."""
    inputs = input_entries(results, sources)
    code, schema = code_fingerprint(), schema_fingerprint()
    return {
        "pipeline_version": __version__,
        "inputs": inputs,
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


class RejectRateExceededError(Exception):
    """More records were rejected than the run allows; nothing was published."""


@task(name="write-rejected", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def write_rejected(out_dir: Path, results: list[ListingResult], manifest: dict[str, Any]) -> Path:
    """Write a refused run's rejects where the operator can read them."""
    return store.write_rejected(out_dir, rejects_table(results), manifest)


@flow(name="listings-to-parquet", log_prints=False)
def refresh(
    raw_dir: Path,
    out_dir: Path,
    as_of: date | None,
    force: bool,
    lock_timeout_s: float,
    max_reject_rate: float,
    keep: int | None,
) -> RunSummary:
    """Parse every listing under `raw_dir` and publish the dataset as a new version of `out_dir`.

    Raises RejectRateExceededError (rejects written aside, nothing published) when more than
    `max_reject_rate` of the records are rejected, and DatasetInvalidError when validation fails.
    """
    logger = get_run_logger()
    sources = discover_sources(raw_dir, as_of)
    for s in sources:
        if s.capture_date_from == "modification time":
            logger.warning(
                "%s: no YYYY-MM-DD in its name and no --as-of; using its modification date %s",
                s.name, s.capture_date,
            )  # fmt: skip
    results = [f.result() for f in parse_listing_file.map(sources)]
    for r in results:
        logger.info("%s: %d records, %d rejects", r.source_file, r.records, len(r.rejects))
    manifest = run_manifest(results, sources)
    records, rejects = manifest["records"], manifest["rejects"]
    summary = partial(
        RunSummary,
        records=records,
        rejects=rejects,
        rejects_by_rule=dict(Counter(j.rule for r in results for j in r.rejects).most_common()),
        inputs=manifest["inputs"],
    )
    if records and rejects / records > max_reject_rate:
        folder = write_rejected(out_dir, results, manifest)
        raise RejectRateExceededError(
            f"{rejects} of {records} records rejected ({rejects / records:.1%} > {max_reject_rate:.1%}); "
            f"nothing was published. The rejects are in {folder / 'rejects.csv'}"
        )
    current = store.latest_id(out_dir)
    if not force and current and store.fingerprint(out_dir, current) == manifest["fingerprint"]:
        logger.info("up to date: version %s already has these inputs and code", current)
        path = store.version_path(out_dir, current)
        return summary(
            version_id=current, path=path, published=False, parent_id=current,
            row_counts=store.read_manifest(path)["row_counts"],
        )  # fmt: skip
    tables = build_dataset(results)
    with store.writer_lock(out_dir, lock_timeout_s):
        parent_id = store.latest_id(out_dir)
        parent = store.read_tables(store.version_path(out_dir, parent_id), PARENT_TABLES) if parent_id else None
        tables["changes"] = changes_table(parent, tables)
        outcome = publish(out_dir, validate(tables), manifest, force)
        pruned = store.prune_versions(out_dir, keep) if keep is not None else []
    if pruned:
        logger.info("pruned versions %s (--keep %d)", ", ".join(pruned), keep)
    if outcome.published:
        logger.info("published version %s at %s", outcome.version_id, outcome.path)
    else:  # another run published the same content while this one waited for the lock
        logger.info("up to date: version %s already has these inputs and code", outcome.version_id)
    return summary(
        version_id=outcome.version_id,
        path=outcome.path,
        published=outcome.published,
        parent_id=outcome.parent_id,
        row_counts={name: len(frame) for name, frame in tables.items()},
        changes=dict(Counter(tables["changes"]["change"])) if outcome.published else {},
        pruned=pruned,
    )
