"""A refresh with 1 new capture among N vs a full run over all N (the parse cache at work).

Renders N captures from the real corpus (`--per-file` papers each), runs a full build into an
empty dataset folder, adds one capture and runs again; both in process, one Prefect server.
Run: ``.venv/bin/python -m benchmarks.refresh [--files 200] [--per-file 150]``.
"""

from __future__ import annotations

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

import argparse
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from prefect.testing.utilities import prefect_test_harness

from benchmarks.render import load_records, render_listing
from pipeline.cli import flow_parameters
from pipeline.orchestrate.flow import refresh
from pipeline.parse.normalize import abstract_text, author_name
from pipeline.parse.split import is_first_name_token, is_name_token, looks_like_author


def write_capture(raw: Path, records: list[dict], n: int, per_file: int) -> None:
    capture = date(2026, 1, 1) + timedelta(days=n)
    start = (n * per_file // 2) % max(len(records) - per_file, 1)  # consecutive captures overlap by half
    text, _ = render_listing(records[start : start + per_file], capture, seed=n)
    (raw / f"listing_{capture.isoformat()}.txt").write_text(text, encoding="utf-8")


def clear_memos() -> None:
    """Forget the per-process memos (names, abstracts, tokens) so each run starts cold."""
    for memo in (author_name, abstract_text, is_name_token, is_first_name_token, looks_like_author):
        memo.cache_clear()


def run(raw: Path, out: Path) -> tuple[float, object]:
    clear_memos()
    start = time.perf_counter()
    # every record accepted: the benchmark measures time, not quality
    summary = refresh(**flow_parameters(raw, out, max_reject_rate=1.0))
    return time.perf_counter() - start, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--per-file", type=int, default=150)
    args = parser.parse_args()
    records = load_records()
    with tempfile.TemporaryDirectory() as tmp, prefect_test_harness(server_startup_timeout=120):
        raw, out = Path(tmp) / "raw", Path(tmp) / "out"
        raw.mkdir()
        for n in range(args.files):
            write_capture(raw, records, n, args.per_file)
        full, first = run(raw, out)
        write_capture(raw, records, args.files, args.per_file)
        incremental, second = run(raw, out)
        clear_memos()
        forced = time.perf_counter()
        refresh(**flow_parameters(raw, out, max_reject_rate=1.0, refresh_cache=True, force=True))
        clear_memos()
        forced = time.perf_counter() - forced
    print(
        f"full run, {args.files} files x {args.per_file} papers: {full:.1f} s "
        f"({first.records} records, {first.row_counts['papers']} papers, {len(first.parsed_files)} parsed)"
    )
    print(
        f"refresh with 1 new file among {args.files + 1}: {incremental:.1f} s "
        f"({len(second.parsed_files)} parsed, {len(second.cached_files)} from cache)"
    )
    print(f"same {args.files + 1} files with --refresh (no cache): {forced:.1f} s")
    print(f"refresh / full: {incremental / full:.2f}")


if __name__ == "__main__":
    main()
