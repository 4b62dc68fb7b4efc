"""Scale benchmark: the real CLI on 200k and 1M papers, this checkout (NEW) beside the design before the rewrite (OLD).

Run: ``make bench-scale``, or ``.venv/bin/python -m benchmarks.scale [--sizes 200000,1000000]
[--old-sizes 200000] [--no-refresh] [--compare] [--json PATH] [--work DIR] [--keep-work]``.

Every figure comes from `python -m pipeline run` in a subprocess, as an operator runs it: NEW is the
code of this checkout, OLD the code of commit 124db0b in a temporary `git worktree` (same venv; its
folder as cwd and PYTHONPATH, so that its code is the one imported). All runs, and a bare Prefect
flow timed beside them, report to one private Prefect server (127.0.0.1, temporary PREFECT_HOME),
from which each run's seconds per task are read back. Per run: end-to-end seconds, papers/s beyond
the fixed cost of the bare flow, seconds per task, the sampled peak RSS of the whole process tree,
the exit code; then a refresh (one new 1,000-paper capture beside the largest listing). The old
design needs ~12 KB of RAM per paper (>10 GB and ~20 min at 1M): by default it runs at 200k only.
Inputs (~1.35-1.45 KB per paper) are generated once into the work folder and reused when present.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
OLD_COMMIT = "124db0b"
DEFAULT_WORK = Path(tempfile.gettempdir()) / "pipeline-bench-scale"
CAPTURE = "2026-11-26"  # the date benchmarks.generate writes its listings for
REFRESH_CAPTURE = "2026-11-27"
REFRESH_PAPERS = 1_000
REFRESH_SEED = 7
OLD_BYTES_PER_PAPER = 12_000  # measured need of the old design; a warning before a run that may not fit
RSS_INTERVAL_S = 0.15
SETTLE_S = 60.0  # task runs reach the API as events after the CLI exits: time allowed for the last ones
BARE_FLOW = """
from prefect import flow, task

@task
def noop() -> None:
    return None

@flow(name="bare-flow")
def bare() -> None:
    noop()

bare()
"""


def log(message: str) -> None:
    """Progress on stderr: stdout holds only the report."""
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)  # noqa: DTZ005


# --- the machine and the code ---------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What the figures were measured on, and when: they mean nothing without it."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model or platform.processor(),
        "ram_bytes": psutil.virtual_memory().total,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def machine_label(info: dict[str, Any]) -> str:
    return f"{info['cpus']} CPUs, {info['ram_bytes'] / 2**30:.1f} GiB RAM, {info['date'][:10]}"


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True).stdout.strip()


def checkout_label() -> str:
    """This checkout's commit, marked when its files differ from it (the NEW code is what is on disk)."""
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return git("rev-parse", "--short", "HEAD") + ("+uncommitted" if dirty else "")


@contextlib.contextmanager
def old_checkout(commit: str, parent: Path) -> Iterator[Path]:
    """A detached worktree of `commit`, removed afterwards (also after a failure)."""
    path = parent / f"old-{commit}"
    git("worktree", "add", "--detach", "--quiet", str(path), commit)
    try:
        yield path
    finally:
        # Not `git worktree prune`: that would touch other worktrees' entries in a shared repository.
        removed = subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], check=False)
        if removed.returncode != 0:
            log(f"warning: could not remove the worktree {path}: `git worktree remove --force {path}`")


# --- inputs ---------------------------------------------------------------------------------


