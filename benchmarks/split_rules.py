"""What each splitter rule does: records whose split changes when the rule is switched off.

Run: ``.venv/bin/python -m benchmarks.split_rules``. For each rule and each real corpus (see
`benchmarks.split_accuracy`), the rule is replaced by its "off" form, both corpora are split
again, and the records whose (title, authors) change are counted: how many of them the rule gets
right (it fixes them) and how many wrong (it breaks them).

``--shapes`` glues invented author lists of each name shape (``SHAPES``) to every distinct real
title and counts the titles each is split wrongly after: where a shape's rule costs a title its
end, and where a title end leaves the shape unread (an acronym, a formula).

``--lexicon CSV`` splits with another given-name lexicon than the package's (a CSV with a
``name`` column): one built from the other corpus alone (``benchmarks.given_names --from``), so
that a corpus is not measured with names taken from itself, or a maintained name list.
"""

from __future__ import annotations

import argparse
import csv
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.render import synthetic_records
from benchmarks.split_accuracy import corpora, parse_rendered
from pipeline.parse import split
from pipeline.parse.listing import ParsedRecord

Outputs = dict[int, tuple[tuple[str, tuple[str, ...]], bool]]


def _without(matcher: Callable[..., Any], new: str, old: str) -> Callable[..., Any]:
    """`matcher` (a compiled pattern's match) with the pattern text `new` put back to `old`."""
    pattern: re.Pattern[str] = matcher.__self__  # type: ignore[attr-defined]
    assert new in pattern.pattern, new
    return re.compile(pattern.pattern.replace(new, old)).match


_NAME_MATCHERS = ("_word_head", "_first_token", "_next_token")
# rule → (attribute of pipeline.parse.split, its "off" replacement), or a list of such pairs
RULES: dict[str, Any] = {
    "a compound given name read whole when the lexicon holds both halves (AmirHossein)": (
        "_given_compound_start", lambda segment, start, strict, end: None,
    ),
    "a block of 4-5 initials after a lower-case title end (MSVPJ Sathvik)": ("_caps_block", lambda head: None),
    "a lexicon given name with a stray second capital after a plain word end (CHengtang)": (
        "_stray_capital", lambda head: None,
    ),
    "capitals with a full stop inside a name (Martin JJ. Bucher)": ("_caps_dot", lambda token: None),
    "abbreviated given names open a name (MD. Sagor Chowdhury)": ("NAME_ABBREVIATIONS", frozenset()),
    "a particle glued on without its apostrophe (Claudia dAmato)": ("_bare_particle", lambda token: None),
    "Dela as an inner-capital prefix (Miguel A. DelaCruz)": [
        (m, _without(getattr(split, m), "|Dela", "")) for m in _NAME_MATCHERS
    ],
    "a next syllable of a romanised compound holds a vowel (CoT + Le is no CoTLe)": [
        (m, _without(getattr(split, m), "[aeiouy]{1,3}|[AEOU][aeiouy]{0,3})", "|[AEOU])[aeiouy]{0,3}"))
        for m in ("_first_token", "_next_token")
    ],
    "a LaTeX line break at a name's end is no title text (Aakur\\\\)": (
        "looks_like_author", lambda name, _on=split.looks_like_author: not name.endswith("\\") and _on(name),
    ),
    "organisation words in capitals (FANAR TEAM)": (
        "is_org_word", lambda t: t in split.ORG_WORDS or (t.islower() and t.capitalize() in split.ORG_WORDS),
    ),
    "words of an organisation with a number or one capital (Team Hunyuan3D, SAM 3D Team)": (
        "_org_part", lambda token: None,
    ),
    "an organisation opening in two letters after a lower-case title end (InSpatio Team)": (
        "_org_token_short", lambda head: None,
    ),
    "an organisation word glued on opens an author (OpenAI, DeepSeek-AI, KimiTeam)": (
        "_org_suffixed", lambda head: None,
    ),
    "a registry name's first word opens an organisation (MiniMax)": ("signing_names", lambda: frozenset()),
    "compound name words read whole (TehraniNasab; JuneHyoung with a co-author written so)": (
        "_chosen_boundary", lambda segment, found, others: found[0],
    ),
    "a punctuation-only entry (:) is an entry": ("_stray_mark", lambda name: None),
    "organisation words in lower case (GigaChat team)": ("is_org_word", lambda t: t in split.ORG_WORDS),
    "AI and Seed are organisation words": ("ORG_WORDS", split.ORG_WORDS - {"AI", "Seed"}),
}  # fmt: skip
CACHED: tuple[Callable[..., Any], ...] = (
    split.is_name_token, split.is_first_name_token, split.looks_like_author, split._is_glued, split._author_cost,
)  # fmt: skip


