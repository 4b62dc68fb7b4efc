"""What the staged layer holds of one capture: where its tables are, and what it counts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.raw.sources import Source


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


@dataclass(frozen=True, slots=True)
class StagedCapture:
    """One capture in the staged layer: its key there, and what it holds."""

    source: Source
    key: str
    sha256: str
    parts: int
    counts: CaptureCounts
    from_cache: bool
    note: str | None = None
