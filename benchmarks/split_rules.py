"""What each splitter rule of issue 11 does: records whose split changes when the rule is switched off.

Run: ``.venv/bin/python -m benchmarks.split_rules``. For each rule and each real corpus (see
`benchmarks.split_accuracy`), the rule is replaced by its "off" form, both corpora are split
again, and the records whose (title, authors) change are counted: how many of them the rule gets
right (it fixes them) and how many wrong (it breaks them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.split_accuracy import corpora, parse_rendered
from pipeline.parse import split
from pipeline.parse.listing import ParsedRecord

Outputs = dict[int, tuple[tuple[str, tuple[str, ...]], bool]]

# rule → (attribute of pipeline.parse.split, its "off" replacement)
RULES: dict[str, tuple[str, Any]] = {
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


def _clear_caches() -> None:
    for function in CACHED:
        function.cache_clear()  # type: ignore[attr-defined]


def main() -> None:
    corpus = corpora()
    final = {name: outputs(records) for name, records in corpus.items()}
    for rule, (attribute, off) in RULES.items():
        on = getattr(split, attribute)
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
            setattr(split, attribute, on)
            _clear_caches()


if __name__ == "__main__":
    main()
