"""LaTeX rendering of abstracts: pylatexenc on the whole abstract vs `abstract_text` (only the
LaTeX-bearing runs), on the 50 real abstracts of the sample. Both give the same text.

Run: ``.venv/bin/python -m benchmarks.abstract_speed [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

from pipeline.normalize import abstract_text, latex_to_text

GOLD = Path(__file__).resolve().parent.parent / "tests" / "data" / "gold_2026-11-26.jsonl"


def per_abstract_ms(render: Callable[[str], str], abstracts: list[str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for abstract in abstracts:
            render(abstract)
        best = min(best, time.perf_counter() - start)
    return 1000 * best / len(abstracts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    abstracts = [json.loads(line)["abstract"] for line in GOLD.read_text(encoding="utf-8").splitlines()]
    uncached = abstract_text.__wrapped__  # the memo would make every repeat after the first free
    assert all(uncached(a) == latex_to_text(a) for a in abstracts)
    whole = per_abstract_ms(latex_to_text, abstracts, args.repeat)
    runs = per_abstract_ms(uncached, abstracts, args.repeat)
    print(f"{len(abstracts)} abstracts, {sum(map(len, abstracts)) / len(abstracts):.0f} characters on average")
    print(f"pylatexenc on the whole abstract: {whole:.2f} ms per abstract ({1000 / whole:,.0f}/s)")
    print(f"abstract_text (LaTeX runs only):  {runs:.2f} ms per abstract ({1000 / runs:,.0f}/s)")
    print(f"speed-up: {whole / runs:.1f}x, same output")


if __name__ == "__main__":
    main()
