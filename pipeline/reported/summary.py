"""Pure run report: what a run did, as data and as the Markdown shown in Prefect and the terminal."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.published.layout import REPORT_FILE
from pipeline.staged.capture import CaptureCounts
from schemas.tables import CHANGE_KINDS

REJECT_SAMPLE = 100


@dataclass(frozen=True)
class RunSummary:
    """What a run did, for the CLI, the Prefect artifacts and tests."""

    version_id: str | None
    path: Path | str | None  # a local folder, or a version's URL on object storage
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
    warnings: list[str] = field(default_factory=list)  # inputs skipped, renamed, empty or unusable


def input_warnings(captures: Sequence[CaptureCounts]) -> list[str]:
    """One warning per capture that contributes nothing: empty, without record headers, or
    without a single usable record."""
    warnings = []
    for c in captures:
        if c.size_bytes == 0:
            warnings.append(f"{c.source_file}: empty file (0 bytes): no records")
        elif c.headed == 0 and c.rejects:
            warnings.append(
                f"{c.source_file}: no record header ('[score]SUFFIXMon D[, YYYY][Code]') in it: "
                f"all {c.rejects} group(s) of lines rejected"
            )
        elif c.headed == 0:
            warnings.append(f"{c.source_file}: no records (only blank lines)")
        elif not c.papers:
            warnings.append(f"{c.source_file}: none of its {c.records} records could be used")
    return warnings


def _cell(text: object) -> str:
    """A value for a Markdown table cell: one line, no column separators."""
    return " ".join(str(text).split()).replace("|", "\\|")


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
    if summary.published and summary.path is not None:
        lines.append(f"- report: {summary.path}/{REPORT_FILE} (open it in a browser; it needs no network)")
    if summary.changes:
        counts = ", ".join(f"{summary.changes.get(k, 0)} {k}" for k in CHANGE_KINDS)
        lines.append(f"- changes since the parent: {counts}")
    if summary.pruned:
        lines.append(f"- pruned versions: {', '.join(summary.pruned)}")
    if summary.warnings:
        lines += ["", f"**{len(summary.warnings)} warning(s)**", ""]
        lines += [f"- {' '.join(w.split())}" for w in summary.warnings]
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
            f"| {_cell(i['path'])} | {i['capture_date']} | {i['records']} | {i['rejects']} | "
            f"{'cache' if i['path'] in cached else 'parsed'} |"
            for i in summary.inputs
        ]
    return "\n".join(lines) + "\n"
