"""Pure run report: what a run did, as data and as the Markdown shown in Prefect and the terminal."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schemas.tables import CHANGE_KINDS

REJECT_SAMPLE = 100


@dataclass(frozen=True)
class RunSummary:
    """What a run did, for the CLI, the Prefect artifacts and tests."""

    version_id: str | None
    path: Path | None
    published: bool
    parent_id: str | None
    records: int
    rejects: int
    rejects_by_rule: dict[str, int]
    row_counts: dict[str, int]
    inputs: list[dict[str, Any]] = field(default_factory=list)
    changes: dict[str, int] = field(default_factory=dict)
    pruned: list[str] = field(default_factory=list)
    parsed_files: list[str] = field(default_factory=list)
    cached_files: list[str] = field(default_factory=list)
    refused: str | None = None  # why nothing was published, when the run was refused


def outcome_line(summary: RunSummary) -> str:
    """One line: what happened to the dataset."""
    if summary.refused:
        return f"nothing published: {summary.refused}"
    if summary.published:
        return f"published new version {summary.version_id} at {summary.path}"
    return f"up to date: latest is version {summary.version_id} at {summary.path}"


def report_markdown(summary: RunSummary) -> str:
    """The run summary: inputs, records, rejects by rule, row counts, changes, the outcome."""
    lines = ["# Listings refresh", "", f"**{outcome_line(summary)}**", ""]
    lines += [
        f"- inputs: {len(summary.inputs)} file(s), {len(summary.parsed_files)} parsed, "
        f"{len(summary.cached_files)} from cache",
        f"- records: {summary.records}",
        f"- rejects: {summary.rejects}" + (f" ({summary.rejects / summary.records:.1%})" if summary.records else ""),
    ]
    if summary.parent_id and summary.published:
        lines.append(f"- parent version: {summary.parent_id}")
    if summary.changes:
        counts = ", ".join(f"{summary.changes.get(k, 0)} {k}" for k in CHANGE_KINDS)
        lines.append(f"- changes since the parent: {counts}")
    if summary.pruned:
        lines.append(f"- pruned versions: {', '.join(summary.pruned)}")
    if summary.rejects_by_rule:
        lines += ["", "| reject rule | records |", "|---|---:|"]
        lines += [f"| {rule} | {n} |" for rule, n in summary.rejects_by_rule.items()]
    if summary.row_counts:
        lines += ["", "| table | rows |", "|---|---:|"]
        lines += [f"| {table} | {rows} |" for table, rows in summary.row_counts.items()]
    if summary.inputs:
        lines += ["", "| input | capture date | records | rejects | source |", "|---|---|---:|---:|---|"]
        cached = set(summary.cached_files)
        lines += [
            f"| {i['path']} | {i['capture_date']} | {i['records']} | {i['rejects']} | "
            f"{'cache' if i['path'] in cached else 'parsed'} |"
            for i in summary.inputs
        ]
    return "\n".join(lines) + "\n"