def outputs(records: list[dict]) -> Outputs:
    """Per header line: the split (title, authors), or a reject, and whether it is exact."""
    truth, parsed = parse_rendered(records)
    result: Outputs = {}
    for t in truth:
        got = parsed.get(t.source_line)
        split_ = (got.split.title, got.split.authors) if isinstance(got, ParsedRecord) else ("(rejected)", ())
        result[t.source_line] = (split_, split_ == (t.title, t.authors))
    return result


# Invented author lists, one per shape a rule reads (none of them from a corpus).
SHAPES: dict[str, list[str]] = {
    "plain": ["Jane Doe", "Kim Lee"],
    "an initial": ["J. Doe", "Kim Lee"],
    "a compound given name (lexicon)": ["KarimReza Tavan", "Jane Doe"],
    "a team, a number in its name": ["ORCA 4D Team", "Jane Doe"],
    "a team, Team first": ["Team Lumina2D"],
    "a team, one capital": ["Kappa Cloud X Team"],
    "a team, two-letter opening": ["InVista Team", "Jane Doe"],
    "a team, in capitals": ["ZEPHYR TEAM", "Jane Doe"],
    "a stray capital": ["PEdro Olsen", "Jane Doe"],
    "MD.": ["MD. Tolan Rasheed", "Jane Doe"],
    "a block of initials": ["RKVNP Sudharan", "Jane Doe"],
    "JJ. inside": ["Pedro KK. Alvez", "Jane Doe"],
    "Dela": ["Pablo B. DelaRosa", "Jane Doe"],
    "a bare d": ["Marta dOrsini", "Jane Doe"],
}


def shape_misses(titles: list[str]) -> dict[str, int]:
    """Per shape of `SHAPES`: how many of `titles` its author list glued on is split wrongly after."""
    misses = {}
    for shape, authors in SHAPES.items():
        wrong = 0
        for title in titles:
            got = split.split_title_authors(title + ", ".join(authors))
            wrong += not (isinstance(got, split.Split) and (got.title, got.authors) == (title, tuple(authors)))
        misses[shape] = wrong
    return misses


def _clear_caches() -> None:
    for function in CACHED:
        function.cache_clear()  # type: ignore[attr-defined]


def use_lexicon(path: Path) -> None:
    """Split with the given names of the CSV at `path` in place of the package's lexicon."""
    with path.open(encoding="utf-8") as handle:
        names = frozenset(row["name"] for row in csv.DictReader(handle))
    split.given_names = lambda: names  # type: ignore[assignment]
    _clear_caches()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lexicon", type=Path, help="a CSV of given names (column `name`) to split with")
    parser.add_argument("--exact", action="store_true", help="print only each corpus's exact share")
    parser.add_argument("--shapes", action="store_true", help="invented names of each shape after every real title")
    parser.add_argument(
        "--recombined", type=int, default=0, metavar="N",
        help="also N records of real titles glued to other papers' real author lists (new title ends "
        "meet new name starts: where a rule that reads more as a name breaks titles)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.lexicon:
        use_lexicon(args.lexicon)
    corpus = corpora()
    if args.shapes:
        titles = sorted({r["title"] for records in corpus.values() for r in records})
        for shape, wrong in shape_misses(titles).items():
            share = 100 * wrong / len(titles)
            print(f"{shape}: split wrongly after {wrong} of {len(titles):,} real titles ({share:.2f}%)")
        return
    if args.recombined:
        both = [r for records in corpus.values() for r in records]
        corpus[f"{args.recombined:,} recombined"] = list(synthetic_records(both, args.recombined))
    final = {name: outputs(records) for name, records in corpus.items()}
    for name, got in final.items():
        exact = sum(ok for _, ok in got.values())
        print(f"{name}: {exact}/{len(got)} exact = {100 * exact / len(got):.3f}% ({len(got) - exact} misses)")
    if args.exact:
        return
    for rule, change in RULES.items():
        pairs = change if isinstance(change, list) else [change]
        on = {attribute: getattr(split, attribute) for attribute, _ in pairs}
        for attribute, off in pairs:
            setattr(split, attribute, off)
        _clear_caches()
        try:
            for name, records in corpus.items():
                without = outputs(records)
                changed = [line for line, (got, _) in without.items() if got != final[name][line][0]]
                right = sum(final[name][line][1] for line in changed)
                print(f"{rule} | {name}: {len(changed)} records change; with the rule {right} right, "
                      f"{len(changed) - right} wrong")  # fmt: skip
        finally:
            for attribute, value in on.items():
                setattr(split, attribute, value)
            _clear_caches()


if __name__ == "__main__":
    main()