def generated_listing(folder: Path, papers: int, capture: str, seed: int | None = None, skip: int = 0) -> Path:
    """A raw folder holding one listing of `papers` papers from benchmarks.generate; reused when a
    previous run left it complete (the generator is deterministic), else written anew."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"listing_{capture}.txt"
    meta_path = folder.parent / f"{folder.name}.json"  # beside the raw folder: the CLI reads every file in it
    wanted = {"papers": papers, "seed": seed, "skip": skip}
    with contextlib.suppress(OSError, ValueError):
        meta = json.loads(meta_path.read_text())
        if {k: meta.get(k) for k in wanted} == wanted and path.stat().st_size == meta["bytes"]:
            log(f"reusing {path} ({meta['bytes'] / 1e6:,.0f} MB)")
            return path
    for stale in folder.iterdir():
        stale.unlink()
    partial = folder / f"{path.name}.part"  # not *.txt: never read as a listing if left behind
    command = [sys.executable, "-m", "benchmarks.generate", str(papers), str(partial), "--skip", str(skip)]
    if seed is not None:
        command += ["--seed", str(seed)]
    log(f"generating {papers:,} papers into {path}")
    subprocess.run(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    partial.rename(path)
    meta_path.write_text(json.dumps({**wanted, "bytes": path.stat().st_size}))
    return path


def link_or_copy(source: Path, target: Path) -> None:
    """`source` at `target` without a second 1.45 GB write when the file system allows it."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def user_env() -> dict[str, str]:
    """The environment of a user with no Prefect server configured (each run starts its own)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AWS_", "PIPELINE_"))}
    return {**env, "PYTHONPATH": str(ROOT)}


# --- processes: time, peak RSS of the tree --------------------------------------------------


class TreeRssSampler(threading.Thread):
    """Peaks of the summed RSS and PSS of a process and all its descendants, sampled every `interval_s`.

    Sampled: a peak shorter than the interval can be missed. RSS summed: pages shared by several
    processes (forked workers) count once per process, so the sum can exceed the memory in use.
    PSS (proportional set size) shares each such page among the processes that map it: its sum
    is the memory the tree uses.
    """

    def __init__(self, pid: int, interval_s: float = RSS_INTERVAL_S) -> None:
        super().__init__(daemon=True)
        # Made before the process is waited for: one that has already ended is still a zombie here.
        self.root = psutil.Process(pid)
        self.interval_s = interval_s
        self.peak_bytes = 0
        self.peak_pss_bytes = 0
        self.samples = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.sample()
            self._done.wait(self.interval_s)

    def sample(self) -> None:
        try:
            processes = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:  # the process has ended
            return
        total = pss = 0
        for process in processes:
            with contextlib.suppress(psutil.Error):  # a child that ended between listing and reading
                info = process.memory_full_info()
                total += info.rss
                pss += getattr(info, "pss", info.rss)
        self.peak_bytes = max(self.peak_bytes, total)
        self.peak_pss_bytes = max(self.peak_pss_bytes, pss)
        self.samples += 1

    def finish(self) -> None:
        self._done.set()
        self.join()


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill a process started here in its own session, with everything it started."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def measured(command: list[str], cwd: Path, env: dict[str, str], logs: Path, timeout_s: float) -> dict[str, Any]:
    """Run `command` to its end: seconds, exit code, sampled peak RSS of its tree, what it printed."""
    logs.mkdir(parents=True, exist_ok=True)
    out_path, err_path = logs / "stdout.txt", logs / "stderr.txt"
    load = os.getloadavg()[0]
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        # Its own session: a timeout or Ctrl-C here kills the run's whole tree (workers too).
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True
        )
        sampler = TreeRssSampler(process.pid)
        sampler.start()
        timed_out = False
        try:
            code = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            kill_group(process)
            code, timed_out = process.returncode, True
        except BaseException:
            kill_group(process)
            raise
        finally:
            seconds = time.perf_counter() - started
            sampler.finish()
    return {
        "exit_code": code,
        "timed_out": timed_out,
        "end_to_end_s": seconds,
        "peak_rss_bytes": sampler.peak_bytes,
        "peak_pss_bytes": sampler.peak_pss_bytes,
        "rss_samples": sampler.samples,
        "load_avg_1min_at_start": load,
        "stdout": out_path.read_text(errors="replace"),
        "stderr_tail": err_path.read_text(errors="replace")[-3000:],
        "logs": str(logs),
    }


# --- the Prefect server and what it recorded ------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def prefect_server(home: Path, logs: Path, allowance_s: float = 600.0) -> Iterator[str]:
    """One `prefect server start` on a free loopback port for the whole benchmark; its API URL."""
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env["PREFECT_UI_ENABLED"] = "false"  # nobody looks at it; its assets would cost start-up and memory
    env.pop("PREFECT_API_URL", None)
    command = [str(Path(sys.executable).parent / "prefect"), "server", "start", "--host", "127.0.0.1"]
    command += ["--port", str(port)]
    url = f"http://127.0.0.1:{port}/api"
    with (logs / "prefect-server.log").open("wb") as out:
        server = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + allowance_s  # a first start migrates its SQLite database
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"the Prefect server exited with {server.returncode}; see {logs}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Prefect server did not answer within {allowance_s:.0f} s; see {logs}")
            time.sleep(0.2)
        log(f"Prefect server at {url} (pid {server.pid})")
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            kill_group(server)


def _task_name(run: Any) -> str:
    """The task's name: Prefect names a task run `<task name>-<start of its dynamic key>`."""
    key = str(run.dynamic_key or "")
    for suffix in (f"-{key}", f"-{key[:3]}"):
        if key and run.name.endswith(suffix):
            return str(run.name[: -len(suffix)])
    return str(run.name)


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start and end else None


