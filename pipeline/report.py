"""Pure run report: what a run did, as data and as the Markdown shown in Prefect and the terminal."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.version_report import REPORT_FILE
from schemas.tables import CHANGE_KINDS

REJECT_SAMPLE = 100
# Rejects that carry no record header: a file of nothing else has no records at all.
HEADERLESS_RULES = frozenset({"stray_lines"})


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
    warnings: list[str] = field(default_factory=list)  # inputs skipped, renamed, empty or unusable


@dataclass(frozen=True, slots=True)
class CaptureCounts:
    """What one capture holds: its size, papers and rejects (by rule)."""

    source_file: str
    size_bytes: int
    papers: int
    rejects_by_rule: dict[str, int]
    headed: int  # papers plus rejects that had a record header

    @property
    def rejects(self) -> int:
        """Records and stray line groups that could not be used."""
        return sum(self.rejects_by_rule.values())

    @property
    def records(self) -> int:
        """Records found in the file: papers plus rejects."""
        return self.papers + self.rejects

    def to_json(self) -> dict[str, Any]:
        """The counts as stored beside a staged capture."""
        return {"size_bytes": self.size_bytes, "papers": self.papers, "rejects_by_rule": self.rejects_by_rule,
                "headed": self.headed}  # fmt: skip

    @classmethod
    def from_json(cls, source_file: str, data: Mapping[str, Any]) -> CaptureCounts:
        """The counts `to_json` stored."""
        rules = {str(rule): int(n) for rule, n in dict(data["rejects_by_rule"]).items()}
        return cls(source_file, int(data["size_bytes"]), int(data["papers"]), rules, int(data["headed"]))


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


def mass_removal(
    parent_papers: int,
    removed_by_origin: Mapping[str, int],
    inputs: Sequence[Mapping[str, Any]],
    max_removed_rate: float,
) -> str | None:
    """Why the run must not publish, when more than `max_removed_rate` of the parent's
    `parent_papers` papers would disappear; None otherwise. `removed_by_origin`: the papers that
    would disappear, counted by the capture that supplied them in the parent. Names those
    captures and what became of each (gone from the raw folder, empty, or changed)."""
    removed = sum(removed_by_origin.values())
    if not parent_papers or removed / parent_papers <= max_removed_rate:
        return None
    now = {str(i["path"]): i for i in inputs}
    parts = []
    for name, count in Counter(removed_by_origin).most_common():
        current = now.get(name)
        if current is None:
            state = "no longer in the raw folder"
        elif not current["bytes"]:
            state = "now empty (0 bytes)"
        else:
            state = f"now {current['records']} record(s), {current['rejects']} rejected"
        parts.append(f"{name} ({count} paper(s); {state})")
    return (
        f"{removed} of {parent_papers} papers ({removed / parent_papers:.1%}) would be removed, more than "
        f"--max-removed-rate {max_removed_rate:.1%}; nothing was published. They came from: "
        f"{'; '.join(parts)}. If the removal is intended, run again with --max-removed-rate 1"
    )


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
        lines.append(f"- report: {summary.path / REPORT_FILE} (open it in a browser; it needs no network)")
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
