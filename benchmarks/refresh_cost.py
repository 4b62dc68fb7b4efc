"""What a scheduled refresh costs onto a large dataset: time, bytes written and kept, bytes moved to and from S3.

Run: ``.venv/bin/python -m benchmarks.refresh_cost [--papers 1000000] [--rounds 3] [--days 30]
[--baseline REV] [--no-s3] [--work DIR]``.

As a user runs it: `python -m pipeline run` in a subprocess, no Prefect server configured (each run
starts its temporary one), beside a bare one-task Prefect flow timed in the same round. Inputs are
`benchmarks.generate`'s distinct real titles, names and abstracts: one capture of `--papers` papers,
then daily captures of 1,000 new papers plus 100 papers listed again, drawn at random from every
paper listed before (as they were: only their lineage moves).

- Each round, for this checkout and (with ``--baseline``) the code at REV, alternating: a first run
  of the large capture into a new folder (time, peak PSS of the CLI's whole process tree), then the
  first daily refresh in the same folder (time, peak PSS, bytes the store gained: files of tables
  and indexes, the version's own files, and apart the staged layer's). With S3 (SeaweedFS on
  127.0.0.1, behind a proxy that counts what crosses it) the same two runs to a new prefix, and the
  bytes the refresh sent and fetched. Medians over the rounds.
- Then `--days` daily refreshes in a row into one folder (this checkout only): each refresh's
  time and bytes written, and what the store keeps at the end against one version.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from benchmarks.scale import (
    BARE_FLOW,
    CAPTURE,
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
    user_env,
)  # fmt: skip
from pipeline.parse.listing import is_header

DEFAULT_WORK = Path(tempfile.gettempdir()) / "pipeline-bench-refresh-cost"
NEW_PER_DAY = 1_000
AGAIN_PER_DAY = 100


def records(path: Path) -> list[str]:
    """The records of a listing, each its lines as written (from one header to the next)."""
    found: list[list[str]] = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if is_header(line.rstrip("\n")) or not found:
                found.append([])
            found[-1].append(line)
    return ["".join(lines) for lines in found]


def daily_captures(work: Path, base: Path, papers: int, days: int) -> list[Path]:
    """Day d's capture: 1,000 new papers and 100 listed again, drawn from all listed before it."""
    folder = work / "inputs" / "daily"
    folder.mkdir(parents=True, exist_ok=True)
    start = date.fromisoformat(CAPTURE)
    captures = []
    pool: list[str] | None = None
    rng = random.Random(30)
    for day in range(1, days + 1):
        name = f"listing_{(start + timedelta(days=day)).isoformat()}.txt"
        target = folder / name
        captures.append(target)
        if target.exists():
            continue
        if pool is None:
            pool = records(base)
            for earlier in captures[:-1]:
                pool += records(earlier)
        new = generated_listing(work / "inputs" / f"new-{day}", NEW_PER_DAY, (start + timedelta(days=day)).isoformat(),
                                seed=day, skip=papers + (day - 1) * NEW_PER_DAY)  # fmt: skip
        fresh = records(new)
        again = rng.sample(pool, AGAIN_PER_DAY)
        target.write_text("".join(fresh + again), encoding="utf-8")
        pool += fresh
    return captures


def tree_bytes(folder: Path) -> dict[str, int]:
    """Bytes under a dataset folder, by part: tables' and indexes' files, versions, staged layer."""
    sizes = {"data": 0, "versions": 0, "staged": 0, "other": 0}
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            top = path.relative_to(folder).parts[0]
            part = "data" if top in ("data", "index") else top if top in sizes else "other"
            sizes[part] += path.stat().st_size
    return sizes


def version_bytes(folder: Path, version_id: str) -> int:
    """The bytes of one version: every file it lists (tables' files, its own), whichever layout."""
    manifest = json.loads((folder / "versions" / version_id / "manifest.json").read_text())
    total = sum(f["bytes"] for f in manifest["files"].values())
    for listed in (manifest.get("tables") or {}).values():
        total += sum(f["bytes"] for f in listed["files"])
    return total


