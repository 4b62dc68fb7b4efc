"""Title/author split accuracy on two real corpora rendered as listings, and parser speed.

The corpora: 9,010 arXiv records of all fields and years (``tests/data/real_records.jsonl``) and
20,108 arXiv papers of 2025–26 with full author lists (``tests/data/abstracts_20k.jsonl.gz``).

Run: ``make bench-split`` or ``.venv/bin/python -m benchmarks.split_accuracy [--synthetic N]``.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from datetime import date

from benchmarks.generate import load_abstract_records
from benchmarks.render import Rendered, load_records, render_listing, synthetic_records
from pipeline.parse.listing import ParsedRecord, Reject, parse_listing
from pipeline.parse.normalize import normalize_listing
from pipeline.parse.reference import load_reference

CAPTURE = date(2026, 11, 26)


def dated_records(papers: list[dict]) -> list[dict]:
    """Papers of the 20k corpus as `render_listing` takes them: a date from the arXiv id
    (``2503.11787`` → 2025-03-01) and whitespace collapsed in titles and names, as a listing shows them."""
    records = []
    for paper in papers:
        yymm = paper["id"][:4]
        published = date(2000 + int(yymm[:2]), int(yymm[2:]), 1) if yymm.isdigit() else CAPTURE
        title = " ".join(paper["title"].split())
        authors = [" ".join(a.split()) for a in paper["authors"]]
        records.append(
            {"title": title, "authors": authors, "category": paper["category"], "date": published.isoformat()}
        )
    return records


def corpora() -> dict[str, list[dict]]:
    """The real corpora the split is measured on, by name."""
    return {"9,010 arXiv records": load_records(), "20,108 papers of 2025-26": dated_records(load_abstract_records())}


def miss_cause(truth: Rendered, got: ParsedRecord | Reject | None) -> str:
    """A short label for why a record was not split exactly."""
    if got is None:
        return "record lost"
    if isinstance(got, Reject):
        return f"rejected: {got.rule}"
    split = got.split
    if split.authors_truncated != truth.authors_truncated:
        return "et-al flag wrong"
    if len(split.authors) != len(truth.authors):
        return "wrong number of authors (a comma-split title or author)"
    if truth.title.startswith(split.title):
        return "boundary too early (end of title read as author)"
    if split.title.startswith(truth.title):
        return "boundary too late (start of author read as title)"
    return "other"


def parse_rendered(records: list[dict]) -> tuple[list[Rendered], dict[int, ParsedRecord | Reject]]:
    """Render `records` as one listing and parse it: (truth, parsed items by header line)."""
    text, truth = render_listing(records, CAPTURE)
    return truth, {item.source_line: item for item in parse_listing(text)}


def split_accuracy(records: list[dict]) -> tuple[int, list[tuple[Rendered, ParsedRecord | Reject | None]]]:
    """(exact count, misses) of the real parser on `records` rendered as one listing."""
    truth, parsed = parse_rendered(records)
    exact = 0
    misses = []
    for t in truth:
        got = parsed.get(t.source_line)
        if (
            isinstance(got, ParsedRecord)
            and got.split.title == t.title
            and got.split.authors == t.authors
            and got.split.authors_truncated == t.authors_truncated
            and got.split.affiliations == t.affiliations
        ):
            exact += 1
        else:
            misses.append((t, got))
    return exact, misses


def records_per_second(text: str, repeat: int = 1) -> tuple[int, float]:
    """(records parsed, seconds) for `parse_listing` over `text`."""
    best = float("inf")
    count = 0
    for _ in range(repeat):
        start = time.perf_counter()
        count = sum(1 for _ in parse_listing(text))
        best = min(best, time.perf_counter() - start)
    return count, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--synthetic", type=int, default=1_000_000, help="records in the synthetic listing (0: skip)")
    parser.add_argument("--show", type=int, default=40, help="misses to print")
    args = parser.parse_args()

    for name, records in corpora().items():
        exact, misses = split_accuracy(records)
        print(f"{name}: {exact}/{len(records)} exact = {100 * exact / len(records):.2f}%")
        _, parsed = parse_rendered(records)
        flagged = {line for line, item in parsed.items() if isinstance(item, ParsedRecord) and item.split.ambiguous}
        flagged_misses = sum(1 for t, _ in misses if t.source_line in flagged)
        print(f"  flagged author_split_ambiguous: {len(flagged)} ({flagged_misses} of the {len(misses)} misses)")
        for cause, n in Counter(miss_cause(t, g) for t, g in misses).most_common():
            print(f"  {n:4d}  {cause}")
        for t, g in misses[: args.show]:
            got = f"{g.split.title[-30:]!r} | {g.split.authors}" if isinstance(g, ParsedRecord) else repr(g)[:120]
            print(f"  - want {t.title[-30:]!r} | {t.authors}\n    got  {got}")

    for name, records in corpora().items():
        text, _ = render_listing(records, CAPTURE)
        n, seconds = records_per_second(text, repeat=3)
        print(f"parser speed, {name}: {n} records in {seconds:.3f} s = {n / seconds:,.0f} records/s (best of 3)")
    items = list(parse_listing(text))
    start = time.perf_counter()
    list(normalize_listing(items, CAPTURE, load_reference()))
    seconds = time.perf_counter() - start
    print(f"normaliser speed (dates, codes, names, LaTeX, ids) on the {name}: {len(items) / seconds:,.0f} records/s")
    if args.synthetic:
        synthetic = list(synthetic_records(load_records(), args.synthetic))
        text, _ = render_listing(synthetic, CAPTURE)
        n, seconds = records_per_second(text)
        print(f"parser speed, synthetic: {n:,} records in {seconds:.1f} s = {n / seconds:,.0f} records/s")


if __name__ == "__main__":
    main()