def _union_s(intervals: list[tuple[datetime, datetime]]) -> float:
    """Seconds covered by at least one of `intervals` (task runs may overlap)."""
    total, reach = 0.0, None
    for start, end in sorted(intervals):
        if reach is None or start > reach:
            total += (end - start).total_seconds()
            reach = end
        elif end > reach:
            total += (end - reach).total_seconds()
            reach = end
    return total


def recorded_stages(since: datetime) -> dict[str, Any] | None:
    """The flow run started after `since` (a top-level one), with its duration, and per task name:
    runs, wall span (first start to last end) and summed durations; None when no flow run began.

    Works for any task names, so for both designs. Task runs reach the server as events, so the
    last ones may arrive after the process has ended: read until two reads a second apart agree.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterParentTaskRunId,
        FlowRunFilterStartTime,
    )
    from prefect.client.schemas.sorting import FlowRunSort, TaskRunSort

    deadline = time.monotonic() + SETTLE_S
    previous: tuple[Any, ...] | None = None
    with get_client(sync_client=True) as client:
        while True:
            flow_runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    start_time=FlowRunFilterStartTime(after_=since),  # type: ignore[arg-type]  # pydantic converts
                    parent_task_run_id=FlowRunFilterParentTaskRunId(is_null_=True),
                ),
                sort=FlowRunSort.START_TIME_ASC,
            )
            if not flow_runs:
                return None
            flow_run = flow_runs[0]
            task_runs: list[Any] = []
            while True:  # the server returns at most 200 per read
                page = client.read_task_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])),
                    sort=TaskRunSort.EXPECTED_START_TIME_ASC,
                    limit=200,
                    offset=len(task_runs),
                )
                task_runs += page
                if len(page) < 200:
                    break
            ended = sum(1 for t in task_runs if t.end_time is not None)
            snapshot = (len(task_runs), ended, flow_run.end_time is not None)
            if (snapshot == previous and ended == len(task_runs) and snapshot[2]) or time.monotonic() > deadline:
                break
            previous = snapshot
            time.sleep(1.0)
        flow_name = str(client.read_flow(flow_run.flow_id).name)
    by_name: dict[str, list[Any]] = {}
    for task_run in task_runs:
        by_name.setdefault(_task_name(task_run), []).append(task_run)
    stages = []
    for name, runs in by_name.items():
        starts = [r.start_time for r in runs if r.start_time]
        ends = [r.end_time for r in runs if r.end_time]
        durations = [d for r in runs if (d := _seconds(r.start_time, r.end_time)) is not None]
        stages.append(
            {
                "task": name,
                "runs": len(runs),
                "unfinished": len(runs) - len(durations),
                "states": sorted({r.state.name for r in runs if r.state}),
                "first_start": min(starts).isoformat() if starts else None,
                "span_s": _seconds(min(starts), max(ends)) if starts and ends else None,
                "sum_s": sum(durations),
            }
        )
    stages.sort(key=lambda s: s["first_start"] or "")
    duration = _seconds(flow_run.start_time, flow_run.end_time)
    busy = _union_s([(r.start_time, r.end_time) for r in task_runs if r.start_time and r.end_time])
    return {
        "flow_name": flow_name,
        "flow_run_id": str(flow_run.id),
        "state": flow_run.state.name if flow_run.state else None,
        "duration_s": duration,
        # Work in the flow's own body (between and around its tasks), e.g. steps that are no task.
        "outside_tasks_s": None if duration is None else duration - busy,
        "top_level_flow_runs_seen": len(flow_runs),
        "stages": stages,
    }


# --- one run of the CLI ---------------------------------------------------------------------

_INPUT_ROW = re.compile(r"^\| (.+) \| \d{4}-\d{2}-\d{2} \| \d+ \| \d+ \| (parsed|cache) \|$")
_PAPERS_ROW = re.compile(r"^\| papers \| (\d+) \|$")


def summary_figures(stdout: str, out: Path) -> dict[str, Any]:
    """Files parsed and taken from cache, and the papers published, from the run's summary (stdout);
    the papers from the newest version's manifest when the summary does not say."""
    parsed: list[str] = []
    cached: list[str] = []
    papers: int | None = None
    for line in stdout.splitlines():
        if match := _INPUT_ROW.match(line):
            (parsed if match.group(2) == "parsed" else cached).append(match.group(1))
        elif match := _PAPERS_ROW.match(line):
            papers = int(match.group(1))
    if papers is None:
        manifests = sorted((out / "versions").glob("*/manifest.json"))
        with contextlib.suppress(OSError, ValueError, KeyError, IndexError, TypeError):
            papers = int(json.loads(manifests[-1].read_text())["row_counts"]["papers"])
    return {"parsed_files": parsed, "cached_files": cached, "published_papers": papers}