def cli(code: Path, raw: Path, out: str, logs: Path, env: dict[str, str]) -> dict[str, Any]:
    command = [sys.executable, "-m", "pipeline", "run", "--raw", str(raw), "--out", out, "--max-reject-rate", "1"]
    result = measured(command, code, {**env, "PYTHONPATH": str(code)}, logs, 4 * 3600)
    if result["exit_code"] != 0:
        raise RuntimeError(f"{' '.join(command)} failed (exit {result['exit_code']}):\n{result['stderr_tail']}")
    result.pop("stdout", None)
    result.pop("rss_samples", None)
    return result


def raw_of(work: Path, listings: list[Path], name: str) -> Path:
    raw = work / name
    shutil.rmtree(raw, ignore_errors=True)
    raw.mkdir(parents=True)
    for path in listings:
        link_or_copy(path, raw / path.name)
    return raw


def local_round(label: str, code: Path, work: Path, base: Path, day1: Path, n: int) -> list[dict[str, Any]]:
    """A first run of the large capture, then the first daily refresh, to local disk."""
    out = work / f"out-{label}-{n}"
    shutil.rmtree(out, ignore_errors=True)
    env = user_env()
    first = cli(code, raw_of(work, [base], f"raw-{label}-{n}"), str(out), work / f"logs-{label}-{n}-first", env)
    full = version_bytes(out, "000001")
    before = tree_bytes(out)
    # The day's capture joins the same raw folder: linking the large one anew would change its
    # ctime, and the run would hash it again, as it would a file that changed.
    link_or_copy(day1, work / f"raw-{label}-{n}" / day1.name)
    refresh = cli(code, work / f"raw-{label}-{n}", str(out), work / f"logs-{label}-{n}-refresh", env)
    after = tree_bytes(out)
    written = {k: after[k] - before[k] for k in after}
    cow = copy_on_write(out, "000002") if label == checkout_label() else None
    shutil.rmtree(out, ignore_errors=True)
    log(f"round {n}, {label}: first {first['end_to_end_s']:.1f} s, refresh {refresh['end_to_end_s']:.1f} s, "
        f"wrote {(written['data'] + written['versions']) / 1e6:.1f} MB of a {full / 1e6:.0f} MB version")  # fmt: skip
    return [
        {"kind": "first run", "target": "disk", **first, "version_bytes": full},
        {"kind": "refresh", "target": "disk", **refresh, "written": written, "version_bytes": full, "cow": cow},
    ]


def copy_on_write(out: Path, version_id: str) -> dict[str, int]:
    """What copy-on-write would have rewritten of papers for this version: the parent's papers
    files that hold a paper the version's new generation holds again (a paper listed again moves
    its `last_seen`), against all of them."""
    import duckdb

    manifest = json.loads((out / "versions" / version_id / "manifest.json").read_text())
    files = manifest["tables"]["papers"]["files"]
    newest = max(f["generation"] for f in files)
    older = [f for f in files if f["generation"] < newest]
    paths = [str(out / f["path"]) for f in files if f["generation"] == newest]
    con = duckdb.connect()
    again = con.execute("SELECT paper_id FROM read_parquet($paths)", {"paths": paths}).fetchall()
    con.execute("CREATE TABLE again AS SELECT unnest($ids) AS paper_id", {"ids": [row[0] for row in again]})
    touched = 0
    touched_bytes = 0
    for f in older:
        hit = con.execute(
            "SELECT count(*) FROM read_parquet($path) SEMI JOIN again USING (paper_id)", {"path": str(out / f["path"])}
        ).fetchone()
        if hit and hit[0]:
            touched += 1
            touched_bytes += f["bytes"]
    return {"files": len(older), "touched": touched, "bytes": sum(f["bytes"] for f in older),
            "touched_bytes": touched_bytes}  # fmt: skip


