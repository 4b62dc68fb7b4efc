"""Command line: `python -m pipeline run|serve|validate|versions|diff|show|export`."""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import traceback
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

# Before Prefect is imported: no telemetry, and quiet shutdown of the temporary server.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")

DEFAULT_RAW = Path("data/raw")
DEFAULT_OUT = Path("data/processed")
# Set by an operator (or a scheduler's environment) instead of --raw / --out on every command.
RAW_ENV = "PIPELINE_RAW_DIR"
OUT_ENV = "PIPELINE_OUT_DIR"
DEFAULT_MAX_REJECT_RATE = 0.05
DEFAULT_MAX_REMOVED_RATE = 0.10
DEFAULT_LOCK_TIMEOUT_S = 600.0

# Exit codes (the README's table says the same).
EXIT_OK = 0  # published, or up to date
EXIT_REFUSED = 1  # a data guard refused the run (rejects, removals, validation): nothing published
EXIT_UNUSABLE = 2  # inputs or store unusable (missing folder, full or read-only disk, lock, damage)
EXIT_NO_PREFECT = 3  # no Prefect API: the temporary server did not start, or PREFECT_API_URL is down
EXIT_INTERNAL = 4  # an unexpected error: a bug, reported with its traceback
EXIT_INTERRUPTED = 130  # Ctrl-C
# A task run costs ~25 ms of Prefect bookkeeping: ~8 MB of listings per parse task outweighs it.
DEFAULT_BATCH_BYTES = 8_000_000
ONE_TASK = 1 << 62


def _iso_date(text: str) -> date:
    from pipeline.normalize import EARLIEST_DATE, LATEST_CAPTURE_DATE, plausible_capture_date

    try:
        value = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {text!r}") from None
    if not plausible_capture_date(value):
        raise argparse.ArgumentTypeError(f"a capture date from {EARLIEST_DATE} to {LATEST_CAPTURE_DATE}, not {text}")
    return value


def flow_parameters(
    raw_dir: Path,
    out_dir: Path,
    *,
    as_of: date | None = None,
    force: bool = False,
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
    max_reject_rate: float = DEFAULT_MAX_REJECT_RATE,
    max_removed_rate: float = DEFAULT_MAX_REMOVED_RATE,
    keep: int | None = None,
    refresh_cache: bool = False,
    dask: bool = False,
    min_tasks: int = 1,
    workers: int | None = None,
    chunk_bytes: int | None = None,
) -> dict[str, Any]:
    """Every parameter of the `refresh` flow, the CLI's defaults filling those not given."""
    from pipeline.staging import DEFAULT_CHUNK_BYTES

    return {
        "raw_dir": raw_dir,
        "out_dir": out_dir,
        "as_of": as_of,
        "force": force,
        "lock_timeout_s": lock_timeout_s,
        "max_reject_rate": max_reject_rate,
        "max_removed_rate": max_removed_rate,
        "keep": keep,
        "refresh_cache": refresh_cache,
        # On Dask, files are spread as tasks and each is parsed in its worker; here, all files
        # go to one task that parses their parts on every core.
        "batch_bytes": DEFAULT_BATCH_BYTES if dask else ONE_TASK,
        "min_tasks": min_tasks,
        "workers": 1 if dask else workers or os.cpu_count() or 1,
        "chunk_bytes": chunk_bytes or DEFAULT_CHUNK_BYTES,
    }


def _number(text: str) -> float:
    """`text` as a float; NaN (which every range check refuses) when it is no number."""
    try:
        return float(text)
    except ValueError:
        return math.nan


def _rate(text: str) -> float:
    value = _number(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"a share between 0 and 1, not {text}")
    return value


def _seconds(text: str) -> float:
    value = _number(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"a number of seconds, 0 or more, not {text}")
    return value