def cli_run(
    design: str, code: Path, raw: Path, out: Path, env: dict[str, str], args: argparse.Namespace
) -> dict[str, Any]:
    """`python -m pipeline run` with `code` as cwd and PYTHONPATH (so its own code is imported)."""
    command = [sys.executable, "-m", "pipeline", "run", "--raw", str(raw), "--out", str(out)]
    command += ["--max-reject-rate", "1"]  # the benchmark measures time: never a refusal on quality
    if not args.verbose_cli:
        command.append("--quiet")
    if args.workers:
        command += ["--workers", str(args.workers)]
    since = datetime.now(UTC)
    log(f"{design}: {' '.join(command[1:])}")
    result = measured(command, code, {**env, "PYTHONPATH": str(code)}, out.parent / f"{out.name}-logs", args.timeout)
    result.update(design=design, command=command, cwd=str(code))
    result.update(summary_figures(result["stdout"], out))
    result["flow_run"] = recorded_stages(since)
    log(
        f"{design}: exit {result['exit_code']}, {result['end_to_end_s']:.1f} s, "
        f"peak RSS {result['peak_rss_bytes'] / 2**30:.2f} GiB, PSS {result['peak_pss_bytes'] / 2**30:.2f} GiB, "
        f"{result['published_papers']} papers published"
    )
    if result["exit_code"] != 0:
        log(f"{design}: the run failed; its stderr ends with:\n{result['stderr_tail']}")
    return result


def bare_flow(env: dict[str, str], logs: Path, timeout_s: float) -> dict[str, Any]:
    """A trivial flow with one task, started as the CLI is: process start, Prefect import and the
    flow and task run bookkeeping against the same server, i.e. the fixed cost of any run."""
    since = datetime.now(UTC)
    result = measured([sys.executable, "-c", BARE_FLOW], ROOT, env, logs, timeout_s)
    result["flow_run"] = recorded_stages(since)
    if result["exit_code"] != 0:
        raise RuntimeError(f"the bare Prefect flow failed (exit {result['exit_code']}): {result['stderr_tail']}")
    return result


# --- the report -----------------------------------------------------------------------------