def s3_round(label: str, code: Path, work: Path, base: Path, day1: Path, n: int, server: Any) -> list[dict[str, Any]]:
    """The same two runs to a new S3 prefix, through a proxy that counts the bytes of each."""
    from tests.s3server import BUCKET, FaultyProxy

    proxy = FaultyProxy(server.endpoint)
    try:
        env = {**user_env(), **server.env(), "AWS_ENDPOINT_URL": proxy.url,
               "PIPELINE_CACHE_DIR": str(work / f"cache-{label}-{n}")}  # fmt: skip
        out = f"s3://{BUCKET}/bench-{label.replace('+', '-')}-{n}-{os.urandom(3).hex()}"
        first = cli(code, raw_of(work, [base], f"raw-s3-{label}-{n}"), out, work / f"logs-s3-{label}-{n}-first", env)
        proxy.fail_next()  # counts from zero
        up, down = proxy.bytes_up, proxy.bytes_down
        refresh = cli(code, raw_of(work, [base, day1], f"raw-s3-{label}-{n}"), out,
                      work / f"logs-s3-{label}-{n}-refresh", env)  # fmt: skip
        moved = {"up": proxy.bytes_up - up, "down": proxy.bytes_down - down, "requests": proxy.requests}
    finally:
        proxy.stop()
    shutil.rmtree(work / f"cache-{label}-{n}", ignore_errors=True)
    log(f"round {n}, {label} on S3: first {first['end_to_end_s']:.1f} s, refresh {refresh['end_to_end_s']:.1f} s, "
        f"sent {moved['up'] / 1e6:.1f} MB, fetched {moved['down'] / 1e6:.1f} MB")  # fmt: skip
    return [
        {"kind": "first run", "target": "s3", **first},
        {"kind": "refresh", "target": "s3", **refresh, "moved": moved},
    ]


