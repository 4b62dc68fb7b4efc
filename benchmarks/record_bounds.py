"""Worst-case time and memory of ONE record at the size limits of pipeline/listing.py, on hostile inputs.

Run: ``.venv/bin/python -m benchmarks.record_bounds [--limit-s 20] [--repeat 3]`` (about a minute).

Every shape is built at exactly MAX_ABSTRACT_CHARS (abstracts) or MAX_TITLE_LINE_CHARS (title/author
lines) and timed through the real pure functions: `abstract_text` (uncached) and `latex_to_text` on
the whole abstract, `split_title_authors` (its lru caches cleared before each run), and a full
`chunk_tables` (parse, normalise, staged tables) on a one-record listing, also with lines 10x over
the limit (rejected as
``oversized_record`` before any splitting or rendering). Each measurement runs in a forked child
that is killed past ``--limit-s`` seconds, so a pathological shape is reported as "> N s" instead
of hanging the benchmark. Peak memory is tracemalloc's peak for one extra run. The worst shapes
are then timed at 25%, 50% and 100% of the limit to show how the cost grows.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import math
import multiprocessing as mp
import random
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from multiprocessing.connection import Connection
from pathlib import Path
from types import ModuleType

import pylatexenc

from pipeline.parse import normalize, split
from pipeline.parse.listing import MAX_ABSTRACT_CHARS, MAX_TITLE_LINE_CHARS
from pipeline.parse.normalize import abstract_text, latex_to_text
from pipeline.parse.reference import Reference, load_reference
from pipeline.parse.split import Split, split_title_authors
from pipeline.parse.tables import chunk_tables

ROOT = Path(__file__).resolve().parent.parent
GOLD = ROOT / "tests" / "data" / "gold_2026-11-26.jsonl"
REAL_ABSTRACTS = ROOT / "tests" / "data" / "abstracts_20k.jsonl.gz"
CAPTURE = date(2026, 11, 26)
HEADER = "CLAug 8, 2025"
PLAIN_TITLE_LINE = "Adversarial Inputs at the Size LimitsAnn Lee, Bo Chen, Carla Diaz et al. · acme-lab"
PLAIN_ABSTRACT = "We study plain abstracts with $x^2$ and \\textbf{bold} words. " * 4
SLOW_S = 1.0  # a record slower than this at the limits is worth fixing
OVER_FACTOR = 10  # "over the limit" inputs are this many times the limit
SCALES = (0.25, 0.5, 1.0)
WORST_FOR_SCALING = 3

Builder = Callable[[int], str]


# ---------------------------------------------------------------------------------------------
# Inputs


def fit(unit: str, size: int) -> str:
    """`unit` repeated and cut to exactly `size` characters."""
    return (unit * (size // len(unit) + 1))[:size]


def solid(text: str) -> str:
    """`text` with a trailing space replaced, so that stripping the line keeps its length."""
    return text[:-1] + "x" if text and text[-1].isspace() else text


def _real_abstract() -> str:
    """The real abstract with the most LaTeX signs (20k real abstracts if present, else the sample's)."""
    if REAL_ABSTRACTS.exists():
        with gzip.open(REAL_ABSTRACTS, "rt", encoding="utf-8") as handle:
            abstracts = [json.loads(line)["abstract"] for line in handle]
    else:
        abstracts = [json.loads(line)["abstract"] for line in GOLD.read_text(encoding="utf-8").splitlines()]
    return max(abstracts, key=lambda a: sum(a.count(c) for c in "\\$^_{}"))


def _random_printable(size: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < size:
        ch = chr(rng.randrange(0x20, 0x3000))
        if ch.isprintable():
            out.append(ch)
    return solid("".join(out))


def _nested_frac(size: int) -> str:
    depth = size // 10  # "\frac{" (6) ... "}{y}" (4) per level
    return "\\frac{" * depth + "x" * (size - 10 * depth) + "}{y}" * depth


def _real_repeated(size: int) -> str:
    return solid(fit(" ".join(_REAL[0].split()) + " ", size))


_REAL: list[str] = []  # loaded once by main(), before any child is forked

ABSTRACT_SHAPES: dict[str, Builder] = {
    "inline math $x^{2}_{i} + ...$": lambda n: "$" + fit("x^{2}_{i} + ", n - 2) + "$",
    "$a$ pairs": lambda n: solid(fit("$a$ ", n)),
    "nested braces {{{...}}}": lambda n: "{" * (n // 2) + "}" * (n - n // 2),
    "unbalanced { at start": lambda n: "{" + solid(fit("word ", n - 1)),
    "unclosed $ at start": lambda n: "$" + solid(fit("x + y ", n - 1)),
    "glued macros \\alpha\\beta": lambda n: fit("\\alpha\\beta\\gamma", n),
    "spaced macros \\alpha \\beta": lambda n: solid(fit("\\alpha \\beta ", n)),
    "backslash runs \\\\\\\\\\\\": lambda n: solid(fit("\\\\\\\\\\\\ ", n)),
    "\\frac{\\frac{...}{y}}{y} nesting": _nested_frac,
    "% ~ -- heavy text": lambda n: solid(fit("a % b ~ c -- d ", n)),
    "\\begin{equation} without end": lambda n: "\\begin{equation} " + solid(fit("x + y = z ", n - 17)),
    'accent macro words \\" \\"': lambda n: solid(fit('\\" ', n)),
    "one-sign words # # #": lambda n: solid(fit("# ", n)),
    "real abstract repeated": _real_repeated,
    "random printable unicode": _random_printable,
}

_NAMES = ("Ann Lee", "Bo Chen", "Carla Diaz", "Dev Patel", "Eva Novak", "Femi Okoro", "Gia Tran", "Hugo Lenz")


def _title_glued(n: int) -> str:
    tail = "learningAnn Lee, Bo Chen"
    return fit("model ", n - len(tail)) + tail


def _slugs(n: int) -> str:
    head = "Robust TitleAnn Lee, Bo Chen"
    return head + solid(fit(" · openai, uw", n - len(head)))


TITLE_SHAPES: dict[str, Builder] = {
    "glued capitals AAAA...": lambda n: "A" * n,
    "alternating case AbAb...": lambda n: fit("Ab", n),
    "comma-separated names, no et al.": lambda n: solid(fit(", ".join(_NAMES), n)),
    "lowercase title glued to a name": _title_glued,
    "many · slugs": _slugs,
    "apostrophe-hyphen runs O'-O'-": lambda n: fit("O'-", n),
    "initials runs A.B.C.D.": lambda n: fit("A.B.C.D.", n),
    "double hyphens Ab--Ab--": lambda n: fit("Ab--", n),
    "initials, bad end A.A.…A.-": lambda n: fit("A.", n - 1) + "-",
    "camel syllables HongSheng": lambda n: fit("HongSheng", n),
}


# ---------------------------------------------------------------------------------------------
# Measured calls: each returns a short description of its result


class _CountingHandler(logging.Handler):
    """Counts pylatexenc's log records instead of printing them (one per bad macro use)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


_LOG = _CountingHandler()


def _clear_caches(*modules: ModuleType) -> None:
    for module in modules:
        for value in vars(module).values():
            if callable(getattr(value, "cache_clear", None)):
                value.cache_clear()


def run_abstract_text(text: str) -> str:
    uncached = getattr(abstract_text, "__wrapped__", abstract_text)
    return f"{len(uncached(text)):,} chars out"


def run_latex_to_text(text: str) -> str:
    return f"{len(latex_to_text(text)):,} chars out"


def run_split(text: str) -> str:
    _clear_caches(split)
    result = split_title_authors(text)
    if isinstance(result, Split):
        return f"split: {len(result.title)}-char title, {len(result.authors)} author(s)"
    return result.rule


def _listing_runner(title_line: str, abstract: str, reference: Reference) -> Callable[[str], str]:
    """A run of `chunk_tables` on one record; its argument is ignored (the record is fixed)."""

    def run(_: str) -> str:
        _clear_caches(split, normalize)
        text = f"{HEADER}\n{title_line}\n{abstract}\n"
        tables = chunk_tables(text, CAPTURE, reference)
        rules = sorted(set(tables["rejects"].column("rule").to_pylist()))
        return f"{tables['papers'].num_rows} paper(s), rejects: {', '.join(rules) or 'none'}"

    return run


# ---------------------------------------------------------------------------------------------
# Measuring in a child that can be killed


@dataclass(frozen=True, slots=True)
class Row:
    """One measured shape: best time of the runs (None when it ran past the limit) and peak memory."""

    function: str
    shape: str
    chars: int
    best_s: float | None
    peak_kib: float | None
    note: str


def _child(run: Callable[[str], str], text: str, repeat: int, conn: Connection) -> None:
    """Time `run(text)` `repeat` times, then once more under tracemalloc; report on `conn`."""
    logger = logging.getLogger("pylatexenc")
    logger.handlers[:] = [_LOG]
    logger.propagate = False
    try:
        note = ""
        for _ in range(repeat):
            _LOG.count = 0
            start = time.perf_counter()
            note = run(text)
            conn.send(("time", time.perf_counter() - start))
        if _LOG.count:
            note += f"; {_LOG.count:,} pylatexenc warnings"
        tracemalloc.start()
        run(text)
        conn.send(("peak", tracemalloc.get_traced_memory()[1]))
        tracemalloc.stop()
        conn.send(("note", note))
    except BaseException as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"[:80]))
    finally:
        conn.close()


def measure(function: str, shape: str, run: Callable[[str], str], text: str, repeat: int, limit_s: float) -> Row:
    """Run `run(text)` in a forked child; a run past `limit_s` seconds stops it ("> limit")."""
    ctx = mp.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(run, text, repeat, send), daemon=True)
    child.start()
    send.close()
    times: list[float] = []
    peak: float | None = None
    note = ""
    # tracemalloc slows Python code down several times: give the memory run more room.
    waits = [limit_s] * repeat + [4 * limit_s, limit_s]
    try:
        for wait in waits:
            if not receive.poll(wait):
                note = f"stopped: a run took > {limit_s:g} s" if len(times) < repeat else "memory run stopped"
                break
            kind, value = receive.recv()
            if kind == "time":
                times.append(value)
            elif kind == "peak":
                peak = value / 1024
            elif kind == "note":
                note = value
            else:
                note = f"error {value}"
                break
    except EOFError:
        note = "child died (crash?)"
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        receive.close()
    best = min(times) if len(times) == repeat else None
    return Row(function, shape, len(text), best, peak, note)


# ---------------------------------------------------------------------------------------------
# Report


def fmt_s(row: Row, limit_s: float) -> str:
    return f"> {limit_s:g}" if row.best_s is None else f"{row.best_s:.4f}"


def print_table(rows: list[Row], limit_s: float) -> None:
    print(f"{'function':<20} {'shape':<46} {'chars':>7} {'best s':>8} {'peak KiB':>9}  result")
    for r in rows:
        peak = "-" if r.peak_kib is None else f"{r.peak_kib:,.0f}"
        print(f"{r.function:<20} {r.shape:<46} {r.chars:>7,} {fmt_s(r, limit_s):>8} {peak:>9}  {r.note}")


def _cost(row: Row) -> float:
    return math.inf if row.best_s is None else row.best_s


def growth(times: list[float | None]) -> str:
    """The exponent k of time ~ size**k between 25% and 100% of the limit, in words."""
    first, last = times[0], times[-1]
    if first is None or last is None:
        return "unknown: a run was stopped (see the time limit)"
    if last < 0.005:
        return "too fast to tell (< 5 ms)"
    k = math.log(last / max(first, 1e-6)) / math.log(SCALES[-1] / SCALES[0])
    word = "linear" if k < 1.4 else "quadratic" if k < 2.4 else "worse than quadratic"
    return f"k ≈ {k:.1f} ({word})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit-s", type=float, default=20.0, help="stop a shape whose one run takes longer")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per shape (the best is shown)")
    args = parser.parse_args()
    limit_s, repeat = args.limit_s, args.repeat
    started = time.perf_counter()
    _REAL.append(_real_abstract())
    reference = load_reference()

    abstracts = {name: build(MAX_ABSTRACT_CHARS) for name, build in ABSTRACT_SHAPES.items()}
    titles = {name: build(MAX_TITLE_LINE_CHARS) for name, build in TITLE_SHAPES.items()}
    for name, text in [*abstracts.items(), *titles.items()]:
        limit = MAX_ABSTRACT_CHARS if name in abstracts else MAX_TITLE_LINE_CHARS
        assert len(text) == limit, (name, len(text))
        assert "\n" not in text, name

    print(
        f"Python {sys.version.split()[0]}, pylatexenc {pylatexenc.__version__}; limits: abstract "
        f"{MAX_ABSTRACT_CHARS:,} chars, title/author line {MAX_TITLE_LINE_CHARS:,} chars; "
        f"best of {repeat} runs, a run stopped past {limit_s:g} s\n"
    )
    rows: list[Row] = []
    for name, text in abstracts.items():
        rows.append(measure("abstract_text", name, run_abstract_text, text, repeat, limit_s))
        rows.append(measure("latex_to_text", name, run_latex_to_text, text, repeat, limit_s))
    for name, text in titles.items():
        rows.append(measure("split_title_authors", name, run_split, text, repeat, limit_s))

    def worst(function: str, count: int) -> list[Row]:
        return sorted((r for r in rows if r.function == function), key=_cost, reverse=True)[:count]

    # Whole records: the worst abstracts behind a plain title line, the worst title lines before a
    # plain abstract, then the worst of each 10x over its limit.
    worst_abstract = [r.shape for r in worst("abstract_text", 2)]
    worst_title = [r.shape for r in worst("split_title_authors", 2)]
    whole = [(f"abstract {s}", PLAIN_TITLE_LINE, abstracts[s]) for s in worst_abstract]
    whole += [(f"title {s}", titles[s], PLAIN_ABSTRACT) for s in worst_title]
    over_abstract = ABSTRACT_SHAPES[worst_abstract[0]](OVER_FACTOR * MAX_ABSTRACT_CHARS)
    over_title = TITLE_SHAPES[worst_title[0]](OVER_FACTOR * MAX_TITLE_LINE_CHARS)
    whole += [
        (f"{OVER_FACTOR}x abstract {worst_abstract[0]}", PLAIN_TITLE_LINE, over_abstract),
        (f"{OVER_FACTOR}x title {worst_title[0]}", over_title, PLAIN_ABSTRACT),
    ]
    for label, title_line, abstract in whole:
        run = _listing_runner(title_line, abstract, reference)
        row = measure("chunk_tables", label, run, "", repeat, limit_s)
        rows.append(Row(row.function, row.shape, len(title_line) + len(abstract), row.best_s, row.peak_kib, row.note))
    print_table(rows, limit_s)

    print("\nScaling of the worst shapes (best seconds at 25% / 50% / 100% of the limit):")
    print(f"{'function':<20} {'shape':<46} {'25%':>8} {'50%':>8} {'100%':>8}  growth")
    scaled: list[tuple[str, dict[str, Builder], Callable[[str], str], int]] = [
        ("abstract_text", ABSTRACT_SHAPES, run_abstract_text, MAX_ABSTRACT_CHARS),
        ("latex_to_text", ABSTRACT_SHAPES, run_latex_to_text, MAX_ABSTRACT_CHARS),
        ("split_title_authors", TITLE_SHAPES, run_split, MAX_TITLE_LINE_CHARS),
    ]
    for function, shapes, run, limit in scaled:
        for top in worst(function, WORST_FOR_SCALING):
            smaller = [shapes[top.shape](int(scale * limit)) for scale in SCALES[:-1]]
            times = [measure(function, top.shape, run, text, repeat, limit_s).best_s for text in smaller]
            times.append(top.best_s)  # 100%: measured above
            cells = " ".join(f"{'> ' + format(limit_s, 'g') if t is None else format(t, '.4f'):>8}" for t in times)
            print(f"{function:<20} {top.shape:<46} {cells}  {growth(times)}")

    print()
    functions = ("abstract_text", "latex_to_text", "split_title_authors", "chunk_tables")
    parts = [f"{f}: {w.shape} ({fmt_s(w, limit_s)} s)" for f in functions for w in worst(f, 1)]
    slow = [r for r in rows if _cost(r) > SLOW_S]
    print("Worst per function: " + "; ".join(parts))
    verdict = "none" if not slow else "; ".join(f"{r.function} on {r.shape} ({fmt_s(r, limit_s)} s)" for r in slow)
    print(f"Records slower than {SLOW_S:g} s at the limits: {verdict}. Run time {time.perf_counter() - started:.0f} s.")


if __name__ == "__main__":
    main()
