"""LaTeX rendering speed on the 20,108 real abstracts: `abstract_text` vs pylatexenc and vs the earlier approach.

`abstract_text` (uncached) is timed against pylatexenc on the whole abstract (`latex_to_text`) and against the
earlier approach (pylatexenc on the runs of words that hold LaTeX), with the share and cost of each of its paths.
It must give exactly `latex_to_text`: checked on every abstract of the timed runs (the run fails otherwise).
pylatexenc takes about 80 s a pass over the corpus, so it is timed once unless ``--whole-repeat`` says
otherwise; the others are the best of ``--repeat`` passes.

Run: ``.venv/bin/python -m benchmarks.abstract_speed [--repeat 3] [--whole-repeat 1]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import pylatexenc

from benchmarks.generate import ABSTRACTS_20K, load_abstract_records
from pipeline.parse.latex import abstract_text, by_runs, fast_latex_to_text, has_latex, latex_to_text


def timed(render: Callable[[str], str], abstracts: list[str], repeat: int) -> tuple[float, list[str]]:
    """Best seconds per abstract over `repeat` passes, and the texts of the last pass."""
    best = float("inf")
    texts: list[str] = []
    for _ in range(repeat):
        start = time.perf_counter()
        texts = [render(a) for a in abstracts]
        best = min(best, time.perf_counter() - start)
    return best / len(abstracts), texts


def line(label: str, seconds: float, runs: str) -> str:
    return f"{label:<48} {seconds * 1e6:9.1f} µs per abstract {1 / seconds:>10,.0f}/s  ({runs})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="passes for abstract_text and the per-run approach")
    parser.add_argument("--whole-repeat", type=int, default=1, help="passes for pylatexenc on whole abstracts")
    args = parser.parse_args()
    abstracts = [paper["abstract"] for paper in load_abstract_records()]
    uncached = abstract_text.__wrapped__  # the memo would make every pass after the first free

    fast = [fast_latex_to_text(a) for a in abstracts]
    no_sign = [a for a in abstracts if not has_latex(a)]
    rendered = [a for a, f in zip(abstracts, fast, strict=True) if f is not None and has_latex(a)]
    fallback = [a for a, f in zip(abstracts, fast, strict=True) if f is None]

    new, new_texts = timed(uncached, abstracts, args.repeat)
    old, old_texts = timed(by_runs, abstracts, args.repeat)
    whole, whole_texts = timed(latex_to_text, abstracts, args.whole_repeat)
    new_differ = sum(a != b for a, b in zip(new_texts, whole_texts, strict=True))
    old_differ = sum(a != b for a, b in zip(old_texts, whole_texts, strict=True))

    print(
        f"{len(abstracts):,} real abstracts ({ABSTRACTS_20K.name}), {sum(map(len, abstracts)) / len(abstracts):,.0f} "
        f"characters on average; pylatexenc {pylatexenc.__version__}"
    )
    print(
        f"abstract_text's paths: {len(no_sign):,} no LaTeX sign (re-spaced), {len(rendered):,} fast renderer, "
        f"{len(fallback):,} pylatexenc (what the fast renderer is not sure of)"
    )
    print(line("pylatexenc on the whole abstract (latex_to_text)", whole, f"best of {args.whole_repeat}"))
    print(line("earlier abstract_text (pylatexenc on LaTeX runs)", old, f"best of {args.repeat}"))
    print(line("abstract_text (fast paths, uncached)", new, f"best of {args.repeat}"))
    for label, subset in (("  of which: no LaTeX sign", no_sign), ("  of which: fast renderer", rendered)):
        seconds, _ = timed(uncached, subset, args.repeat)
        print(line(f"{label} ({len(subset):,})", seconds, f"best of {args.repeat}"))
    if fallback:
        seconds, _ = timed(uncached, fallback, 1)
        print(line(f"  of which: pylatexenc ({len(fallback):,})", seconds, "1 pass"))
    print(
        f"speed-up: {old / new:.1f}x over the earlier abstract_text, {whole / new:.0f}x over pylatexenc; "
        f"differing from pylatexenc on the whole abstract: abstract_text {new_differ}, earlier {old_differ}"
    )
    if new_differ:
        raise SystemExit(f"abstract_text differs from pylatexenc on {new_differ} abstracts")


if __name__ == "__main__":
    main()
