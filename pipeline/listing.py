"""Pure listing parser: text of a captured listing → parsed records and rejects."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pipeline.split import Split, split_title_authors

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# [score] suffix date [Code]: "87.4LGMar 12", "CLSep 11, 2023Code", "quant-phJan 2, 2024".
# The suffix is matched lazily so that "MAMar 3" gives suffix MA, date Mar 3.
HEADER = re.compile(
    r"(?P<score>\d{1,3}(?:\.\d+)?)?"
    r"(?P<suffix>[A-Za-z][A-Za-z.-]*?)"
    rf"(?P<month>{'|'.join(MONTHS)})\s(?P<day>\d{{1,2}})(?:,\s?(?P<year>\d{{4}}))?"
    r"(?P<code>\s?Code)?\Z"
)


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A record exactly as found: its three lines and where it starts (1-based)."""

    source_line: int
    header: str
    title_line: str
    abstract: str


@dataclass(frozen=True, slots=True)
class ParsedRecord:
    """The fields of one record, still as listed (no dates, codes or ids yet)."""

    source_line: int
    score: float | None
    category_suffix: str
    month: int
    day: int
    year: int | None
    has_code: bool
    title: str
    authors: tuple[str, ...]
    authors_truncated: bool
    affiliations: tuple[str, ...]
    split_ambiguous: bool
    abstract: str
    raw: str  # the record's lines as found, for a reject raised after parsing


@dataclass(frozen=True, slots=True)
class Reject:
    """A record (or stray block of lines) that could not be used, with a rule code and a reason."""

    source_line: int
    rule: str
    reason: str
    raw: str


def clean_lines(text: str) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, line) with BOM, CR and trailing spaces removed."""
    if text.startswith("\ufeff"):
        text = text[1:]
    for number, line in enumerate(text.split("\n"), start=1):
        yield number, line.rstrip(" \t\r\u00a0")


def is_header(line: str) -> bool:
    """True when `line` has the shape of a record header."""
    return HEADER.match(line) is not None


def raw_records(lines: Iterable[tuple[int, str]]) -> Iterator[RawRecord | Reject]:
    """Group lines into three-line records, resynchronising on every header.

    Blank lines are skipped. Lines before the first header or after a record's abstract are
    rejected as one block each (rule ``stray_lines``); a header followed by fewer than two lines
    before the next header is rejected as ``truncated_record``.
    """
    block: list[tuple[int, str]] = []

    def flush() -> Iterator[RawRecord | Reject]:
        if not block:
            return
        first, head = block[0]
        raw = "\n".join(text for _, text in block)
        if not is_header(head):
            yield Reject(
                first,
                "stray_lines",
                f"{len(block)} line(s) do not belong to any record: no header "
                "('[score]SUFFIXMon D[, YYYY][Code]') precedes them",
                raw,
            )
        elif len(block) < 3:
            missing = "title/author line and abstract" if len(block) == 1 else "abstract"
            yield Reject(first, "truncated_record", f"the record ends after its header: no {missing}", raw)
        else:
            yield RawRecord(first, head, block[1][1], block[2][1])
            if len(block) > 3:
                yield Reject(
                    block[3][0],
                    "stray_lines",
                    f"{len(block) - 3} extra line(s) after the abstract of the record at line "
                    f"{first}: a record has exactly three lines",
                    "\n".join(text for _, text in block[3:]),
                )
        block.clear()

    for number, line in lines:
        if not line.strip():
            continue
        if is_header(line):
            yield from flush()
        block.append((number, line))
    yield from flush()


def parse_record(raw: RawRecord) -> ParsedRecord | Reject:
    """Parse one raw record's header and title/author line; the abstract is kept as listed."""
    m = HEADER.match(raw.header)
    if m is None:  # raw_records only builds records on header lines
        raise ValueError(f"line {raw.source_line} is not a header: {raw.header!r}")
    split = split_title_authors(raw.title_line)
    if not isinstance(split, Split):
        return Reject(raw.source_line, split.rule, split.reason, _raw_text(raw))
    return ParsedRecord(
        source_line=raw.source_line,
        score=float(m["score"]) if m["score"] else None,
        category_suffix=m["suffix"],
        month=MONTHS.index(m["month"]) + 1,
        day=int(m["day"]),
        year=int(m["year"]) if m["year"] else None,
        has_code=m["code"] is not None,
        title=split.title,
        authors=split.authors,
        authors_truncated=split.authors_truncated,
        affiliations=split.affiliations,
        split_ambiguous=split.ambiguous,
        abstract=raw.abstract.strip(),
        raw=_raw_text(raw),
    )


def _raw_text(raw: RawRecord) -> str:
    return "\n".join((raw.header, raw.title_line, raw.abstract))


def parse_listing(text: str) -> Iterator[ParsedRecord | Reject]:
    """Parse a whole listing, record by record, in line order."""
    for item in raw_records(clean_lines(text)):
        yield item if isinstance(item, Reject) else parse_record(item)
