"""Prefect wiring: per-file parse tasks, then build, validate and publish as coarse stages."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from pipeline import __version__, store
from pipeline.reference import load_reference
from pipeline.sources import Source, code_fingerprint, discover_sources, read_source
from pipeline.tables import ListingResult, build_tables, changes_table
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


def run_fingerprint(inputs: list[dict[str, Any]], code: str, schema: str) -> str:
    """Identity of a run's content: inputs (hash + capture date), code and contract."""
    keyed = sorted((i["path"], i["sha256"], i["capture_date"]) for i in inputs)
    payload = json.dumps({"inputs": keyed, "code": code, "schema": schema})
    return hashlib.sha256(payload.encode()).hexdigest()


@flow(name="listings-to-parquet", log_prints=False)
def refresh(raw_dir: Path, out_dir: Path, as_of: date | None, force: bool, lock_timeout_s: float) -> RunSummary:
    """Parse every listing under `raw_dir` and publish the dataset as a new version of `out_dir`."""
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
    inputs = input_entries(results, sources)
    code, schema = code_fingerprint(), schema_fingerprint()
    records = sum(r.records for r in results)
    rejects = sum(len(r.rejects) for r in results)
    manifest = {
        "pipeline_version": __version__,
        "inputs": inputs,
        "records": records,
        "rejects": rejects,
        "code_fingerprint": code,
        "schema_fingerprint": schema,
        "fingerprint": run_fingerprint(inputs, code, schema),
    }
    rejects_by_rule = dict(Counter(j.rule for r in results for j in r.rejects).most_common())
    current = store.latest_id(out_dir)
    if not force and current and store.fingerprint(out_dir, current) == manifest["fingerprint"]:
        outcome = store.PublishOutcome(current, store.version_path(out_dir, current), False, current)
    else:
        tables = build_dataset(results)
        with store.writer_lock(out_dir, lock_timeout_s):
            parent_id = store.latest_id(out_dir)
            parent = store.read_tables(store.version_path(out_dir, parent_id), PARENT_TABLES) if parent_id else None
            tables["changes"] = changes_table(parent, tables)
            validated = validate(tables)
            outcome = publish(out_dir, validated, manifest, force)
    row_counts = store.read_manifest(outcome.path)["row_counts"]
    if outcome.published:
        logger.info("published version %s at %s", outcome.version_id, outcome.path)
    else:
        logger.info("up to date: version %s already has these inputs and code", outcome.version_id)
    return RunSummary(
        version_id=outcome.version_id,
        path=outcome.path,
        published=outcome.published,
        parent_id=outcome.parent_id,
        records=records,
        rejects=rejects,
        rejects_by_rule=rejects_by_rule,
        row_counts=row_counts,
        inputs=inputs,
    )
