"""Command line: `python -m pipeline run|serve|validate|versions|diff|show`."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from datetime import date
from pathlib import Path
from typing import Any

# Before Prefect is imported: no telemetry, and quiet shutdown of the temporary server.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")

DEFAULT_RAW = Path("data/raw")
DEFAULT_OUT = Path("data/processed")
DEFAULT_MAX_REJECT_RATE = 0.05
DEFAULT_LOCK_TIMEOUT_S = 600.0
# A task run costs ~25 ms of Prefect bookkeeping: ~8 MB of listings per parse task outweighs it.
DEFAULT_BATCH_BYTES = 8_000_000


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {text!r}") from None


def flow_parameters(
    raw_dir: Path,
    out_dir: Path,
    *,
    as_of: date | None = None,
    force: bool = False,
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
    max_reject_rate: float = DEFAULT_MAX_REJECT_RATE,
    keep: int | None = None,
    refresh_cache: bool = False,
    min_tasks: int = 1,
) -> dict[str, Any]:
    """Every parameter of the `refresh` flow, the CLI's defaults filling those not given."""
    return {
        "raw_dir": raw_dir,
        "out_dir": out_dir,
        "as_of": as_of,
        "force": force,
        "lock_timeout_s": lock_timeout_s,
        "max_reject_rate": max_reject_rate,
        "keep": keep,
        "refresh_cache": refresh_cache,
        "batch_bytes": DEFAULT_BATCH_BYTES,
        "min_tasks": min_tasks,
    }


def _rate(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"a share between 0 and 1, not {text}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"at least 1, not {text}")
    return value


def _out_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="dataset folder (default: %(default)s)")