def _f(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def outside_flow(run: dict[str, Any]) -> float | None:
    duration = (run["flow_run"] or {}).get("duration_s")
    return None if duration is None else run["end_to_end_s"] - duration


def markdown(report: dict[str, Any]) -> str:
    info = report["machine"]
    label = machine_label(info)
    fixed = report["fixed_cost_s"]
    lines = [
        f"# Scale benchmark: `python -m pipeline run`, NEW {report['new_code']} vs OLD {report['old_code']}",
        "",
        f"Machine: {info['cpus']} CPUs ({info['cpu_model']}), {info['ram_bytes'] / 2**30:.1f} GiB RAM, "
        f"{info['platform']}, Python {info['python']}; measured {info['date']}. "
        f"CLI options: `{' '.join(report['cli_options'])}`.",
        "",
        f"Fixed cost (a bare Prefect flow with one task, same server, own process): median {fixed:.2f} s "
        f"of {', '.join(_f(b['end_to_end_s'], 2) for b in report['bare_flow'])} s.",
        "",
        f"## Runs ({label})",
        "",
        "| design | papers | input MB | exit | end-to-end s | beyond fixed s | papers/s beyond fixed "
        "| flow run s | outside the flow s | peak RSS GiB (tree, sampled) | peak PSS GiB | papers published "
        "| load at start |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in report["runs"]:
        flow = run["flow_run"] or {}
        lines.append(
            f"| {run['design']} | {run['papers']:,} | {run['input_bytes'] / 1e6:,.0f} | {run['exit_code']} "
            f"| {_f(run['end_to_end_s'])} | {_f(run['beyond_fixed_s'])} | {_f(run['papers_per_s_beyond_fixed'], 0)} "
            f"| {_f(flow.get('duration_s'))} | {_f(outside_flow(run))} | {run['peak_rss_bytes'] / 2**30:.2f} "
            f"| {run['peak_pss_bytes'] / 2**30:.2f} | {_f(run['published_papers'], 0)} "
            f"| {run['load_avg_1min_at_start']:.1f} |"
        )
    lines += [
        "",
        f"Peak RSS: the summed RSS of the CLI and all its descendants, sampled every {RSS_INTERVAL_S} s (a shorter "
        "peak can be missed; pages shared between processes count once per process). Peak PSS: the same sum of "
        "proportional set sizes, where a shared page is divided among its processes. Outside the flow: "
        "end-to-end minus the flow run's duration (process start, imports, checks, the drain of Prefect's "
        "log and event workers at exit).",
        "",
        f"## Seconds per task ({label}; from the Prefect API: span = first start to last end, sum = summed durations)",
        "",
        "| design | papers | task | runs | span s | sum s |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for run in report["runs"]:
        flow = run["flow_run"] or {}
        for stage in flow.get("stages", []):
            unfinished = f" ({stage['unfinished']} unfinished)" if stage["unfinished"] else ""
            lines.append(
                f"| {run['design']} | {run['papers']:,} | {stage['task']} | {stage['runs']}{unfinished} "
                f"| {_f(stage['span_s'], 2)} | {_f(stage['sum_s'], 2)} |"
            )
        if flow.get("outside_tasks_s") is not None:
            lines.append(
                f"| {run['design']} | {run['papers']:,} | *(flow body, no task running)* | | "
                f"{_f(flow['outside_tasks_s'], 2)} | |"
            )
    if report.get("refresh"):
        refresh = report["refresh"]
        lines += [
            "",
            f"## Refresh ({label}): NEW, one new capture of {refresh['new_papers']:,} papers beside the "
            f"{refresh['base_papers']:,}-paper listing, same dataset folder",
            "",
            "| exit | end-to-end s | beyond fixed s | flow run s | peak RSS GiB | peak PSS GiB | parsed | from cache "
            "| papers published |",
            "|---:|---:|---:|---:|---:|---:|---|---|---:|",
            f"| {refresh['exit_code']} | {_f(refresh['end_to_end_s'])} | {_f(refresh['beyond_fixed_s'])} "
            f"| {_f((refresh['flow_run'] or {}).get('duration_s'))} | {refresh['peak_rss_bytes'] / 2**30:.2f} "
            f"| {refresh['peak_pss_bytes'] / 2**30:.2f} "
            f"| {', '.join(refresh['parsed_files']) or '–'} | {', '.join(refresh['cached_files']) or '–'} "
            f"| {_f(refresh['published_papers'], 0)} |",
        ]
        stages = (refresh["flow_run"] or {}).get("stages", [])
        if stages:
            lines += ["", "| task | runs | span s | sum s |", "|---|---:|---:|---:|"]
            lines += [f"| {s['task']} | {s['runs']} | {_f(s['span_s'], 2)} | {_f(s['sum_s'], 2)} |" for s in stages]
            outside = (refresh["flow_run"] or {}).get("outside_tasks_s")
            lines += [f"| *(flow body, no task running)* | | {_f(outside, 2)} | |"] if outside is not None else []
    if report.get("compare"):
        lines += ["", f"## NEW vs OLD output ({label})", "", "| papers | NEW papers published | OLD | same |"]
        lines.append("|---:|---:|---:|---|")
        for row in report["compare"]:
            lines.append(
                f"| {row['papers']:,} | {_f(row['new'], 0)} | {_f(row['old'], 0)} | {'yes' if row['same'] else 'NO'} |"
            )
    return "\n".join(lines) + "\n"


# --- main -----------------------------------------------------------------------------------


def sizes_option(text: str) -> list[int]:
    try:
        sizes = sorted({int(part.replace("_", "")) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"comma-separated numbers of papers, not {text!r}") from None
    if any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError(f"numbers of papers are 1 or more, not {text!r}")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scale",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument(
        "--sizes", type=sizes_option, default=[200_000, 1_000_000], help="papers per NEW run (default: 200000,1000000)"
    )
    parser.add_argument(
        "--old-sizes", type=sizes_option, default=[200_000],
        help="papers per OLD run ('' for none; the old design needs ~12 KB RAM per paper) (default: 200000)",
    )  # fmt: skip
    parser.add_argument("--old-commit", default=OLD_COMMIT, help="the OLD design (default: %(default)s)")
    parser.add_argument("--no-refresh", action="store_true", help="skip the refresh after the largest NEW run")
    parser.add_argument("--old-first", action="store_true", help="run OLD before NEW at each size (to alternate)")
    parser.add_argument("--compare", action="store_true", help="check that NEW and OLD publish as many papers")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="inputs and outputs (default: %(default)s)")
    parser.add_argument("--keep-work", action="store_true", help="keep inputs and outputs for the next run")
    parser.add_argument(
        "--json",
        type=Path,
        default=ROOT / "benchmarks" / "out" / "scale.json",
        help="all figures (default: %(default)s)",
    )
    parser.add_argument(
        "--bare-repeat", type=int, default=3, help="bare flow runs; their median is the fixed cost (default: 3)"
    )
    parser.add_argument("--workers", type=int, default=None, help="pass --workers N to every CLI run")
    parser.add_argument("--verbose-cli", action="store_true", help="run the CLI without --quiet")
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds per CLI run (default: 4 h)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    info = machine()
    for size in args.old_sizes:
        if size * OLD_BYTES_PER_PAPER > info["ram_bytes"]:
            log(f"warning: OLD at {size:,} papers needs ~{size * OLD_BYTES_PER_PAPER / 1e9:.0f} GB of RAM")
    work: Path = args.work.resolve()
    temp = Path(tempfile.mkdtemp(prefix="bench-scale-"))  # Prefect home, server log, the old worktree
    report: dict[str, Any] = {
        "machine": info,
        "new_code": checkout_label(),
        "old_code": git("rev-parse", "--short", args.old_commit) if args.old_sizes else "(not run)",
        "cli_options": ["--max-reject-rate", "1"]
        + ([] if args.verbose_cli else ["--quiet"])
        + (["--workers", str(args.workers)] if args.workers else []),
        "runs": [],
    }
    try:
        failed = benchmark(args, work, temp, report)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
        if not args.keep_work:
            # Only what this benchmark wrote: --work may name a folder that holds other things.
            shutil.rmtree(work / "inputs", ignore_errors=True)
            shutil.rmtree(work / "runs", ignore_errors=True)
            with contextlib.suppress(OSError):  # only when nothing else is left in it
                work.rmdir()
    if not args.keep_work:
        for run in [*report["runs"], *report.get("bare_flow", []), report.get("refresh") or {}]:
            run.pop("logs", None)  # deleted with the work folder
    print(markdown(report), end="")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    log(f"all figures in {args.json}" + (f"; inputs and outputs kept in {work}" if args.keep_work else ""))
    return 1 if failed else 0


def benchmark(args: argparse.Namespace, work: Path, temp: Path, report: dict[str, Any]) -> bool:
    """Generate the inputs, start the server, time the bare flow and every run into `report`;
    True when a run failed or NEW and OLD published different numbers of papers."""
    sizes = sorted({*args.sizes, *args.old_sizes})
    listings = {n: generated_listing(work / "inputs" / f"listing-{n}", n, CAPTURE) for n in sizes}
    largest = max(args.sizes, default=None)
    new_capture = None
    if largest and not args.no_refresh:
        new_capture = generated_listing(
            work / "inputs" / f"new-{REFRESH_PAPERS}-after-{largest}", REFRESH_PAPERS, REFRESH_CAPTURE,
            seed=REFRESH_SEED, skip=largest,
        )  # fmt: skip
    runs_dir = work / "runs"
    shutil.rmtree(runs_dir, ignore_errors=True)  # outputs of an earlier benchmark: every run starts empty
    runs_dir.mkdir(parents=True)
    home = temp / "prefect-home"
    home.mkdir()
    with prefect_server(home, temp) as api_url, contextlib.ExitStack() as stack:
        # This process reads the runs back through Prefect's client: set before Prefect's import.
        os.environ.update({"PREFECT_HOME": str(home), "PREFECT_API_URL": api_url})
        env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "PYTHONPATH": str(ROOT)}
        if not args.verbose_cli:
            env["PREFECT_LOGGING_LEVEL"] = "WARNING"  # what the CLI's --quiet sets: the bare flow logs alike
        old_code = stack.enter_context(old_checkout(args.old_commit, temp)) if args.old_sizes else None
        bare = [bare_flow(env, runs_dir / f"bare-{i}-logs", args.timeout) for i in range(max(args.bare_repeat, 1))]
        fixed = statistics.median(b["end_to_end_s"] for b in bare)
        report.update(bare_flow=bare, fixed_cost_s=fixed)
        log(f"bare Prefect flow: median {fixed:.2f} s")
        for size in sizes:
            # Alternated: with --old-first, OLD runs before NEW at each size (two invocations, one
            # of each order, let neither design always meet a warmer or busier machine).
            for design in ("old", "new") if args.old_first else ("new", "old"):
                if design == "new" and size in args.sizes:
                    new_run(args, size, listings[size], new_capture if size == largest else None, runs_dir, env,
                            fixed, report)  # fmt: skip
                elif design == "old" and size in args.old_sizes and old_code is not None:
                    out = runs_dir / f"old-{size}"
                    run = cli_run("OLD", old_code, listings[size].parent, out, env, args)
                    report["runs"].append(
                        figures(run, report["old_code"], size, listings[size], fixed, report["machine"])
                    )
                    if not args.keep_work:
                        shutil.rmtree(out, ignore_errors=True)
    if args.compare:
        report["compare"] = compare(report["runs"])
    runs = report["runs"] + ([report["refresh"]] if "refresh" in report else [])
    return any(r["exit_code"] != 0 for r in runs) or not all(row["same"] for row in report.get("compare", []))


def new_run(
    args: argparse.Namespace, size: int, listing: Path, new_capture: Path | None, runs_dir: Path,
    env: dict[str, str], fixed: float, report: dict[str, Any],
) -> None:  # fmt: skip
    """NEW on `listing` into a new folder, then (for the largest size) the refresh beside it."""
    out = runs_dir / f"new-{size}"
    run = cli_run("NEW", ROOT, listing.parent, out, env, args)
    report["runs"].append(figures(run, report["new_code"], size, listing, fixed, report["machine"]))
    if new_capture is not None:
        run = refresh_run(listing.parent, size, new_capture, out, env, args)
        report["refresh"] = figures(run, report["new_code"], REFRESH_PAPERS, new_capture, fixed, report["machine"])
    if not args.keep_work:
        shutil.rmtree(out, ignore_errors=True)  # versions and staged layer of 1M papers: GBs


def figures(
    run: dict[str, Any], code: str, papers: int, listing: Path, fixed: float, info: dict[str, Any]
) -> dict[str, Any]:
    """`run` with what it measured beyond the fixed cost, and labelled with its code and machine."""
    beyond = run["end_to_end_s"] - fixed
    run.update(
        code=code,
        papers=papers,
        input_bytes=listing.stat().st_size,
        beyond_fixed_s=beyond,
        papers_per_s_beyond_fixed=papers / beyond if beyond > 0 else None,
        machine=info,
    )
    return run


def refresh_run(
    raw: Path, base_papers: int, new_listing: Path, out: Path, env: dict[str, str], args: argparse.Namespace
) -> dict[str, Any]:
    """NEW again on the same dataset folder, with one new capture beside the listing it has just
    published: the parse cache should spare the old file, so this is what a daily refresh costs."""
    refresh_raw = out.parent / f"{out.name}-refresh-raw"
    refresh_raw.mkdir()
    # The same file name: the cache is keyed on content, name and capture date, not on the folder.
    for listing in (*raw.glob("*.txt"), new_listing):
        link_or_copy(listing, refresh_raw / listing.name)
    run = cli_run("NEW refresh", ROOT, refresh_raw, out, env, args)
    shutil.rmtree(refresh_raw, ignore_errors=True)
    run.update(new_papers=REFRESH_PAPERS, base_papers=base_papers)
    return run


def compare(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Papers published by NEW and OLD for every size both ran."""
    published = {(r["design"], r["papers"]): r["published_papers"] for r in runs}
    rows = []
    for (design, papers), new in sorted(published.items()):
        if design == "NEW" and ("OLD", papers) in published:
            old = published[("OLD", papers)]
            rows.append({"papers": papers, "new": new, "old": old, "same": new is not None and new == old})
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
