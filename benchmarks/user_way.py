"""The CLI as a user runs it: no Prefect server configured, a new output folder, beside a bare flow.

Run: ``make bench-scale`` (its first part), or ``.venv/bin/python -m benchmarks.user_way [--sizes
200000,1000000] [--rounds 3] [--baseline REV] [--json PATH] [--work DIR]``.

Each round times a bare one-task Prefect flow (which starts its own temporary server, as the CLI
does: the fixed cost of any run), then `python -m pipeline run` on each generated listing into a new
folder, then a refresh (a new 1,000-paper capture beside the largest listing, same folder), then
the 50-paper sample. With ``--baseline REV``, the same runs of the code at REV (a git worktree)
alternate with this checkout's, the order swapped every round. Memory is the peak PSS of the
CLI's whole process tree (its temporary server and parsers too), sampled every 0.15 s. Inputs are
``benchmarks.generate``'s distinct real titles, names and abstracts (~1.33 KB per paper).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.scale import (
    BARE_FLOW,
    CAPTURE,
    REFRESH_CAPTURE,
    REFRESH_PAPERS,
    REFRESH_SEED,
    ROOT,
    checkout_label,
    generated_listing,
    git,
    link_or_copy,
    log,
    machine,
    machine_label,
    measured,
    old_checkout,
    sizes_option,
    user_env,
)  # fmt: skip

DEFAULT_WORK = Path(tempfile.gettempdir()) / "pipeline-bench-user-way"
SAMPLE_RAW = ROOT / "data" / "raw"
SAMPLE_PAPERS = 50
EXTRA_RUNS = ("refresh", "sample")  # besides the sizes; --runs chooses


def cli(code: Path, raw: Path, out: Path, logs: Path) -> dict[str, Any]:
    """One `python -m pipeline run` of the code in `code`, as a user runs it, measured."""
    command = [sys.executable, "-m", "pipeline", "run", "--raw", str(raw), "--out", str(out)]
    command += ["--max-reject-rate", "1"]  # time is measured: never a refusal on quality
    result = measured(command, code, {**user_env(), "PYTHONPATH": str(code)}, logs, 4 * 3600)
    if result["exit_code"] != 0:
        raise RuntimeError(f"{' '.join(command)} failed (exit {result['exit_code']}):\n{result['stderr_tail']}")
    return result


def one_code(
    label: str, code: Path, listings: dict[int, Path], refresh: Path, work: Path, n: int, extra: set[str]
) -> list[dict]:
    """Every run of one round for the code in `code`: each size, then those of `extra` (the
    refresh, the sample)."""
    runs = []
    largest = max(listings)
    for size, listing in sorted(listings.items()):
        out = work / f"out-{label}-{n}-{size}"
        result = cli(code, listing.parent, out, work / f"logs-{label}-{n}-{size}")
        runs.append({"kind": f"{size:,} papers", "papers": size, **result})
        log(f"round {n}, {label}, {size:,} papers: {result['end_to_end_s']:.1f} s, "
            f"PSS {result['peak_pss_bytes'] / 2**30:.2f} GiB")  # fmt: skip
        if size == largest and "refresh" in extra:
            raw = work / f"refresh-raw-{label}-{n}"
            raw.mkdir()
            for path in (listing, refresh):
                link_or_copy(path, raw / path.name)  # the same names: the staged layer's keys hold
            result = cli(code, raw, out, work / f"logs-{label}-{n}-refresh")
            runs.append({"kind": f"refresh beside {size:,}", "papers": REFRESH_PAPERS, **result})
            log(f"round {n}, {label}, refresh: {result['end_to_end_s']:.1f} s")
            shutil.rmtree(raw)
        shutil.rmtree(out, ignore_errors=True)
    if "sample" not in extra:
        return runs
    out = work / f"out-{label}-{n}-sample"
    result = cli(code, SAMPLE_RAW, out, work / f"logs-{label}-{n}-sample")
    runs.append({"kind": "sample", "papers": SAMPLE_PAPERS, **result})
    log(f"round {n}, {label}, sample: {result['end_to_end_s']:.1f} s")
    shutil.rmtree(out, ignore_errors=True)
    return runs


def rounds(args: argparse.Namespace, codes: dict[str, Path], work: Path) -> list[dict[str, Any]]:
    listings = {n: generated_listing(work / "inputs" / f"listing-{n}", n, CAPTURE) for n in args.sizes}
    refresh = generated_listing(work / "inputs" / f"new-{REFRESH_PAPERS}-after-{max(args.sizes)}", REFRESH_PAPERS,
                                REFRESH_CAPTURE, seed=REFRESH_SEED, skip=max(args.sizes))  # fmt: skip
    results = []
    for n in range(1, args.rounds + 1):
        bare = measured([sys.executable, "-c", BARE_FLOW], ROOT, user_env(), work / f"logs-bare-{n}", 600)
        log(f"round {n}: bare flow {bare['end_to_end_s']:.1f} s")
        labels = list(codes) if n % 2 else list(reversed(codes))
        for label in labels:
            for run in one_code(label, codes[label], listings, refresh, work, n, args.runs):
                run.update(round=n, code=label, bare_s=bare["end_to_end_s"], bare_pss=bare["peak_pss_bytes"])
                run["beyond_s"] = run["end_to_end_s"] - run["bare_s"]
                run.pop("stdout", None)
                results.append(run)
    return results


def markdown(runs: list[dict[str, Any]], info: dict[str, Any]) -> str:
    """Every run, then the medians by code and kind of run."""
    lines = [
        f"## The user's way ({machine_label(info)}): `python -m pipeline run`, no Prefect server configured, "
        "a new folder each run",
        "",
        "| round | code | run | end to end s | bare flow s | beyond it s | papers/s beyond | ×bare | peak PSS MiB |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        rate = f"{r['papers'] / r['beyond_s']:,.0f}" if r["beyond_s"] > 0 else "–"
        lines.append(
            f"| {r['round']} | {r['code']} | {r['kind']} | {r['end_to_end_s']:.1f} | {r['bare_s']:.1f} "
            f"| {r['beyond_s']:.1f} | {rate} | {r['end_to_end_s'] / r['bare_s']:.2f} "
            f"| {r['peak_pss_bytes'] / 2**20:,.0f} |"
        )
    lines += ["", "| code | run | median beyond bare s | median ×bare | median peak PSS MiB |"]
    lines += ["|---|---|---:|---:|---:|"]
    for code in dict.fromkeys(r["code"] for r in runs):
        for kind in dict.fromkeys(r["kind"] for r in runs):
            chosen = [r for r in runs if r["code"] == code and r["kind"] == kind]
            lines.append(
                f"| {code} | {kind} | {statistics.median(r['beyond_s'] for r in chosen):.1f} "
                f"| {statistics.median(r['end_to_end_s'] / r['bare_s'] for r in chosen):.2f} "
                f"| {statistics.median(r['peak_pss_bytes'] for r in chosen) / 2**20:,.0f} |"
            )
    bare = sorted({(r["round"], r["bare_s"], r["bare_pss"]) for r in runs})
    lines += ["", "Bare flow per round: " + ", ".join(f"{s:.1f} s ({p / 2**20:,.0f} MiB)" for _, s, p in bare)]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.user_way", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=sizes_option, default=[200_000, 1_000_000], help="papers per run (default: %(default)s)"
    )
    parser.add_argument(
        "--runs", type=lambda text: set(text.split(",")) & set(EXTRA_RUNS), default=set(EXTRA_RUNS),
        help="runs besides the sizes: 'refresh,sample' (the default), one of them, or ''",
    )  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians are reported (default: 3)")
    parser.add_argument("--baseline", default=None, help="a git revision to run alternately with this checkout")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="inputs and outputs (default: %(default)s)")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "out" / "user_way.json",
                        help="all figures (default: %(default)s)")  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    for stale in work.glob("out-*"):
        shutil.rmtree(stale, ignore_errors=True)
    info = machine()
    with tempfile.TemporaryDirectory(prefix="bench-user-way-") as temp, contextlib.ExitStack() as stack:
        codes = {checkout_label(): ROOT}
        if args.baseline:
            label = git("rev-parse", "--short", args.baseline)
            codes[label] = stack.enter_context(old_checkout(args.baseline, Path(temp)))
        runs = rounds(args, codes, work)
    print(markdown(runs, info), end="")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": info, "runs": runs}, indent=2, default=str) + "\n")
    log(f"all figures in {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