def _refresh_args(parser: argparse.ArgumentParser) -> None:
    """Options shared by `run` and `serve`: what to read, where to publish, what to accept."""
    parser.add_argument("--raw", type=Path, default=DEFAULT_RAW, help="folder of raw listings (default: %(default)s)")
    _out_arg(parser)
    parser.add_argument(
        "--max-reject-rate", type=_rate, default=DEFAULT_MAX_REJECT_RATE,
        help="fail without publishing when more than this share of records is rejected (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument("--keep", type=_positive, default=None, help="keep only the N newest versions (default: all)")


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser (defaults live here only)."""
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="parse every listing and publish a new version")
    _refresh_args(run)
    run.add_argument(
        "--as-of", type=_iso_date, default=None,
        help="capture date for files whose name has no YYYY-MM-DD (default: their modification date)",
    )  # fmt: skip
    run.add_argument("--force", action="store_true", help="publish even when latest has the same content")
    run.add_argument(
        "--lock-timeout",
        type=float,
        default=DEFAULT_LOCK_TIMEOUT_S,
        help="seconds to wait for another run (default: %(default)s)",
    )
    scale = run.add_mutually_exclusive_group()
    scale.add_argument(
        "--workers", type=_positive, default=None, help="parse files on a local Dask cluster of N workers"
    )
    scale.add_argument("--dask-address", default=None, help="parse files on an existing Dask cluster (tcp://HOST:PORT)")
    run.add_argument("--quiet", action="store_true", help="for cron: only warnings and the final summary")
    run.add_argument("--refresh", action="store_true", help="re-parse every listing, ignoring the cache")

    serve = commands.add_parser("serve", help="register a scheduled deployment on a Prefect server and serve it")
    serve.add_argument("--cron", required=True, help='cron schedule, e.g. "0 6 * * *" (daily at 06:00 UTC)')
    serve.add_argument("--name", default="scheduled-refresh", help="deployment name (default: %(default)s)")
    _refresh_args(serve)

    validate = commands.add_parser("validate", help="re-validate a version folder against the contract")
    validate.add_argument("path", type=Path, help="a version folder, e.g. data/processed/latest")

    versions = commands.add_parser("versions", help="list published versions")
    _out_arg(versions)

    diff = commands.add_parser("diff", help="what changed between two versions")
    diff.add_argument("old", help="version id, e.g. 000001")
    diff.add_argument("new", nargs="?", default=None, help="version id (default: latest)")
    _out_arg(diff)
    diff.add_argument("--limit", type=int, default=20, help="changed papers to list (default: %(default)s)")

    show = commands.add_parser("show", help="a version's manifest summary and the first rows of a table")
    _out_arg(show)
    show.add_argument("--version", default=None, help="version id (default: latest)")
    show.add_argument("--table", default="papers", help="table to show (default: %(default)s)")
    show.add_argument("--limit", type=int, default=10, help="rows to show (default: %(default)s)")
    return parser


def _run(args: argparse.Namespace) -> int:
    from pipeline.sources import InputError, discover_sources

    try:
        # Fail fast, before Prefect's start-up, when there is nothing to read.
        discover_sources(args.raw, args.as_of)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    from pipeline.flow import RejectRateExceededError, api_for_workers, refresh, task_runner
    from pipeline.report import report_markdown
    from pipeline.store import StoreError
    from schemas import DatasetInvalidError

    runner = task_runner(args.workers, args.dask_address)
    flow = refresh.with_options(task_runner=runner) if runner is not None else refresh
    api = api_for_workers() if runner is not None else contextlib.nullcontext()
    try:
        with api:
            summary = flow(
                **flow_parameters(
                    args.raw,
                    args.out,
                    as_of=args.as_of,
                    force=args.force,
                    lock_timeout_s=args.lock_timeout,
                    max_reject_rate=args.max_reject_rate,
                    keep=args.keep,
                    refresh_cache=args.refresh,
                    # Two parse tasks per worker keep every worker busy; an existing cluster's size
                    # is unknown here, so assume a small one.
                    min_tasks=2 * args.workers if args.workers else (16 if args.dask_address else 1),
                )
            )
    except (InputError, StoreError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except RejectRateExceededError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except DatasetInvalidError as err:
        print(f"error: the dataset failed validation; nothing was published.\n{err}", file=sys.stderr)
        return 1
    print(report_markdown(summary), end="")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from pipeline.store import check_version_folder
    from schemas import MODELS
    from schemas.validate import format_report

    if not args.path.is_dir():
        print(f"error: {args.path} is not a folder", file=sys.stderr)
        return 2
    report = check_version_folder(args.path)
    if len(report):
        print(f"{args.path} does not conform to the contract:\n{format_report(report)}", file=sys.stderr)
        return 1
    print(f"{args.path} conforms to the contract ({len(MODELS)} tables, types, keys, row counts)")
    return 0


def _versions(args: argparse.Namespace) -> int:
    from pipeline import store

    current = store.latest_id(args.out)
    for version_id in store.version_ids(args.out):
        manifest = store.read_manifest(store.version_path(args.out, version_id))
        marker = "*" if version_id == current else " "
        papers = manifest["row_counts"].get("papers", 0)
        changes = manifest["row_counts"].get("changes", 0)
        print(f"{marker} {version_id}  {manifest['created_at']}  papers={papers}  changes={changes}")
    return 0


SERVER_HELP = """\
A schedule needs a running Prefect server (the temporary one that `run` starts cannot schedule):

    .venv/bin/prefect server start                     # in another terminal; SQLite by default
    export PREFECT_API_URL=http://127.0.0.1:4200/api
    .venv/bin/python -m pipeline serve --cron "0 6 * * *"
"""


def _serve(args: argparse.Namespace) -> int:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    from pipeline.flow import refresh

    api_url = PREFECT_API_URL.value()
    if not api_url:
        print(f"error: PREFECT_API_URL is not set.\n{SERVER_HELP}", file=sys.stderr)
        return 2
    with get_client(sync_client=True) as client:
        failure = client.api_healthcheck()
    if failure is not None:
        print(f"error: no Prefect server answers at {api_url} ({failure}).\n{SERVER_HELP}", file=sys.stderr)
        return 2
    print(f"serving deployment listings-to-parquet/{args.name} on {api_url} with cron {args.cron!r}; Ctrl-C stops")
    refresh.serve(
        name=args.name,
        cron=args.cron,
        parameters={
            **flow_parameters(args.raw, args.out, max_reject_rate=args.max_reject_rate, keep=args.keep),
            # stored in the deployment as JSON, and read from wherever the served process runs
            "raw_dir": str(args.raw.resolve()),
            "out_dir": str(args.out.resolve()),
        },
        description="Refresh the listings dataset from every capture in the raw folder.",
        print_starting_message=False,
    )
    return 0


def _diff(args: argparse.Namespace) -> int:
    from pipeline import store
    from pipeline.tables import CHANGE_INPUTS, changes_table
    from schemas.tables import CHANGE_KINDS

    try:
        old_path = store.version_path(args.out, args.old)
        new_path = store.version_path(args.out, args.new)
    except store.StoreError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    old, new = store.read_tables(old_path, CHANGE_INPUTS), store.read_tables(new_path, CHANGE_INPUTS)
    changes = changes_table(old, new)
    print(f"{old_path.name} → {new_path.name}: {len(old['papers'])} → {len(new['papers'])} papers")
    counts = changes["change"].value_counts()
    print("  " + (", ".join(f"{counts.get(k, 0)} {k}" for k in CHANGE_KINDS)))
    titles: dict[str, str] = {}
    for frame in (old["papers"], new["papers"]):
        titles.update(zip(frame["paper_id"].astype(str), frame["title"].astype(str), strict=True))
    for change, paper_id, changed_fields in changes.head(args.limit).itertuples(index=False):
        fields = f" ({changed_fields})" if changed_fields else ""
        print(f"  {change:<8} {paper_id}  {titles[str(paper_id)][:70]}{fields}")
    if len(changes) > args.limit:
        print(f"  ... {len(changes) - args.limit} more")
    return 0


def _show(args: argparse.Namespace) -> int:
    import pandas as pd

    from pipeline import store
    from schemas import MODELS

    if args.table not in MODELS:
        print(f"error: no table {args.table!r}; tables: {', '.join(MODELS)}", file=sys.stderr)
        return 2
    try:
        path = store.version_path(args.out, args.version)
    except store.StoreError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    manifest = store.read_manifest(path)
    print(f"version {manifest['id']} (parent {manifest['parent_id']}), created {manifest['created_at']}")
    print(f"inputs: {len(manifest['inputs'])}  records: {manifest['records']}  rejects: {manifest['rejects']}")
    frame = store.read_tables(path, [args.table])[args.table]
    with pd.option_context("display.max_columns", 8, "display.width", 160, "display.max_colwidth", 40):
        print(f"{args.table}: {len(frame)} rows")
        print(frame.head(args.limit).to_string(index=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    if getattr(args, "quiet", False):
        # Read by Prefect when it is first imported, which happens after this point.
        os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
        os.environ["PREFECT_SERVER_LOGGING_LEVEL"] = "ERROR"
    handlers = {
        "run": _run,
        "validate": _validate,
        "versions": _versions,
        "diff": _diff,
        "show": _show,
        "serve": _serve,
    }
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