def _cron(text: str) -> str:
    from prefect.client.schemas.schedules import CronSchedule

    try:
        CronSchedule(cron=text)
    except ValueError:  # pydantic's ValidationError is a ValueError
        raise argparse.ArgumentTypeError(f'not a cron schedule: {text!r} (e.g. "0 6 * * *")') from None
    return text


def _positive(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a whole number, 1 or more, not {text}")
    return int(text)


def _count(text: str) -> int:
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"a whole number, 0 or more, not {text}")
    return int(text)


def _folder_default(variable: str, default: Path) -> Path:
    """The folder an environment variable names (an empty one counts as unset), else `default`."""
    return Path(os.environ.get(variable) or default)


def _out_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, default=_folder_default(OUT_ENV, DEFAULT_OUT),
        help=f"dataset folder (default: ${OUT_ENV}, else {DEFAULT_OUT}; now %(default)s)",
    )  # fmt: skip


def _refresh_args(parser: argparse.ArgumentParser) -> None:
    """Options shared by `run` and `serve`: what to read, where to publish, what to accept."""
    parser.add_argument(
        "--raw", type=Path, default=_folder_default(RAW_ENV, DEFAULT_RAW),
        help=f"folder of raw listings (default: ${RAW_ENV}, else {DEFAULT_RAW}; now %(default)s)",
    )  # fmt: skip
    _out_arg(parser)
    parser.add_argument(
        "--max-reject-rate", type=_rate, default=DEFAULT_MAX_REJECT_RATE,
        help="fail without publishing when more than this share of records is rejected (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--max-removed-rate", type=_rate, default=DEFAULT_MAX_REMOVED_RATE,
        help="fail without publishing when more than this share of the current papers would disappear; "
        "1 allows any removal (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument("--keep", type=_positive, default=None, help="keep only the N newest versions (default: all)")


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser (defaults live here only)."""
    from pipeline import __version__

    invoked_as = Path(sys.argv[0]).name
    prog = invoked_as if invoked_as == "paper-listings" else "python -m pipeline"
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("--version", action="version", version=f"paper-listings {__version__}")
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
        type=_seconds,
        default=DEFAULT_LOCK_TIMEOUT_S,
        help="seconds to wait for another run (default: %(default)s)",
    )
    scale = run.add_mutually_exclusive_group()
    scale.add_argument(
        "--processes", type=_positive, default=None,
        help="processes that parse listings on this machine (default: one per core)",
    )  # fmt: skip
    scale.add_argument(
        "--workers", type=_positive, default=None, help="parse files on a local Dask cluster of N workers"
    )
    scale.add_argument("--dask-address", default=None, help="parse files on an existing Dask cluster (tcp://HOST:PORT)")
    run.add_argument("--quiet", action="store_true", help="for cron: only warnings and the final summary")
    run.add_argument("--refresh", action="store_true", help="re-parse every listing, ignoring the cache")

    serve = commands.add_parser("serve", help="register a scheduled deployment on a Prefect server and serve it")
    serve.add_argument("--cron", required=True, type=_cron, help='cron schedule, e.g. "0 6 * * *" (daily at 06:00 UTC)')
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
    diff.add_argument("--limit", type=_count, default=20, help="changed papers to list (default: %(default)s)")

    show = commands.add_parser("show", help="a version's manifest summary and the first rows of a table")
    _out_arg(show)
    show.add_argument("--version", default=None, help="version id (default: latest)")
    show.add_argument("--table", default="papers", help="table to show (default: %(default)s)")
    show.add_argument("--limit", type=_count, default=10, help="rows to show (default: %(default)s)")

    export = commands.add_parser("export", help="export every version as Delta tables, adding only new versions")
    export.add_argument("format", choices=["delta"], help="the format (Delta Lake; needs paper-listings[delta])")
    export.add_argument("dir", type=Path, metavar="DIR", help="target folder: one Delta table per table, DIR/<table>")
    _out_arg(export)
    return parser


class _ExpectedFailureFilter(logging.Filter):
    """Keeps Prefect's console log to one line for an expected failure (the CLI prints the
    error itself): its traceback is dropped, and with --quiet the line too."""

    def __init__(self, expected: tuple[type[BaseException], ...], quiet: bool) -> None:
        super().__init__()
        self.expected = expected
        self.quiet = quiet
        kinds: list[type[BaseException]] = list(expected)
        for kind in kinds:
            kinds.extend(kind.__subclasses__())
        self.names = tuple(kind.__name__ for kind in kinds)

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, self.expected):
            record.exc_info, record.exc_text = None, None
            return not self.quiet
        # Prefect's closing line of a failed run names the exception only in its text.
        message = record.getMessage() if record.levelno >= logging.ERROR and error is None else ""
        if message.startswith("Finished in state Failed") and any(f" {name}: " in message for name in self.names):
            return not self.quiet
        return True


def _quiet_expected_failures(expected: tuple[type[BaseException], ...], quiet: bool) -> None:
    from prefect.logging.handlers import PrefectConsoleHandler

    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler):
            for old in [f for f in handler.filters if isinstance(f, _ExpectedFailureFilter)]:
                handler.removeFilter(old)  # main() called again in one process (tests)
            handler.addFilter(_ExpectedFailureFilter(expected, quiet))


def _error(message: object, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _run(args: argparse.Namespace) -> int:
    from pipeline import store
    from pipeline.prefect_api import PrefectUnavailableError, startup_allowance
    from pipeline.sources import InputError, discover_sources

    try:
        allowance = startup_allowance()  # before Prefect reads the same setting on import
    except PrefectUnavailableError as err:
        return _error(err, EXIT_NO_PREFECT)
    try:
        # Fail fast, before Prefect's start-up, when there is nothing to read or nowhere to write.
        discover_sources(args.raw, args.as_of)
        store.check_writable(args.out)
        latest_before = store.latest_id(args.out)
    except (InputError, store.StoreError) as err:
        return _error(err, EXIT_UNUSABLE)

    def what_was_published() -> str:
        """For a failure after the flow began: did a version go out before it?"""
        try:
            now = store.latest_id(args.out)
        except store.StoreError:
            now = latest_before
        if now != latest_before:
            return f"version {now} was published before the failure, and is complete"
        return "nothing was published"

    import httpx

    from pipeline.flow import RefusedError, refresh, task_runner
    from pipeline.prefect_api import prefect_api
    from pipeline.report import report_markdown
    from schemas import DatasetInvalidError

    _quiet_expected_failures((RefusedError, DatasetInvalidError, InputError, store.StoreError), args.quiet)
    runner = task_runner(args.workers, args.dask_address)
    flow = refresh.with_options(task_runner=runner) if runner is not None else refresh
    try:
        with prefect_api(allowance):
            summary = flow(
                **flow_parameters(
                    args.raw,
                    args.out,
                    as_of=args.as_of,
                    force=args.force,
                    lock_timeout_s=args.lock_timeout,
                    max_reject_rate=args.max_reject_rate,
                    max_removed_rate=args.max_removed_rate,
                    keep=args.keep,
                    refresh_cache=args.refresh,
                    # Two parse tasks per worker keep every worker busy; an existing cluster's size
                    # is unknown here, so assume a small one.
                    dask=runner is not None,
                    workers=args.processes,
                    min_tasks=2 * args.workers if args.workers else (16 if args.dask_address else 1),
                )
            )
    except PrefectUnavailableError as err:
        return _error(err, EXIT_NO_PREFECT)
    except (InputError, store.StoreError) as err:
        return _error(err, EXIT_UNUSABLE)
    except RefusedError as err:
        return _error(err, EXIT_REFUSED)
    except DatasetInvalidError as err:
        return _error(f"the dataset failed validation; nothing was published.\n{err}", EXIT_REFUSED)
    except httpx.TransportError as err:
        return _error(f"lost the Prefect API during the run ({err}); {what_was_published()}", EXIT_NO_PREFECT)
    except Exception:
        traceback.print_exc()
        return _error(f"internal error (a bug): the traceback above says where; {what_was_published()}", EXIT_INTERNAL)
    print(report_markdown(summary), end="")
    return EXIT_OK


def _validate(args: argparse.Namespace) -> int:
    from pipeline.store import check_version_folder
    from schemas import MODELS
    from schemas.validate import format_report

    if not args.path.is_dir():
        return _error(f"{args.path} is not a folder", EXIT_UNUSABLE)
    report = check_version_folder(args.path)
    if len(report):
        print(f"{args.path} does not conform to the contract:\n{format_report(report)}", file=sys.stderr)
        return EXIT_REFUSED
    print(
        f"{args.path} conforms to the contract ({len(MODELS)} tables; files match the manifest's sha256; "
        "page checksums, types, keys and row counts checked)"
    )
    return EXIT_OK


def _versions(args: argparse.Namespace) -> int:
    from pipeline import store

    if not args.out.is_dir():
        return _error(f"no dataset folder at {args.out} (pass --out DIR)", EXIT_UNUSABLE)
    try:
        current = store.latest_id(args.out)
    except store.StoreError as err:
        return _error(err, EXIT_UNUSABLE)
    ids = store.version_ids(args.out)
    if not ids:
        print(f"no versions published under {args.out}")
    for version_id in ids:
        marker = "*" if version_id == current else " "
        try:
            manifest = store.read_manifest(store.version_path(args.out, version_id))
            counts, created = manifest["row_counts"], manifest["created_at"]
            print(f"{marker} {version_id}  {created}  papers={counts['papers']}  changes={counts['changes']}")
        except (store.StoreError, KeyError, TypeError):
            print(f"{marker} {version_id}  (damaged: its manifest cannot be read; see `validate`)")
    return EXIT_OK


SERVER_HELP = """\
A schedule needs a running Prefect server (the temporary one that `run` starts cannot schedule):

    .venv/bin/prefect server start                     # in another terminal; SQLite by default
    export PREFECT_API_URL=http://127.0.0.1:4200/api
    .venv/bin/python -m pipeline serve --cron "0 6 * * *"
