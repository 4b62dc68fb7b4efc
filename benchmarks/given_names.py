"""Builds the given-name lexicon (``pipeline/refdata/given_names.csv``) from the real corpora the project ships.

A given-name token is a word of a person's listed name before the family name (``Amir`` and
``Hossein`` of ``Amir Hossein Safdarian``; both halves of ``Hsiao-Yuan`` and of a compound written
as one word, ``AmirHossein``), seen in at least `MIN_PEOPLE` distinct names. A word that titles of
the same corpora use in lower case (``long``, ``young``, ``max``) is left out: the splitter reads
a lexicon word glued to a title end as part of a name, so a title word must never be one.

Run: ``.venv/bin/python -m benchmarks.given_names`` (rewrites the CSV; the output depends only on
the corpora). ``--from real|abstracts`` builds it from one corpus only, for measuring the split
on the other (``benchmarks.split_rules --lexicon``).
"""

from __future__ import annotations

import argparse
import csv
import io
import re
from collections.abc import Iterable
from pathlib import Path

from benchmarks.generate import load_abstract_records
from benchmarks.render import load_records
from pipeline.parse.normalize import is_organization
from pipeline.parse.split import PARTICLES

LEXICON = Path(__file__).resolve().parent.parent / "pipeline" / "refdata" / "given_names.csv"
MIN_PEOPLE = 2  # distinct listed names a word must be a given name in
# A name word: a capital, then lower-case letters (a given name has three letters or more).
_PARTS = re.compile(r"[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ]+")
_TITLE_WORD = re.compile(r"[^\W\d_]+")


def given_words(name: str) -> list[str]:
    """The given-name words of one listed person name (none for an organisation or one word)."""
    tokens = name.split()
    if len(tokens) < 2 or is_organization(name):
        return []
    words = []
    for token in tokens[:-1]:
        if token.lower() in PARTICLES:
            break  # the family name starts at a particle (Ludwig van Beethoven)
        for piece in token.split("-"):
            parts = _PARTS.findall(piece)
            if "".join(parts) != piece:
                continue  # not name words alone: an initial (J.), capitals (JJ), digits
            words.extend(p for p in parts if len(p) >= 3)
    return words


def lexicon(records: Iterable[dict], min_people: int = MIN_PEOPLE) -> dict[str, int]:
    """Given-name word → distinct listed names it is a given name in, for words in at least
    `min_people` names and never a lower-case word of a title."""
    records = list(records)
    people: dict[str, set[str]] = {}
    for record in records:
        for name in record["authors"]:
            for word in given_words(" ".join(name.split())):
                people.setdefault(word, set()).add(name)
    lower_title_words = {w for r in records for w in _TITLE_WORD.findall(r["title"]) if w.islower()}
    return {
        w: len(names)
        for w, names in sorted(people.items())
        if len(names) >= min_people and w.lower() not in lower_title_words
    }


def corpus(name: str) -> list[dict]:
    """The records of one corpus (`real`: the 9,010; `abstracts`: the 20,108) or of both."""
    chosen = {"real": load_records, "abstracts": load_abstract_records}
    if name == "both":
        return [r for load in chosen.values() for r in load()]
    return chosen[name]()


def lexicon_csv(words: dict[str, int]) -> str:
    """The lexicon as the CSV the package reads: name, people."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["name", "people"])
    writer.writerows(words.items())
    return out.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--from", dest="source", choices=["both", "real", "abstracts"], default="both")
    parser.add_argument("--out", type=Path, default=LEXICON)
    args = parser.parse_args(argv)
    words = lexicon(corpus(args.source))
    args.out.write_text(lexicon_csv(words), encoding="utf-8")
    print(f"{len(words):,} given-name words from the {args.source} corpora → {args.out}")


if __name__ == "__main__":
    main()
