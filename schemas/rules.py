"""The contract's rules the parser applies: why a record is rejected, the score scale (no pandera)."""

from __future__ import annotations

from enum import StrEnum

SCORE_RANGE = (0, 100)  # the aggregator's score scale; the normaliser rejects records outside it


class RejectRule(StrEnum):
    """Why a record (or a group of stray lines) was rejected: the `rule` column of `rejects`."""

    STRAY_LINES = "stray_lines"  # lines that belong to no record
    TRUNCATED_RECORD = "truncated_record"  # a header without its title/author line or abstract
    OVERSIZED_RECORD = "oversized_record"  # a line, title or author past its size limit
    INVALID_ENCODING = "invalid_encoding"  # a line that is not UTF-8
    NO_AUTHOR_SPLIT = "no_author_split"  # no boundary between title and authors reads as names
    SCORE_OUT_OF_RANGE = "score_out_of_range"
    INVALID_AUTHOR = "invalid_author"  # an author with no letter or digit
    UNKNOWN_CATEGORY = "unknown_category"
    INVALID_DATE = "invalid_date"
    FUTURE_DATE = "future_date"
    DUPLICATE_PAPER = "duplicate_paper"  # listed twice in one capture (the first is kept)


# Rejects that carry no record header: a capture of nothing else has no records at all.
HEADERLESS_RULES = frozenset({RejectRule.STRAY_LINES})
