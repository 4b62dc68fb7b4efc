"""The listing parser: record boundaries, tolerated formatting, and every rejection rule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.parse.listing import (
    HEADER,
    MAX_ABSTRACT_CHARS,
    MAX_TITLE_CHARS,
    RAW_LINE_PREVIEW_CHARS,
    RECORD_SPAN_LINES,
    ParsedRecord,
    Reject,
    clean_lines,
    clip,
    decode_listing,
    is_header,
    parse_listing,
)

GOOD = (
    "87.4LGMar 12\n"
    "Matching Features, Not Tokens: Energy-Based Fine-Tuning of Language ModelsSamy Jelassi, Mujin Kwun, "
    "Rosie Zhao et al.\n"
    "Cross-entropy (CE) training provides dense supervision.\n"
)
SECOND = (
    "CLSep 11, 2023Code\n"
    "Textbooks Are All You Need IIYuanzhi Li, Sébastien Bubeck · microsoft-research\n"
    "Abstract two.\n"
)


def parse(text: str) -> list[ParsedRecord | Reject]:
    return list(parse_listing(text))


def test_header_fields() -> None:
    (record,) = parse(GOOD)
    assert isinstance(record, ParsedRecord)
    assert (record.score, record.category_suffix, record.month, record.day, record.year) == (87.4, "LG", 3, 12, None)
    assert not record.has_code
    assert record.split.authors == ("Samy Jelassi", "Mujin Kwun", "Rosie Zhao")
    assert record.split.authors_truncated
    assert record.abstract == "Cross-entropy (CE) training provides dense supervision."


@pytest.mark.parametrize(
    ("header", "suffix", "year", "code"),
    [
        ("CLSep 11, 2023Code", "CL", 2023, True),
        ("MAMar 3, 2024", "MA", 2024, False),
        ("mes-hallJan 2", "mes-hall", None, False),
        ("quant-phDec 31, 2025", "quant-ph", 2025, False),
        ("91.0LGMar 10", "LG", None, False),
    ],
)
def test_header_shapes(header: str, suffix: str, year: int | None, code: bool) -> None:
    m = HEADER.match(header)
    assert m is not None
    assert (m["suffix"], int(m["year"]) if m["year"] else None, m["code"] is not None) == (suffix, year, code)


def test_crlf_bom_blank_lines_and_trailing_spaces_are_tolerated() -> None:
    messy = "\ufeff" + GOOD.replace("\n", "  \r\n") + "\r\n\r\n" + SECOND.replace("\n", "\t\r\n")
    clean = parse(GOOD + SECOND)
    got = parse(messy)
    assert [r.split for r in got] == [r.split for r in clean]  # type: ignore[union-attr]
    assert got[1].source_line == 6  # two blank lines were skipped
    assert got[1].split.affiliations == ("microsoft-research",)  # type: ignore[union-attr]


def test_truncated_record_costs_only_itself() -> None:
    text = "CLMar 1, 2024\nA lonely title without abstractAnn Lee\n" + GOOD
    first, second = parse(text)
    assert isinstance(first, Reject)
    assert first.rule == "truncated_record"
    assert first.source_line == 1
    assert "abstract" in first.reason
    assert isinstance(second, ParsedRecord)
    assert second.source_line == 3


def test_header_at_end_of_file_is_truncated() -> None:
    (*_, last) = parse(GOOD + "LGMar 3, 2024\n")
    assert isinstance(last, Reject)
    assert last.rule == "truncated_record"
    assert "title/author line and abstract" in last.reason


def test_lines_before_the_first_header_are_stray() -> None:
    first, second = parse("Some page chrome\nLogin\n" + GOOD)
    assert isinstance(first, Reject)
    assert (first.rule, first.source_line, first.raw) == ("stray_lines", 1, "Some page chrome\nLogin")
    assert isinstance(second, ParsedRecord)


def test_broken_header_rejects_its_block_and_resynchronises() -> None:
    broken = "LG March twelfth\nSome TitleAnn Lee\nAbstract.\n"
    first, second = parse(broken + GOOD)
    assert isinstance(first, Reject)
    assert first.rule == "stray_lines"
    assert first.raw.startswith("LG March twelfth")
    assert isinstance(second, ParsedRecord)


def test_extra_lines_after_an_abstract_are_rejected_not_merged() -> None:
    record, extra = parse(GOOD.rstrip("\n") + "\nan abstract continuation\n")
    assert isinstance(record, ParsedRecord)
    assert isinstance(extra, Reject)
    assert (extra.rule, extra.source_line) == ("stray_lines", 4)


def test_title_line_without_authors_is_rejected() -> None:
    (record,) = parse("CLMar 1, 2024\nan all lower case title with no author\nAbstract.\n")
    assert isinstance(record, Reject)
    assert record.rule == "no_author_split"
    assert record.raw.splitlines()[1] == "an all lower case title with no author"


def test_every_line_is_accounted_for() -> None:
    text = "chrome\n" + GOOD + "CLMar 1, 2024\n" + SECOND + "trailing junk\n"
    items = parse(text)
    assert sorted(i.source_line for i in items) == [1, 2, 5, 6, 9]


LINES = st.one_of(
    st.sampled_from(
        [
            "87.4LGMar 12",
            "CLSep 11, 2023Code",
            "XXFeb 30, 2024",
            "",
            "   ",
            "\ufeff",
            "Some TitleAnn Lee, Bo Chen et al. · openai",
            "no authors here",
            "An abstract with 5% and $x$.",
        ]
    ),
    st.text(max_size=40),
)


@given(st.lists(LINES, max_size=30), st.sampled_from(["\n", "\r\n"]))
def test_every_non_blank_line_ends_in_exactly_one_output(lines: list[str], newline: str) -> None:
    text = newline.join(lines)
    items = list(parse_listing(text))
    covered = 0
    for item in items:
        if isinstance(item, ParsedRecord):
            covered += 3
        else:
            assert item.rule
            assert item.reason
            covered += item.raw.count("\n") + 1
    expected = sum(1 for _, line in clean_lines(text) if line.strip())
    assert covered == expected
    assert [i.source_line for i in items] == sorted({i.source_line for i in items})


# --- hostile input: size limits, encodings, header-less files ---------------------------------


@pytest.mark.parametrize(
    ("record", "what"),
    [
        ("LGMar 1, 2024\nA TitleAnn Lee\n" + "$x^2$ " * (MAX_ABSTRACT_CHARS // 6 + 1) + "\n", "abstract"),
        ("LGMar 1, 2024\n" + "Title " * 170 + "StudyAnn Lee\n" + "A long abstract. " * 500 + "\n", "title"),
        ("LGMar 1, 2024\nA Title" + "Ann Lee, " * 5_000 + "Bo Chen\nAbstract.\n", "title/author line"),
        ("LGMar 1, 2024\n" + "Title " * (MAX_TITLE_CHARS // 6) + "StudyAnn Lee\nAbstract.\n", "title"),
        ("LGMar 1, 2024\nA TitleAnn " + "Lee-" * 100 + "Lee\nAbstract.\n", "author"),
    ],
)
def test_oversized_records_are_rejected_with_their_raw_text_clipped(record: str, what: str) -> None:
    items = parse(record + GOOD)
    first, second = items
    assert isinstance(first, Reject)
    assert first.rule == "oversized_record"
    assert f"its {what} has" in first.reason
    assert max(len(line) for line in first.raw.split("\n")) < 1_100  # previews, not whole lines
    assert isinstance(second, ParsedRecord)  # the next record is unaffected


def test_clip_keeps_short_lines_and_notes_the_length_of_long_ones() -> None:
    assert clip("short") == "short"
    clipped = clip("x" * 50_000)
    assert clipped.startswith("x" * RAW_LINE_PREVIEW_CHARS)
    assert clipped.endswith("[truncated: 50,000 characters in all]")


def test_a_huge_line_is_never_read_as_a_header() -> None:
    assert not is_header("a" * 5_000 + "Mar 3")
    assert is_header("mes-hallJan 2")


def test_a_file_without_headers_counts_its_lines_as_lost_records() -> None:
    """A file of 30 header-less lines is 10 lost records, not 1, so the reject rate sees it."""
    items = parse("\n".join(f"line {n}" for n in range(30)))
    assert [i.rule for i in items] == ["stray_lines"] * 10  # type: ignore[union-attr]
    assert [i.source_line for i in items] == list(range(1, 31, 3))


def test_decode_listing_salvages_the_utf8_lines() -> None:
    good = b"LGMar 1, 2024\nA Study of GraphsAnn Lee\nAbstract.\n"
    latin1 = "LGMar 2, 2024\nVision ModelsJosé Núñez\nAbstract.\n".encode("latin-1")
    text, undecodable = decode_listing(good + latin1 + good.replace(b"Mar 1", b"Mar 3"))
    assert undecodable == frozenset({5})
    first, second, third = parse_listing(text, undecodable)
    assert isinstance(first, ParsedRecord)
    assert isinstance(third, ParsedRecord)
    assert isinstance(second, Reject)
    assert (second.rule, second.source_line) == ("invalid_encoding", 4)
    assert "line(s) 5 are not valid UTF-8" in second.reason
    assert decode_listing(good) == (good.decode(), frozenset())


def test_every_record_of_a_latin1_file_with_accents_is_its_own_reject() -> None:
    """10,000 records, each with an accent: 10,000 rejects, not one for the whole file."""
    record = "LGMar 2, 2024\nVision Models {n}José Núñez\nAbstract {n}.\n"
    data = "".join(record.format(n=n) for n in range(10_000)).encode("latin-1")
    items = list(parse_listing(*decode_listing(data)))
    assert len(items) == 10_000
    assert {i.rule for i in items} == {"invalid_encoding"}  # type: ignore[union-attr]


@pytest.mark.parametrize("newline", ["\r", "\r\n", "\n"])
def test_every_newline_convention_gives_the_same_records(newline: str) -> None:
    """A capture with old-Mac line ends once parsed as one stray line: 1,000 records lost as one."""
    text = (GOOD + SECOND).replace("\n", newline) * 500
    items = parse(text)
    assert len(items) == 1000
    assert all(isinstance(i, ParsedRecord) for i in items)
    assert items[1].source_line == 4


def test_line_numbers_of_undecodable_lines_follow_the_same_newlines() -> None:
    data = b"LGMar 1, 2024\rA Study of GraphsJos\xe9 Lee\rAbstract.\r" + GOOD.encode()
    (bad, good) = parse_listing(*decode_listing(data))
    assert (bad.rule, bad.source_line) == ("invalid_encoding", 1)  # type: ignore[union-attr]
    assert "line(s) 2 are not valid UTF-8" in bad.reason  # type: ignore[union-attr]
    assert good.source_line == 4


def test_stray_lines_are_grouped_by_line_number_not_by_where_they_start() -> None:
    """Lines 4-6 and 7 are two groups whether a part starts at line 4 or at line 7: a listing read
    in parts rejects its stray lines as it does read whole."""
    whole = parse(GOOD + "one\ntwo\nthree\nfour\n")
    assert [(i.rule, i.source_line) for i in whole[1:]] == [("stray_lines", 4), ("stray_lines", 7)]  # type: ignore[union-attr]
    later = list(parse_listing("four\n", first_line=7))
    assert [(i.source_line, i.raw) for i in later] == [(7, "four")]  # type: ignore[union-attr]
    assert whole[-1] == later[0]
    before_any = parse("four\n" + GOOD)[0]
    assert before_any.reason == later[0].reason  # type: ignore[union-attr]  # one reason, wherever they stand


def test_a_record_takes_its_lines_within_its_span() -> None:
    header, title, abstract = GOOD.splitlines()
    near = "\n".join([header, *[""] * (RECORD_SPAN_LINES - 3), title, abstract])
    assert isinstance(parse(near)[0], ParsedRecord)
    far = "\n".join([header, *[""] * RECORD_SPAN_LINES, title, abstract])
    truncated, stray = parse(far)
    assert (truncated.rule, stray.rule, stray.source_line) == (  # type: ignore[union-attr]
        "truncated_record",
        "stray_lines",
        RECORD_SPAN_LINES + 2,
    )


def test_a_line_given_by_its_start_is_judged_and_shown_by_its_full_length() -> None:
    header, title, _ = GOOD.splitlines()
    start = "y" * (MAX_ABSTRACT_CHARS + 2)
    (record,) = parse_listing(f"{header}\n{title}\n{start}\ufffd\n", line_lengths={3: 7_000_000})
    assert isinstance(record, Reject)
    assert (record.rule, record.reason) == (
        "oversized_record",
        "its abstract has 7,000,000 characters, over the limit of 10,000",
    )
    assert record.raw.endswith("[truncated: 7,000,000 characters in all]")
    assert clip("z" * 20, limit=5, length=90) == "zzzzz… [truncated: 90 characters in all]"
