"""Object-storage benchmark: the CLI publishing 200k papers to a local SeaweedFS beside the same run to local disk.

Run: ``.venv/bin/python -m benchmarks.object_storage [--papers 200000] [--rounds 3] [--work DIR]``, or with
``--phases [--raw DIR]`` one logged run per target: seconds per phase and the driver's temporary disk space.

As a user runs it: `python -m pipeline run` in a subprocess with no Prefect server configured (each
run starts its temporary one), into a new output folder or a new S3 prefix each time, the raw
listing on local disk for both. The two targets alternate (local first in odd rounds, S3 first in
even ones), and a bare one-task Prefect flow is timed in each round as the fixed cost. Memory is the
peak PSS of the CLI's whole process tree; the S3 server's own PSS is reported beside it, apart,
since a real deployment's object store runs elsewhere. The server is SeaweedFS (`weed mini`, from the
dev extra) on 127.0.0.1, its data on the same disk as the local runs' output.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from benchmarks.scale import (
    BARE_FLOW,
    CAPTURE,
    ROOT,
    TreeRssSampler,
    generated_listing,
    log,
    machine,
    measured,
    user_env,
)  # fmt: skip
from tests.s3server import BUCKET, start_s3_server

DEFAULT_WORK = Path(tempfile.gettempdir()) / "pipeline-bench-object-storage"


def one_run(target: str, raw: Path, out: str, env: dict[str, str], logs: Path, server: Any) -> dict[str, Any]:
    """One CLI run to `out`; for S3 the server's peak PSS is sampled beside the CLI's tree."""
    command = [sys.executable, "-m", "pipeline", "run", "--raw", str(raw), "--out", out, "--quiet"]
    command += ["--max-reject-rate", "1"]  # time is measured: never a refusal on quality
    sampler = TreeRssSampler(server.process.pid) if target == "s3" else None
    if sampler is not None:
        sampler.start()
    try:
        result = measured(command, ROOT, env, logs, 3600)
    finally:
        if sampler is not None:
            sampler.finish()
    result["target"] = target
    result["server_peak_pss_bytes"] = sampler.peak_pss_bytes if sampler is not None else None
    log(
        f"{target}: exit {result['exit_code']}, {result['end_to_end_s']:.1f} s, "
        f"PSS {result['peak_pss_bytes'] / 2**30:.2f} GiB"
        + (f", server PSS {result['server_peak_pss_bytes'] / 2**30:.2f} GiB" if sampler is not None else "")
    )
    if result["exit_code"] != 0:
        raise RuntimeError(f"the {target} run failed: {result['stderr_tail']}")
    return result


def rounds(args: argparse.Namespace, work: Path, raw: Path, server: Any) -> list[dict[str, Any]]:
    """Each round: the bare flow, then the two targets, alternating which goes first."""
    env = user_env()
    s3_env = {**env, **server.env()}
    results = []
    for n in range(1, args.rounds + 1):
        bare = measured([sys.executable, "-c", BARE_FLOW], ROOT, env, work / f"bare-{n}", 600)
        log(f"round {n}: bare flow {bare['end_to_end_s']:.1f} s")
        order = ["local", "s3"] if n % 2 else ["s3", "local"]
        for target in order:
            out = str(work / f"out-{n}") if target == "local" else f"s3://{BUCKET}/bench-{n}-{os.urandom(3).hex()}"
            run = one_run(target, raw, out, s3_env if target == "s3" else env, work / f"{target}-{n}-logs", server)
            run.update(round=n, bare_s=bare["end_to_end_s"], order=order.index(target) + 1)
            results.append(run)
    return results


def markdown(runs: list[dict[str, Any]], papers: int) -> str:
    """The runs, one row each, and the medians with the S3/local ratios."""
    lines = [
        f"{papers:,} papers, the CLI as a user runs it (no Prefect server configured), targets alternating",
        "",
        "| round | target | end to end s | bare flow s | beyond it s | papers/s beyond | peak PSS GiB (CLI tree) "
        "| S3 server PSS GiB |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        beyond = run["end_to_end_s"] - run["bare_s"]
        server = run["server_peak_pss_bytes"]
        lines.append(
            f"| {run['round']} | {run['target']} | {run['end_to_end_s']:.1f} | {run['bare_s']:.1f} | {beyond:.1f} "
            f"| {papers / beyond:,.0f} | {run['peak_pss_bytes'] / 2**30:.2f} "
            f"| {'–' if server is None else f'{server / 2**30:.2f}'} |"
        )
    medians = {}
    for target in ("local", "s3"):
        chosen = [r for r in runs if r["target"] == target]
        medians[target] = (
            statistics.median(r["end_to_end_s"] - r["bare_s"] for r in chosen),
            statistics.median(r["peak_pss_bytes"] for r in chosen),
        )
    (local_s, local_pss), (s3_s, s3_pss) = medians["local"], medians["s3"]
    lines += [
        "",
        f"median beyond the bare flow: local {local_s:.1f} s, S3 {s3_s:.1f} s: S3 takes {s3_s / local_s:.2f}× local",
        f"median peak PSS of the CLI tree: local {local_pss / 2**30:.2f} GiB, S3 {s3_pss / 2**30:.2f} GiB "
        f"({s3_pss / local_pss:.2f}×)",
    ]
    return "\n".join(lines)


# The flow's log lines that open each phase, in order (pipeline.orchestrate.steps).
PHASES = (("staging", "listing(s) in"), ("assembly", "assembling"), ("publishing", "checking keys"),
          ("end", "published version"))  # fmt: skip
_LOG_LINE = re.compile(r"^(\d\d):(\d\d):(\d\d\.\d+) \| INFO .* - (.*)$", re.MULTILINE)


class FolderPeak(threading.Thread):
    """The peak size of the files under a folder (the driver's working space), sampled."""

    def __init__(self, folder: Path, interval_s: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.folder, self.interval_s, self.peak_bytes = folder, interval_s, 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            total = 0
            for root, _dirs, files in os.walk(self.folder):
                for name in files:
                    with contextlib.suppress(OSError):
                        total += (Path(root) / name).lstat().st_size
            self.peak_bytes = max(self.peak_bytes, total)
            self._done.wait(self.interval_s)

    def finish(self) -> None:
        self._done.set()
        self.join()


def phase_seconds(stderr: str) -> dict[str, float]:
    """Seconds of each phase, from the timestamps of the log lines that open them."""
    opened: dict[str, float] = {}
    for hours, minutes, seconds, message in _LOG_LINE.findall(stderr):
        for phase, marker in PHASES:
            if marker in message:
                opened.setdefault(phase, int(hours) * 3600 + int(minutes) * 60 + float(seconds))
    names = [phase for phase, _ in PHASES]
    return {a: opened[b] - opened[a] for a, b in itertools.pairwise(names) if a in opened and b in opened}


def phases(args: argparse.Namespace, work: Path, raw: Path, server: Any) -> str:
    """One logged run per target: seconds per phase, peak PSS, and the peak of the driver's
    working space on disk (its temporary folders: the staged data and the new version)."""
    lines = [
        f"{args.papers:,} papers, one logged run per target: seconds per phase, peaks",
        "",
        "| target | staging s | assembly s | publishing s | peak PSS GiB | driver's temporary space GiB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for target in ("local", "s3"):
        scratch = work / f"tmp-{target}"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir()
        env = {**user_env(), "TMPDIR": str(scratch), **(server.env() if target == "s3" else {})}
        out = str(work / "out-phases") if target == "local" else f"s3://{BUCKET}/phases-{os.urandom(3).hex()}"
        command = [sys.executable, "-m", "pipeline", "run", "--raw", str(raw), "--out", out, "--max-reject-rate", "1"]
        peak = FolderPeak(scratch)
        peak.start()
        try:
            result = measured(command, ROOT, env, work / f"phases-{target}-logs", 3600)
        finally:
            peak.finish()
        stderr = (work / f"phases-{target}-logs" / "stderr.txt").read_text(errors="replace")
        took = phase_seconds(stderr)
        log(f"{target}: exit {result['exit_code']}, phases {took}")
        lines.append(
            f"| {target} | {took.get('staging', 0):.1f} | {took.get('assembly', 0):.1f} "
            f"| {took.get('publishing', 0):.1f} | {result['peak_pss_bytes'] / 2**30:.2f} "
            f"| {peak.peak_bytes / 2**30:.2f} |"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.object_storage", description=__doc__.split("\n")[0])
    parser.add_argument("--papers", type=int, default=200_000, help="papers in the listing (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of local + S3 (default: %(default)s)")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="inputs and outputs (default: %(default)s)")
    parser.add_argument("--raw", type=Path, default=None, help="a raw folder of --papers papers (else generated)")
    parser.add_argument("--phases", action="store_true", help="one logged run per target: phases and disk")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure to this file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    work: Path = args.work
    raw = args.raw or generated_listing(work / f"raw-{args.papers}", args.papers, CAPTURE).parent
    for stale in work.glob("out-*"):
        shutil.rmtree(stale)
    server = start_s3_server(work / "seaweedfs")
    try:
        if args.phases:
            print(phases(args, work, raw, server))
            return 0
        runs = rounds(args, work, raw, server)
    finally:
        server.stop()
    print(markdown(runs, args.papers))
    if args.json is not None:
        slim = [{k: v for k, v in r.items() if k not in {"stdout", "stderr_tail"}} for r in runs]
        args.json.write_text(json.dumps({"machine": machine(), "papers": args.papers, "runs": slim}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