def days_in_a_row(work: Path, base: Path, captures: list[Path]) -> list[dict[str, Any]]:
    """Daily refreshes in a row into one folder (this checkout): each one's time and bytes."""
    out = work / "out-days"
    shutil.rmtree(out, ignore_errors=True)
    env = user_env()
    raw = raw_of(work, [base], "raw-days")
    cli(ROOT, raw, str(out), work / "logs-days-0", env)
    full = version_bytes(out, "000001")
    runs = []
    for day, capture in enumerate(captures, 1):
        link_or_copy(capture, raw / capture.name)
        before = tree_bytes(out)
        result = cli(ROOT, raw, str(out), work / f"logs-days-{day}", env)
        after = tree_bytes(out)
        runs.append({"day": day, **result, "written": {k: after[k] - before[k] for k in after}, "kept": after,
                     "version_bytes": full})  # fmt: skip
        log(
            f"day {day}: {result['end_to_end_s']:.1f} s, kept {(after['data'] + after['versions']) / full:.3f}"
            " versions' worth"
        )
    shutil.rmtree(out, ignore_errors=True)
    return runs


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def markdown(runs: list[dict[str, Any]], days: list[dict[str, Any]], info: dict[str, Any]) -> str:
    lines = [f"## Refresh cost ({machine_label(info)}): `python -m pipeline run`, no Prefect server configured", ""]
    lines += ["| round | code | target | run | end to end s | bare flow s | beyond s | peak PSS MiB | wrote MB | "
              "sent / fetched MB |", "|---:|---|---|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in runs:
        wrote = f"{(r['written']['data'] + r['written']['versions']) / 1e6:.1f}" if "written" in r else ""
        moved = f"{r['moved']['up'] / 1e6:.1f} / {r['moved']['down'] / 1e6:.1f}" if "moved" in r else ""
        lines.append(f"| {r['round']} | {r['code']} | {r['target']} | {r['kind']} | {r['end_to_end_s']:.1f} | "
                     f"{r['bare_s']:.1f} | {r['beyond_s']:.1f} | {r['peak_pss_bytes'] / 2**20:,.0f} | {wrote} | "
                     f"{moved} |")  # fmt: skip
    lines += [
        "",
        "| code | target | run | median beyond bare s | median peak PSS MiB | median written, share of a version |",
        "|---|---|---|---:|---:|---:|",
    ]
    for code in dict.fromkeys(r["code"] for r in runs):
        for target in dict.fromkeys(r["target"] for r in runs):
            for kind in ("first run", "refresh"):
                chosen = [r for r in runs if (r["code"], r["target"], r["kind"]) == (code, target, kind)]
                if not chosen:
                    continue
                share = ""
                if all("written" in r for r in chosen):
                    written = _median([r["written"]["data"] + r["written"]["versions"] for r in chosen])
                    share = f"{written / 1e6:.1f} MB ({written / chosen[0]['version_bytes']:.2%})"
                lines.append(f"| {code} | {target} | {kind} | {_median([r['beyond_s'] for r in chosen]):.1f} | "
                             f"{_median([r['peak_pss_bytes'] for r in chosen]) / 2**20:,.0f} | {share} |")  # fmt: skip
    cows = [r["cow"] for r in runs if r.get("cow")]
    if cows:
        c = cows[0]
        lines += [
            "",
            f"Copy-on-write would rewrite {c['touched']} of the parent's {c['files']} papers files "
            f"({c['touched_bytes'] / 1e6:.0f} of {c['bytes'] / 1e6:.0f} MB) for the day's papers listed again "
            "(the first refresh of this checkout, round 1).",
        ]
    if days:
        full = days[0]["version_bytes"]
        last = days[-1]["kept"]
        lines += ["", f"### {len(days)} daily refreshes in a row (this checkout)", "",
                  "| day | end to end s | wrote MB (tables, indexes, version) | staged MB | kept: versions' worth |",
                  "|---:|---:|---:|---:|---:|"]  # fmt: skip
        for d in days:
            kept = (d["kept"]["data"] + d["kept"]["versions"]) / full
            lines.append(f"| {d['day']} | {d['end_to_end_s']:.1f} | "
                         f"{(d['written']['data'] + d['written']['versions']) / 1e6:.1f} | "
                         f"{d['written']['staged'] / 1e6:.1f} | {kept:.3f} |")  # fmt: skip
        kept = last["data"] + last["versions"]
        lines += [
            "",
            f"After {len(days)} days the store keeps {kept / 1e9:.2f} GB of tables, indexes and versions "
            f"for a {full / 1e9:.2f} GB version ({kept / full:.3f}×), "
            f"and {last['staged'] / 1e9:.2f} GB of staged captures.",
        ]
    bare = sorted({(r["round"], r["bare_s"]) for r in runs})
    lines += ["", "Bare flow per round: " + ", ".join(f"{s:.1f} s" for _, s in bare)]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.refresh_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--papers", type=int, default=1_000_000, help="papers of the large capture (default: %(default)s)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians are reported (default: 3)")
    parser.add_argument("--days", type=int, default=30, help="daily refreshes in a row (0: none; default: %(default)s)")
    parser.add_argument("--baseline", default=None, help="a git revision to run alternately with this checkout")
    parser.add_argument("--no-s3", action="store_true", help="leave out the runs to SeaweedFS")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="inputs and outputs (default: %(default)s)")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "out" / "refresh_cost.json",
                        help="all figures (default: %(default)s)")  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    info = machine()
    base = generated_listing(work / "inputs" / "base", args.papers, CAPTURE)
    captures = daily_captures(work, base, args.papers, max(args.days, 1))
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-refresh-cost-") as temp, contextlib.ExitStack() as stack:
        codes = {checkout_label(): ROOT}
        if args.baseline:
            old = stack.enter_context(old_checkout(args.baseline, Path(temp)))
            codes[git("rev-parse", "--short", args.baseline)] = old
        server = None
        if not args.no_s3:
            from tests.s3server import start_s3_server

            server = start_s3_server(work / "seaweedfs")
            stack.callback(server.stop)
        for n in range(1, args.rounds + 1):
            bare = measured([sys.executable, "-c", BARE_FLOW], ROOT, user_env(), work / f"logs-bare-{n}", 600)
            log(f"round {n}: bare flow {bare['end_to_end_s']:.1f} s")
            for label in list(codes) if n % 2 else list(reversed(codes)):
                found = local_round(label, codes[label], work, base, captures[0], n)
                if server is not None:
                    found += s3_round(label, codes[label], work, base, captures[0], n, server)
                for run in found:
                    run.update(round=n, code=label, bare_s=bare["end_to_end_s"])
                    run["beyond_s"] = run["end_to_end_s"] - run["bare_s"]
                runs += found
        days = days_in_a_row(work, base, captures[: args.days]) if args.days else []
    print(markdown(runs, days, info), end="")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": info, "runs": runs, "days": days}, indent=2, default=str) + "\n")
    log(f"all figures in {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