"""


def _serve(args: argparse.Namespace) -> int:
    from prefect.settings import PREFECT_API_URL

    from pipeline.flow import refresh
    from pipeline.prefect_api import server_answers

    api_url = PREFECT_API_URL.value()
    if not api_url:
        return _error(f"PREFECT_API_URL is not set.\n{SERVER_HELP}", EXIT_NO_PREFECT)
    failure = server_answers(api_url)
    if failure is not None:
        return _error(f"no Prefect server answers at {api_url} ({failure}).\n{SERVER_HELP}", EXIT_NO_PREFECT)
    print(f"serving deployment listings-to-parquet/{args.name} on {api_url} with cron {args.cron!r}; Ctrl-C stops")
    refresh.serve(
        name=args.name,
        cron=args.cron,
        parameters={
            **flow_parameters(
                args.raw,
                args.out,
                max_reject_rate=args.max_reject_rate,
                max_removed_rate=args.max_removed_rate,
                keep=args.keep,
            ),
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
    from pipeline.assemble import changes_between
    from pipeline.tables import CHANGE_INPUTS
    from schemas.tables import CHANGE_KINDS

    try:
        store.check_plain_path(args.out)
        old_path = store.version_path(args.out, args.old)
        new_path = store.version_path(args.out, args.new)
        old, new = store.verified_files(old_path, CHANGE_INPUTS), store.verified_files(new_path, CHANGE_INPUTS)
        changes, before, after = changes_between(old, new)
    except store.StoreError as err:
        return _error(err, EXIT_UNUSABLE)
    print(f"{old_path.name} → {new_path.name}: {before} → {after} papers")
    counts = changes["change"].value_counts()
    print("  " + (", ".join(f"{counts.get(k, 0)} {k}" for k in CHANGE_KINDS)))
    for row in changes.head(args.limit).itertuples(index=False):
        fields = f" ({row.changed_fields!s})" if row.changed_fields else ""
        print(f"  {row.change!s:<8} {row.paper_id!s}  {_cell(row.title, 70)}{fields}")
    if len(changes) > args.limit:
        print(f"  ... {len(changes) - args.limit} more")
    return EXIT_OK


SHOW_COLUMN_CHARS = 40
SHOW_MAX_COLUMNS = 8


def _cell(value: object, width: int = SHOW_COLUMN_CHARS) -> str:
    """A value on one line of at most `width` characters."""
    text = " ".join(str(value).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _show(args: argparse.Namespace) -> int:
    from pipeline import store
    from schemas import MODELS

    if args.table not in MODELS:
        return _error(f"no table {args.table!r}; tables: {', '.join(MODELS)}", EXIT_UNUSABLE)
    try:
        path = store.version_path(args.out, args.version)
        manifest = store.read_manifest(path)
        frame = store.read_tables(path, [args.table])[args.table]
    except store.StoreError as err:
        return _error(err, EXIT_UNUSABLE)
    parent = manifest.get("parent_id")
    lineage = f"parent {parent}" if parent else "no parent: the first version"
    print(f"version {manifest.get('id')} ({lineage}), created {manifest.get('created_at')}")
    inputs, records, rejects = len(manifest.get("inputs", [])), manifest.get("records"), manifest.get("rejects")
    print(f"inputs: {inputs}  records: {records}  rejects: {rejects}")
    print(
        f"{args.table}: {len(frame)} rows"
        + (f" (first {SHOW_MAX_COLUMNS} columns)" if frame.shape[1] > SHOW_MAX_COLUMNS else "")
    )
    shown = frame.head(args.limit).iloc[:, :SHOW_MAX_COLUMNS].map(_cell)
    print(shown.to_string(index=False))
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    from pipeline import store
    from pipeline.export_delta import VERSION_KEY, ExportError, export_delta

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        result = export_delta(args.out, args.dir, on_progress=progress)
    except (ExportError, store.StoreError) as err:
        return _error(err, EXIT_UNUSABLE)
    tables = f"{len(result.tables)} Delta tables"
    if result.exported:
        first, last = result.exported[0], result.exported[-1]
        summary = (
            f"exported {len(result.exported)} version(s) ({first} to {last}) to {result.target}: {tables}, "
            f"{result.commits} commits; {len(result.already)} version(s) were already there"
        )
    else:
        summary = f"{result.target} is up to date: {len(result.already)} version(s) in {tables}, nothing new to export"
    if result.shifted:
        summary += (
            f"; in {', '.join(result.shifted)} a Delta version is not project version − 1 (versions were pruned "
            f"before they were exported): each commit's {VERSION_KEY} names its version"
        )
    print(summary)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code (see the EXIT_* constants)."""
    for stream in (sys.stdout, sys.stderr):
        # Names from the file system may hold bytes that are not UTF-8: print them escaped.
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    if getattr(args, "quiet", False):
        # Read by Prefect and Dask when first imported, which happens after this point.
        os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
        os.environ["PREFECT_SERVER_LOGGING_LEVEL"] = "ERROR"
        os.environ["DASK_LOGGING__DISTRIBUTED"] = "error"
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "run": _run,
        "validate": _validate,
        "versions": _versions,
        "diff": _diff,
        "show": _show,
        "serve": _serve,
        "export": _export,
    }
    try:
        code = handlers[args.command](args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`show | head`): stop writing, quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        return _error("interrupted", EXIT_INTERRUPTED)
    except Exception:
        traceback.print_exc()
        return _error("internal error (a bug): the traceback above says where", EXIT_INTERNAL)
    return code


if __name__ == "__main__":
    sys.exit(main())
