"""Render paper records into the listing format, the way the aggregator page shows them."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from pipeline.parse.listing import MONTHS

REAL_RECORDS = Path(__file__).resolve().parent.parent / "tests" / "data" / "real_records.jsonl"
SLUGS = ("openai", "microsoft-research", "uw", "stanford", "cmu", "mila", "berkeley", "acme-lab", "kaist")


@dataclass(frozen=True, slots=True)
class Rendered:
    """One record as rendered, with the truth the parser must give back."""

    source_line: int
    title: str
    authors: tuple[str, ...]
    authors_truncated: bool
    affiliations: tuple[str, ...]
    lines: tuple[str, str, str]


def load_records(path: Path = REAL_RECORDS) -> list[dict]:
    """The real arXiv records (title + full author list), one dict per paper."""
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def suffix_of(code: str) -> str:
    """What the listing shows for an arXiv code: cs.LG → LG, cond-mat.mes-hall → mes-hall, hep-ph → hep-ph."""
    return code.split(".", 1)[1] if "." in code else code


def render_record(
    title: str, authors: Sequence[str], category: str, published: date, capture: date, rng: random.Random, line: int
) -> Rendered:
    """Render one paper: sometimes a score (then the year is left out when it is the capture year),
    a Code badge or affiliation slugs."""
    shown = tuple(authors[:3])
    truncated = len(authors) > 3
    score = f"{rng.uniform(50, 99.9):.1f}" if rng.random() < 0.15 else ""
    day = f"{MONTHS[published.month - 1]} {published.day}"
    when = day if published.year == capture.year and rng.random() < 0.5 else f"{day}, {published.year}"
    code = "Code" if rng.random() < 0.2 else ""
    affiliations = tuple(rng.sample(SLUGS, rng.randint(1, 2))) if rng.random() < 0.2 else ()
    second = title + ", ".join(shown) + (" et al." if truncated else "")
    if affiliations:
        second += " · " + ", ".join(affiliations)
    header = f"{score}{suffix_of(category)}{when}{code}"
    abstract = f"We study {title[:40]}. Results improve by 5% on $O(n)$ tasks."
    return Rendered(line, title, shown, truncated, affiliations, (header, second, abstract))


def render_listing(records: Sequence[dict], capture: date, seed: int = 7) -> tuple[str, list[Rendered]]:
    """A whole listing of `records`, and the truth for every record (keyed by header line)."""
    rng = random.Random(seed)
    rendered = []
    for i, record in enumerate(records):
        published = min(date.fromisoformat(record["date"]), capture)
        rendered.append(
            render_record(record["title"], record["authors"], record["category"], published, capture, rng, 3 * i + 1)
        )
    text = "\n".join(line for r in rendered for line in r.lines) + "\n"
    return text, rendered


def synthetic_records(base: Sequence[dict], count: int, seed: int = 11) -> Iterator[dict]:
    """`count` synthetic papers: real titles and real author lists recombined at random."""
    rng = random.Random(seed)
    start = date(2024, 1, 1)
    for i in range(count):
        t = base[rng.randrange(len(base))]
        a = base[rng.randrange(len(base))]
        yield {
            "title": f"{t['title']} {i}" if rng.random() < 0.5 else t["title"],
            "authors": a["authors"],
            "category": t["category"],
            "date": (start + timedelta(days=rng.randrange(700))).isoformat(),
        }
