"""Realistic N-paper listings from real arXiv papers (titles, author lists and abstracts).

The first 20,108 papers are the real ones of ``tests/data/abstracts_20k.jsonl.gz`` as they are;
past them, titles, author lists and abstract sentences of real papers are recombined, and every
abstract gets a distinct sentence mix (a per-paper cache must not hide the cost of rendering).
About 15% of real abstracts hold LaTeX, and so do the synthetic ones.

Run: ``.venv/bin/python -m benchmarks.generate 200000 /tmp/listing_2026-11-26.txt``; a later capture of
1,000 papers none of them holds: ``... 1000 /tmp/listing_2026-11-27.txt --seed 7 --skip 200000``.
The output depends only on N, the seed and the corpus: two runs write the same bytes.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import TextIO

from benchmarks.render import SLUGS, suffix_of
from pipeline.parse.listing import MONTHS

ABSTRACTS_20K = Path(__file__).resolve().parent.parent / "tests" / "data" / "abstracts_20k.jsonl.gz"
CAPTURE = date(2026, 11, 26)
# A sentence ends at ". " before a capital; never inside "$...$" (checked when cutting).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def load_abstract_records(path: Path = ABSTRACTS_20K) -> list[dict]:
    """The 20,108 real papers: id, title, authors (all), category and abstract."""
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def _sentences(abstract: str) -> list[str]:
    """The abstract's sentences, keeping any that would cut a `$...$` span whole."""
    parts: list[str] = []
    for piece in _SENTENCE_END.split(abstract):
        if parts and parts[-1].count("$") % 2 == 1:
            parts[-1] += " " + piece
        else:
            parts.append(piece)
    return parts


def papers(count: int, seed: int = 20261126, skip: int = 0) -> Iterator[dict]:
    """Papers number `skip` to `count - 1`: the real ones first, then recombinations with distinct
    abstracts. With `skip` past the real ones, none of them is the same paper as one of a listing
    of `skip` papers (each synthetic title holds its number), whatever the seed."""
    real = load_abstract_records()
    yield from real[skip:count]
    rng = random.Random(seed)
    sentences = [s for r in real for s in _sentences(r["abstract"])]
    for i in range(max(len(real), skip), count):
        t, a = real[rng.randrange(len(real))], real[rng.randrange(len(real))]
        body = [sentences[rng.randrange(len(sentences))] for _ in range(rng.randint(4, 9))]
        # A sentence naming the paper's number keeps every abstract distinct.
        body.insert(rng.randrange(len(body) + 1), f"We report {i:,} trials in total.")
        yield {
            "id": f"synthetic-{i}",
            "title": f"{t['title']} ({i})",
            "authors": a["authors"],
            "category": t["category"],
            "abstract": " ".join(body),
        }


SPAN_DAYS = 600  # papers are published within this many days before the capture


def record_lines(paper: dict, rng: random.Random, capture: date, span_days: int = SPAN_DAYS) -> tuple[str, str, str]:
    """The three listing lines of one paper: header, title glued to authors, abstract."""
    authors = paper["authors"]
    shown = ", ".join(authors[:3]) + (" et al." if len(authors) > 3 else "")
    published = capture - timedelta(days=rng.randrange(span_days))
    score = f"{rng.uniform(50, 99.9):.1f}" if rng.random() < 0.15 else ""
    day = f"{MONTHS[published.month - 1]} {published.day}"
    when = day if published.year == capture.year and rng.random() < 0.5 else f"{day}, {published.year}"
    code = "Code" if rng.random() < 0.2 else ""
    slugs = rng.sample(SLUGS, rng.randint(1, 2)) if rng.random() < 0.2 else []
    second = paper["title"] + shown + (" · " + ", ".join(slugs) if slugs else "")
    return f"{score}{suffix_of(paper['category'])}{when}{code}", second, paper["abstract"]


def write_listing(
    count: int, out: TextIO, seed: int = 20261126, capture: date = CAPTURE, skip: int = 0, span_days: int = SPAN_DAYS
) -> int:
    """Write a listing of `count` papers, from paper number `skip` on, published within `span_days`
    before the capture, to `out`; return the number of bytes written (UTF-8)."""
    rng = random.Random(seed + 1)
    written = 0
    for paper in papers(skip + count, seed, skip):
        block = "\n".join(record_lines(paper, rng, capture, span_days)) + "\n"
        out.write(block)
        written += len(block.encode("utf-8"))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int, help="papers in the listing")
    parser.add_argument("path", type=Path, help="file to write (its name should hold the capture date)")
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument(
        "--skip", type=int, default=0,
        help="start at paper number K: no paper of a listing of K papers is among them, since the first "
        "20,108 (the real ones) are the same whatever the seed (a new capture for a refresh; default: 0)",
    )  # fmt: skip
    parser.add_argument(
        "--span-days", type=int, default=SPAN_DAYS,
        help="papers are published within this many days before the capture: a backfill of years of "
        "listings is ~10,000 (default: %(default)s)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    with args.path.open("w", encoding="utf-8", newline="\n") as out:
        size = write_listing(args.count, out, args.seed, skip=args.skip, span_days=args.span_days)
    print(f"wrote {args.count:,} papers, {size / 1e6:.1f} MB, to {args.path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
