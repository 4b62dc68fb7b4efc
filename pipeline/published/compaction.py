"""Compaction: past a threshold, runs of whole generations merged into one; nothing any version reads changes.

The rule (`compaction_runs`) is a pure function of a table's file list; a run is rewritten into the
generation of its first file (so that the table keeps its order and every newer row still wins),
holding only the rows that are still the table's. The files it replaces stay for the versions that
list them, until retention lets them go.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby

from pipeline import settings
from pipeline.published.manifest import DataFile


@dataclass(frozen=True, slots=True)
class Run:
    """Files of consecutive whole generations to rewrite as one, and why."""

    files: tuple[DataFile, ...]
    reason: str  # "small files" or "superseded rows"

    @property
    def generation(self) -> int:
        """The generation the rewritten files take: that of the run's first file."""
        return self.files[0].generation


def compaction_runs(
    files: Sequence[DataFile],
    live_rows: int,
    *,
    small_bytes: int | None = None,
    max_small: int | None = None,
    max_superseded: float | None = None,
) -> list[Run]:
    """What to compact of a table stored in `files` (in generation order) whose live rows are
    `live_rows`:

    - when more than `max_superseded` of its stored rows are superseded by newer ones, all of it;
    - else, once more than `max_small` of its files belong to small generations (under
      `small_bytes` in all), each run of two or more consecutive small generations.

    The thresholds default to `pipeline.settings`' (SMALL_GENERATION_BYTES, MAX_SMALL_FILES,
    MAX_SUPERSEDED_SHARE).
    """
    small_bytes = settings.SMALL_GENERATION_BYTES if small_bytes is None else small_bytes
    max_small = settings.MAX_SMALL_FILES if max_small is None else max_small
    max_superseded = settings.MAX_SUPERSEDED_SHARE if max_superseded is None else max_superseded
    stored = sum(f.rows for f in files)
    if stored and (stored - live_rows) / stored > max_superseded:
        return [Run(tuple(files), "superseded rows")]
    generations = [tuple(group) for _, group in groupby(files, key=lambda f: f.generation)]
    small = [sum(f.bytes for f in g) < small_bytes for g in generations]
    if sum(len(g) for g, is_small in zip(generations, small, strict=True) if is_small) <= max_small:
        return []
    runs: list[Run] = []
    current: list[tuple[DataFile, ...]] = []
    for group, is_small in [*zip(generations, small, strict=True), ((), False)]:
        if is_small:
            current.append(group)
            continue
        if len(current) >= 2:
            runs.append(Run(tuple(f for g in current for f in g), "small files"))
        current = []
    return runs
