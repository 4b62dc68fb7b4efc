"""Test helpers: generated listing records, the one source of a raw folder, a listing scanned into
its parts, and a source staged and read back."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.parse.listing import ParsedRecord, Reject, decode_listing, parse_listing
from pipeline.parse.tables import STAGED_TABLES
from pipeline.raw.scan import Chunk, each_chunk, read_part, scan
from pipeline.raw.sources import Source, find_listings
from pipeline.settings import DEFAULT_CHUNK_BYTES
from pipeline.staged.capture import StagedCapture
from pipeline.staged.stage import no_meter, stage_sources
from pipeline.staged.store import local_entry
from pipeline.storage import LocalStorage
from tests.conftest import SAMPLE

# The sample's 50 real records, each three lines.
RECORDS = [
    "\n".join(lines) + "\n" for lines in zip(*[iter(SAMPLE.read_text(encoding="utf-8").splitlines())] * 3, strict=True)
]
_SCORE = re.compile(r"^[0-9]+(\.[0-9]+)?")


def variant(record: str, kind: int) -> str:
    """One of a record's editions: as listed (0), with another abstract (1), another score and a
    Code badge (2), its organisations dropped or one added (3), an author spelled with a diacritic (4)."""
    header, line, abstract = record.rstrip("\n").split("\n")
    if kind == 1:
        abstract += " Revised."
    elif kind == 2:
        header = "12.5" + _SCORE.sub("", header)
        header = header if header.endswith("Code") else header + "Code"
    elif kind == 3:
        line = line.split(" · ")[0] if " · " in line else line + " · openai"
    elif kind == 4:
        names = line.split(" · ")[0]
        cut = max(names.rfind(","), 0)
        line = line[:cut] + line[cut:].replace("e", "é", 1)
    return f"{header}\n{line}\n{abstract}\n"


def record(n: int) -> str:
    """The n-th of a run of distinct, well-formed records (three lines)."""
    return f"LGMar {1 + n % 28}, 2025\nStudy Number {n} of GraphsAnn Lee, Bo Chen\nAbstract of study {n}: $x^{n}$.\n"


def only_source(raw: Path) -> Source:
    """The one listing a raw folder holds, with its local file to read."""
    (source,) = find_listings(LocalStorage(raw), None).sources
    return source.with_local_copy(raw / "unused")


@dataclass(frozen=True)
class Scanned:
    """A listing read once: its sha256, size and the parts it is parsed in."""

    sha256: str
    size_bytes: int
    chunks: tuple[Chunk, ...]


def scan_listing(source: Source, chunk_bytes: int) -> Scanned:
    """A listing scanned as staging scans it, its parts (of about `chunk_bytes`) collected."""
    chunks: list[Chunk] = []
    sha256, size = each_chunk(scan(source, chunk_bytes), chunks.append)
    return Scanned(sha256, size, tuple(chunks))


def parse_in_parts(source: Source, chunk_bytes: int) -> list[ParsedRecord | Reject]:
    """A listing scanned in parts of about `chunk_bytes`, each read and parsed as a worker does."""
    items: list[ParsedRecord | Reject] = []
    for chunk in scan_listing(source, chunk_bytes).chunks:
        part = read_part(source, chunk)
        text, undecodable = decode_listing(part.data, chunk.first_line)
        items += parse_listing(text, undecodable | part.undecodable, chunk.first_line, part.line_lengths)
    return items


def stage(
    source: Source, staged: Path, workers: int = 1, chunk_bytes: int = DEFAULT_CHUNK_BYTES, refresh: bool = False
) -> StagedCapture:
    """One source staged into the staged folder `staged`."""
    (capture,) = stage_sources([source], LocalStorage(staged), refresh, workers, chunk_bytes, no_meter,
                               staged.parent / "cache")  # fmt: skip
    return capture


def staged_files(capture: StagedCapture, staged: Path) -> dict[str, list[Path]]:
    """A staged capture's files, verified, by staged table, in line order."""
    return local_entry(LocalStorage(staged), capture.key, staged.parent / "cache").files


def contents(capture: StagedCapture, staged: Path) -> dict[str, pa.Table]:
    """A staged capture's tables, its parts concatenated in line order."""
    files = staged_files(capture, staged)
    return {t: pa.concat_tables([pq.read_table(f) for f in files[t]]) for t in STAGED_TABLES}
