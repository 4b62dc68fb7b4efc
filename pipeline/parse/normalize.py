"""Pure normalisers: dates, categories, author names, organisations, abstracts and stable ids."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache, lru_cache

from anyascii import anyascii

from pipeline.parse.latex import abstract_text, latex_to_text  # noqa: F401 (latex_to_text: re-exported)
from pipeline.parse.listing import ParsedRecord, Reject
from pipeline.parse.reference import Reference, load_reference
from pipeline.parse.split import PARTICLES, is_org_word
from schemas.rules import SCORE_RANGE, RejectRule

# Rule for suffixes shared by several archives (CV = cs.CV or math.CV): the first archive of
# this list wins. The listing is a machine-learning aggregator, so computer science and
# statistics come first, then the other archives in the order of their arXiv submission volume.
ARCHIVE_PREFERENCE = (
    "cs", "stat", "eess", "math", "econ", "q-fin", "q-bio", "astro-ph", "nlin", "cond-mat", "physics",
)  # fmt: skip
GENERATIONAL = frozenset({"Jr.", "Jr", "Sr.", "Sr", "II", "III", "IV"})
MAX_YEARS_BACK = 8  # Feb 29 can be up to 8 years back (1896 → 1904); no listing shows older
# The dates a listing can hold: arXiv began in 1991, and readers' timestamp types (pandas'
# datetime64[ns]) end in 2262. A capture date outside them is not used; a published date before
# them is an `invalid_date` reject, one after the capture date a `future_date` one.
EARLIEST_DATE = date(1991, 1, 1)
LATEST_CAPTURE_DATE = date(2199, 12, 31)


def plausible_capture_date(value: date) -> bool:
    """True for a capture date the dataset can hold (see EARLIEST_DATE)."""
    return EARLIEST_DATE <= value <= LATEST_CAPTURE_DATE


class NormalizationError(ValueError):
    """A value that cannot be normalised; carries the reject rule code."""

    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(reason)
        self.rule = rule
        self.reason = reason


@dataclass(frozen=True, slots=True)
class AuthorName:
    """An author as published: display form, folded key and name parts."""

    author_id: str
    name: str
    name_key: str
    given_name: str | None
    family_name: str | None
    is_organization: bool


@dataclass(frozen=True, slots=True)
class NormalizedPaper:
    """One normalised record while its chunk is built: its row of the staged ``papers`` table
    (keyed by that table's column names), and its authors and organisations in listed order."""

    row: dict[str, object]
    authors: tuple[tuple[str, AuthorName], ...]  # (name as listed, normalised author)
    organizations: tuple[str, ...]

    @property
    def paper_id(self) -> str:
        """The paper's stable id."""
        return str(self.row["paper_id"])


# ---------------------------------------------------------------------------------------------
# Dates


def published_date(month: int, day: int, year: int | None, as_of: date) -> tuple[date, bool]:
    """The listed date as a `date`, and whether its year was inferred.

    A year-less date takes the latest year that puts it on or before `as_of`
    (captured 2026-01-03, ``Dec 30`` → 2025-12-30). Raises NormalizationError for a date that
    does not exist, lies before arXiv began (EARLIEST_DATE) or after the capture date.
    """
    value, inferred = _calendar_date(month, day, year, as_of)
    if value < EARLIEST_DATE:
        raise NormalizationError(
            RejectRule.INVALID_DATE, f"{value.isoformat()} is before arXiv began ({EARLIEST_DATE.year})"
        )
    return value, inferred


def _calendar_date(month: int, day: int, year: int | None, as_of: date) -> tuple[date, bool]:
    if year is not None:
        try:
            value = date(year, month, day)
        except ValueError as exc:
            raise NormalizationError(
                RejectRule.INVALID_DATE, f"{year:04d}-{month:02d}-{day:02d} is not a calendar date ({exc})"
            ) from None
        if value > as_of:
            raise NormalizationError(
                RejectRule.FUTURE_DATE, f"published {value.isoformat()} is after the capture date {as_of}"
            )
        return value, False
    for candidate_year in range(as_of.year, as_of.year - MAX_YEARS_BACK - 1, -1):
        try:
            value = date(candidate_year, month, day)
        except ValueError:
            continue
        if value <= as_of:
            return value, True
    raise NormalizationError(
        RejectRule.INVALID_DATE, f"month {month} day {day} is not a calendar date in any recent year"
    )


# ---------------------------------------------------------------------------------------------
# Categories


def category_code(suffix: str, reference: Reference) -> tuple[str, bool]:
    """The canonical arXiv code for a listed suffix, and whether the preference rule chose it.

    Accepts a suffix (``LG``, ``mes-hall``) or a full code (``cs.LG``, ``quant-ph``). Aliases
    resolve to their canonical code (``cs.NA`` → ``math.NA``, ``q-fin.EC`` → ``econ.GN``).
    """
    categories = reference.categories
    if suffix in categories:
        candidates: tuple[str, ...] = (suffix,)
    elif suffix in reference.suffixes:
        candidates = reference.suffixes[suffix]
    else:
        raise NormalizationError(
            RejectRule.UNKNOWN_CATEGORY, f"the subject suffix {suffix!r} is not in the arXiv taxonomy"
        )

    def canonical(code: str) -> str:
        return categories[code].alias_of or code if code in categories else code

    distinct = sorted({canonical(c) for c in candidates})
    if len(distinct) == 1:
        return distinct[0], False

    def rank(code: str) -> tuple[int, str]:
        archive = categories[code].archive if code in categories else code.split(".")[0]
        order = ARCHIVE_PREFERENCE.index(archive) if archive in ARCHIVE_PREFERENCE else 99
        return order, code

    return canonical(min(candidates, key=rank)), True


# ---------------------------------------------------------------------------------------------
# Authors


def _short_hash(prefix: str, text: str) -> str:
    return prefix + hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


def display_name(listed: str) -> str:
    """The display form: NFC, single spaces; diacritics and case kept."""
    return " ".join(unicodedata.normalize("NFC", listed).split())


_APOSTROPHES = re.compile(r"['`]")
# An apostrophe with a stray space after it (O' Neill): the key is that of O'Neill.
_APOSTROPHE_SPACE = re.compile(r"(?<=[a-z])['`]\s+(?=[a-z])")
_NOT_WORD = re.compile(r"[^a-z0-9]+")


def fold(text: str) -> str:
    """A folded matching key: transliterated to ASCII (Ł→L, ß→ss), lower-case, words only.

    Apostrophes vanish (d'Ascoli → dascoli); every other non-alphanumeric character separates
    words, so "J.P. Hague", "J. P. Hague", "J-P Hague" and "J.~P. Hague" share one key.
    """
    return _key_words(_ascii_lower(text))


def _ascii_lower(text: str) -> str:
    return anyascii(unicodedata.normalize("NFKC", text)).lower()


def _key_words(ascii_text: str) -> str:
    return " ".join(_NOT_WORD.sub(" ", _APOSTROPHES.sub("", ascii_text)).split())


@cache
def _registry_names() -> frozenset[str]:
    return frozenset(org.name for org in load_reference().organizations.values())


def name_key(name: str) -> str:
    """An author's matching key: `fold`, with a stray space after an apostrophe dropped first
    (O' Neill → oneill, as O'Neill). Titles keep `fold` alone: there a quote closes a word."""
    return _key_words(_APOSTROPHE_SPACE.sub("'", _ascii_lower(name)))


def is_organization(name: str) -> bool:
    """True for collaboration and organisation authors: a name of the organisation registry
    (Preferred Networks), one with an organisation word (The BABAR Collaboration, Gemma Team,
    Essential AI, GigaChat team), or one word with two capitals or more (NVIDIA, OpenAI,
    DeepSeek-AI, KimiTeam)."""
    tokens = name.split()
    if name in _registry_names() or any(is_org_word(t) for t in tokens):
        return True
    return len(tokens) == 1 and sum(ch.isupper() for ch in name) >= 2 and "." not in name


def _person_parts(name: str) -> tuple[str | None, str]:
    """(given, family) of a person's display name.

    The family name is the last word with any lower-case particles before it
    (``Stéphane d'Ascoli`` → d'Ascoli, ``Ludwig van Beethoven`` → van Beethoven) and any
    generational suffix after it (``Jr.``). A single-word person is all family name.
    """
    tokens = name.split()
    suffix: list[str] = []
    while len(tokens) > 1 and tokens[-1] in GENERATIONAL:
        suffix.insert(0, tokens.pop())
    if len(tokens) == 1:
        return None, " ".join(tokens + suffix)
    start = len(tokens) - 1
    while start > 1 and tokens[start - 1].lower() in PARTICLES and tokens[start - 1].islower():
        start -= 1
    return " ".join(tokens[:start]), " ".join(tokens[start:] + suffix)


# Bounded: a worker's memory must not grow with the names it has seen (~1 KB per entry).
@lru_cache(maxsize=1 << 16)
def author_name(listed: str) -> AuthorName:
    """Normalise one listed author; computed once per distinct spelling."""
    name = display_name(listed)
    key = name_key(name)
    organization = is_organization(name)
    given, family = (None, None) if organization else _person_parts(name)
    return AuthorName(_short_hash("a_", key), name, key, given, family, organization)


def paper_id(title: str, first_author_key: str) -> str:
    """Stable paper id from the folded title and the first author's key.

    Whitespace, case, punctuation and diacritics do not change it.
    """
    return _short_hash("p_", fold(title) + "\x1f" + first_author_key)


# ---------------------------------------------------------------------------------------------
# Records


def normalize_record(record: ParsedRecord, as_of: date, reference: Reference) -> NormalizedPaper:
    """One parsed record → one normalised paper; raises NormalizationError with a rule code.

    Every value-level check of the published contract is made here, record by record, so that a
    bad value costs its record (a reject) and never fails the validation of the whole dataset.
    """
    low, high = SCORE_RANGE
    if record.score is not None and not low <= record.score <= high:
        raise NormalizationError(RejectRule.SCORE_OUT_OF_RANGE, f"the score {record.score:g} is outside {low}–{high}")
    published, inferred = published_date(record.month, record.day, record.year, as_of)
    category, ambiguous = category_code(record.category_suffix, reference)
    split = record.split
    authors = tuple((listed, author_name(listed)) for listed in split.authors)
    for listed, author in authors:
        if not author.name_key:
            raise NormalizationError(
                RejectRule.INVALID_AUTHOR, f"the author {listed!r} has no letter or digit to identify them by"
            )
    title = display_name(split.title)
    row: dict[str, object] = {
        "paper_id": paper_id(title, authors[0][1].name_key),
        "title": title,
        "published": published,
        "published_year_inferred": inferred,
        "category": category,
        "category_suffix": record.category_suffix,
        "category_ambiguous": ambiguous,
        "has_code": record.has_code,
        "score": record.score,
        "authors_truncated": split.authors_truncated,
        "author_split_ambiguous": split.ambiguous,
        "abstract": record.abstract,
        "abstract_text": abstract_text(record.abstract),
        "source_line": record.source_line,
    }
    return NormalizedPaper(row, authors, split.affiliations)


def normalize_listing(
    items: Iterable[ParsedRecord | Reject],
    as_of: date,
    reference: Reference,
    earlier: Mapping[str, int] | None = None,
) -> Iterator[NormalizedPaper | Reject]:
    """Normalise a parsed listing: papers and rejects (each with its rule), in line order.

    A paper listed twice in the same capture is kept at its first line; the repeat becomes a
    ``duplicate_paper`` reject so that nothing disappears silently. `earlier` names papers
    already listed before this part of the capture (paper id → line), when a capture is
    normalised in parts.
    """
    first_line: dict[str, int] = dict(earlier or {})
    for item in items:
        if isinstance(item, Reject):
            yield item
            continue
        try:
            paper = normalize_record(item, as_of, reference)
        except NormalizationError as err:
            yield Reject(item.source_line, err.rule, err.reason, item.raw)
            continue
        if paper.paper_id in first_line:
            yield Reject(
                item.source_line,
                RejectRule.DUPLICATE_PAPER,
                f"same title and first author as the paper at line {first_line[paper.paper_id]}",
                item.raw,
            )
            continue
        first_line[paper.paper_id] = item.source_line
        yield paper
