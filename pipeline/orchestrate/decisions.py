"""The decisions a run takes, as pure functions over plain data, each rule declared once.

What a run is (its manifest entries, fingerprint, counts and warnings), whether latest is already
up to date, whether too many records were rejected or too many papers would disappear, whether a
first version would be empty, and how listings are grouped into staging tasks.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pipeline.raw.sources import InputNotice, Source, listing_cache_key
from pipeline.reported.summary import input_warnings
from pipeline.settings import VERSION
from pipeline.staged.capture import StagedCapture


@dataclass(frozen=True)
class RunFacts:
    """What a run's inputs are, before anything is assembled: the manifest's entries that
    describe them (`manifest`), and what the run summary says of them (`summary`)."""

    manifest: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def records(self) -> int:
        """Records found in every input."""
        return int(self.manifest["records"])

    @property
    def rejects(self) -> int:
        """Records (and stray line groups) rejected."""
        return int(self.manifest["rejects"])

    @property
    def fingerprint(self) -> str:
        """Identity of the run's content: inputs, code and contract."""
        return str(self.manifest["fingerprint"])


def input_entries(staged: Sequence[StagedCapture]) -> list[dict[str, Any]]:
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


@dataclass(frozen=True)
class ParentFacts:
    """What the choice of assembly needs of the parent version: its layout, whether it has the
    indexes a refresh reads (written with today's recipe), the code that published it, the
    staged key and order (capture date, file name) of each of its inputs, and what is wrong with
    its indexes' files when they are damaged."""

    layout: int
    indexed: bool
    code: str | None
    captures: dict[str, tuple[date, str]]
    index_damage: str | None = None


def parent_facts(
    manifest: Mapping[str, Any], layout: int, indexed: bool, index_damage: str | None = None
) -> ParentFacts:
    """`ParentFacts` from a parent's manifest document (its inputs' staged keys recomputed with the
    code that published it)."""
    code = manifest.get("code_fingerprint")
    captures = {}
    for entry in manifest.get("inputs") or []:
        try:
            dated = date.fromisoformat(str(entry["capture_date"]))
            name = str(entry["path"])
            key = listing_cache_key(name, dated, str(entry["sha256"]), str(code))
        except (KeyError, TypeError, ValueError):
            return ParentFacts(layout, indexed, None, {}, index_damage)
        captures[key] = (dated, name)
    return ParentFacts(layout, indexed, str(code) if code is not None else None, captures, index_damage)


def whole_assembly(parent: ParentFacts | None, captures: Mapping[str, tuple[date, str]], code: str) -> str | None:
    """Why the new version must be assembled whole, from every capture (None: the refresh can be
    assembled from its new captures alone, against the parent's indexes). `captures`: the run's
    captures, by staged key, with their order (capture date, file name); `code`: the code's
    fingerprint."""
    if parent is None:
        return "a first version"
    if parent.index_damage is not None:
        # Indexes are not data: a damaged one costs a whole assembly from the parent's tables,
        # and the new version lists none of its files.
        return f"its parent's index cannot be read ({parent.index_damage})"
    if parent.layout < 2 or not parent.indexed:
        return "its parent has no index this code reads (an older layout or recipe)"
    if parent.code != code:
        return "the code (or a library whose output is data) changed since its parent"
    gone = sorted(parent.captures[key][1] for key in set(parent.captures) - set(captures))
    if gone:
        return f"a capture of its parent is gone or changed ({gone[0]}{', ...' if len(gone) > 1 else ''})"
    newest = max(parent.captures.values(), default=None)
    older = sorted(order[1] for key, order in captures.items() if key not in parent.captures and newest is not None
                   and order <= newest)  # fmt: skip
    if older:
        return f"a new capture comes before its parent's newest ({older[0]})"
    return None


def run_fingerprint(inputs: list[dict[str, Any]], code: str, schema: str) -> str:
    """Identity of a run's content: inputs (hash + capture date), code and contract."""
    keyed = sorted((i["path"], i["sha256"], i["capture_date"]) for i in inputs)
    payload = json.dumps({"inputs": keyed, "code": code, "schema": schema})
    return hashlib.sha256(payload.encode()).hexdigest()


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


def run_facts(staged: Sequence[StagedCapture], notices: Sequence[InputNotice], code: str, schema: str) -> RunFacts:
    """What a run is, from its staged captures and the notices about its inputs, parsed by code
    of fingerprint `code` under the contract of fingerprint `schema`."""
    inputs = input_entries(staged)
    counts = [c.counts for c in staged]
    manifest = {
        "pipeline_version": VERSION,
        "inputs": inputs,
        "skipped_inputs": [str(n) for n in notices if n.action == "skipped"],
        "records": sum(c.records for c in counts),
        "rejects": sum(c.rejects for c in counts),
        "code_fingerprint": code,
        "fingerprint": run_fingerprint(inputs, code, schema),
    }
    by_rule: Counter[str] = sum((Counter(c.rejects_by_rule) for c in counts), Counter())
    summary = {
        "records": manifest["records"],
        "rejects": manifest["rejects"],
        "rejects_by_rule": dict(by_rule.most_common()),
        "inputs": inputs,
        "parsed_files": [c.source.name for c in staged if not c.from_cache],
        "cached_files": [c.source.name for c in staged if c.from_cache],
        "warnings": [str(notice) for notice in notices] + input_warnings(counts),
    }
    return RunFacts(manifest, summary)


def too_many_rejects(run: RunFacts, max_reject_rate: float) -> str | None:
    """Why the run must not publish when more than `max_reject_rate` of its records were
    rejected; None otherwise."""
    records, rejects = run.records, run.rejects
    if not records or rejects / records <= max_reject_rate:
        return None
    return f"{rejects} of {records} records rejected ({rejects / records:.1%} > {max_reject_rate:.1%})"


def up_to_date(run: RunFacts, latest_fingerprint: str | None, force: bool, max_reject_rate: float) -> bool:
    """True when latest already holds what this run would publish (same inputs, code and
    contract) and the run need not publish: not forced, and not refused for its rejects."""
    return not force and latest_fingerprint == run.fingerprint and too_many_rejects(run, max_reject_rate) is None


def empty_first_version(parent_id: str | None, papers: int) -> str | None:
    """Why a version must not be published when it would be the first and hold no paper."""
    if parent_id is not None or papers:
        return None
    return "no input holds a single usable record: a first version without papers is not published"


def too_many_removed(
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
