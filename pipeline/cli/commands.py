"""What each command of the CLI does, and the exit code it ends with (each error class carries its own)."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path

import httpx
from prefect.logging.handlers import PrefectConsoleHandler
from prefect.settings import PREFECT_API_URL

from pipeline.assembled.changes import changes_between
from pipeline.cli.parser import flow_parameters
from pipeline.consume.export_delta import VERSION_KEY, export_delta
from pipeline.db import check_plain_path
from pipeline.errors import (
    EXIT_INTERNAL,
    EXIT_NO_PREFECT,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNUSABLE,
    PipelineError,
    StoreError,
)
from pipeline.orchestrate.flow import refresh
from pipeline.orchestrate.prefect_api import prefect_api, server_answers
from pipeline.orchestrate.runners import task_runner
from pipeline.parse.tables import CHANGE_INPUTS
from pipeline.published.layout import LATEST, VERSIONS, check_version_id, check_writable
from pipeline.published.manifest import read_manifest
from pipeline.published.remote import RemoteStore, readable
from pipeline.published.validate import check_version_folder
from pipeline.published.verify import read_tables, verified_files
from pipeline.published.versions import latest_id, version_ids, version_path
from pipeline.raw.remote import find_listings
from pipeline.raw.sources import discover_sources
from pipeline.reported.summary import report_markdown
from pipeline.settings import startup_allowance
from pipeline.staged.stage import start_parsers, worth_starting_parsers
from pipeline.staged.store import STAGED, staged_listings
from pipeline.storage.s3 import S3Location
from schemas import MODELS
from schemas.tables import CHANGE_KINDS
from schemas.validate import format_report

SHOW_COLUMN_CHARS = 40
SHOW_MAX_COLUMNS = 8
SERVER_HELP = """\
A schedule needs a running Prefect server (the temporary one that `run` starts cannot schedule):

    .venv/bin/prefect server start                     # in another terminal; SQLite by default
    export PREFECT_API_URL=http://127.0.0.1:4200/api
    .venv/bin/python -m pipeline serve --cron "0 6 * * *"
"""


def error(message: object, code: int) -> int:
    """Print `message` as the command's one line of failure; return `code`."""
    print(f"error: {message}", file=sys.stderr)
    return code


class _ExpectedFailureFilter(logging.Filter):
    """Keeps Prefect's console log to one line for an expected failure (the CLI prints the
    error itself): its traceback is dropped, and with --quiet the line too."""

    def __init__(self, quiet: bool) -> None:
        super().__init__()
        self.quiet = quiet
        kinds: list[type[BaseException]] = [PipelineError]
        for kind in kinds:
            kinds.extend(kind.__subclasses__())
        self.names = tuple(kind.__name__ for kind in kinds)

    def filter(self, record: logging.LogRecord) -> bool:
        failure = record.exc_info[1] if record.exc_info else None
        if isinstance(failure, PipelineError):
            record.exc_info, record.exc_text = None, None
            return not self.quiet
        # Prefect's closing line of a failed run names the exception only in its text.
        message = record.getMessage() if record.levelno >= logging.ERROR and failure is None else ""
        if message.startswith("Finished in state Failed") and any(f" {name}: " in message for name in self.names):
            return not self.quiet
        return True


def _quiet_expected_failures(quiet: bool) -> None:
    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler):
            for old in [f for f in handler.filters if isinstance(f, _ExpectedFailureFilter)]:
                handler.removeFilter(old)  # main() called again in one process (tests)
            handler.addFilter(_ExpectedFailureFilter(quiet))


def _latest(out: Path | S3Location) -> str | None:
    return RemoteStore(out).latest_id() if isinstance(out, S3Location) else latest_id(out)


def _what_was_published(out: Path | S3Location, before: str | None) -> str:
    """For a failure after the flow began: did a version go out before it?"""
    try:
        now = _latest(out)
    except StoreError:
        now = before
    if now != before:
        return f"version {now} was published before the failure, and is complete"
    return "nothing was published"


def run(args: argparse.Namespace) -> int:
    """`run`: the flow once, against the configured Prefect API or a temporary server."""
    try:
        allowance = startup_allowance()  # before Prefect reads the same setting
        # Fail fast, before Prefect's start-up, when there is nothing to read or nowhere to write.
        find_listings(args.raw, args.as_of)
        if isinstance(args.out, S3Location):
            RemoteStore(args.out).storage.check_usable()
        else:
            check_writable(args.out)
        latest_before = _latest(args.out)
    except PipelineError as err:
        return error(err.message, err.exit_code)
    _quiet_expected_failures(args.quiet)
    runner = task_runner(args.workers, args.dask_address)
    flow = refresh.with_options(task_runner=runner) if runner is not None else refresh
    # Two parse tasks per worker keep every worker busy; an existing cluster's size is unknown
    # here, so assume a small one.
    min_tasks = 2 * args.workers if args.workers else (16 if args.dask_address else 1)
    parameters = flow_parameters(
        args.raw, args.out, as_of=args.as_of, force=args.force, lock_timeout_s=args.lock_timeout,
        max_reject_rate=args.max_reject_rate, max_removed_rate=args.max_removed_rate, keep=args.keep,
        refresh_cache=args.refresh, dask=runner is not None, workers=args.processes, min_tasks=min_tasks,
    )  # fmt: skip
    if runner is None and isinstance(args.raw, Path) and isinstance(args.out, Path):
        _start_parsers_early(args.raw, args.out, parameters["workers"])
    try:
        with prefect_api(allowance):
            summary = flow(**parameters)
    except PipelineError as err:
        return error(err.message, err.exit_code)
    except httpx.TransportError as err:
        published = _what_was_published(args.out, latest_before)
        return error(f"lost the Prefect API during the run ({err}); {published}", EXIT_NO_PREFECT)
    except Exception:
        traceback.print_exc()
        published = _what_was_published(args.out, latest_before)
        return error(f"internal error (a bug): the traceback above says where; {published}", EXIT_INTERNAL)
    print(report_markdown(summary), end="")
    return EXIT_OK


def _start_parsers_early(raw: Path, out: Path, workers: int) -> None:
    """Start the parsers' forkserver while Prefect's server starts, when the listings that the
    staged layer does not seem to hold are big enough to be parsed on worker processes (a
    forkserver started for nothing would cost ~100 MB and CPU)."""
    try:
        sources = discover_sources(raw, None).sources
    except PipelineError:
        return  # the run reports it
    staged = staged_listings(out / STAGED)
    if worth_starting_parsers(sum(s.size_bytes for s in sources if (s.name, s.size_bytes) not in staged), workers):
        start_parsers()


def validate(args: argparse.Namespace) -> int:
    """`validate`: a version folder, or a version's URL, against the contract."""
    if isinstance(args.path, S3Location):
        return _validate_remote(args.path)
    if not args.path.is_dir():
        return error(f"{args.path} is not a folder", EXIT_UNUSABLE)
    return _report_validation(args.path, args.path)


def _validate_remote(location: S3Location) -> int:
    """`validate` of ``s3://.../versions/<id>`` (or ``.../latest``): every object of the version
    copied into a temporary folder, then checked there as on disk."""
    dataset, _, version = location.prefix.rpartition("/")
    if dataset.endswith(f"/{VERSIONS}") or dataset == VERSIONS:
        dataset = dataset[: -len(VERSIONS)].rstrip("/")
    elif version != LATEST:
        return error(f"{location.url} names no version: give .../{VERSIONS}/<id> or .../{LATEST}", EXIT_UNUSABLE)
    store = RemoteStore(S3Location(location.bucket, dataset))
    try:
        chosen = store.latest_id() if version == LATEST else check_version_id(version)
        if chosen is None:
            raise StoreError(f"no version has been published under {store.url}")
        with tempfile.TemporaryDirectory(prefix="paper-listings-validate-") as work:
            return _report_validation(store.pull_all(chosen, Path(work)), store.version_url(chosen))
    except StoreError as err:
        return error(err, err.exit_code)


def _report_validation(folder: Path, name: object) -> int:
    report = check_version_folder(folder)
    if len(report):
        print(f"{name} does not conform to the contract:\n{format_report(report)}", file=sys.stderr)
        return EXIT_REFUSED
    print(
        f"{name} conforms to the contract ({len(MODELS)} tables; files match the manifest's sha256; "
        "page checksums, types, keys and row counts checked)"
    )
    return EXIT_OK


def versions(args: argparse.Namespace) -> int:
    """`versions`: every published version, `*` on latest."""
    if isinstance(args.out, Path) and not args.out.is_dir():
        return error(f"no dataset folder at {args.out} (pass --out DIR)", EXIT_UNUSABLE)
    try:
        folder = readable(args.out, names=[])
        current = latest_id(folder)
    except StoreError as err:
        return error(err, err.exit_code)
    ids = version_ids(folder)
    if not ids:
        print(f"no versions published under {args.out}")
    for version_id in ids:
        marker = "*" if version_id == current else " "
        try:
            manifest = read_manifest(version_path(folder, version_id))
            counts, created = manifest["row_counts"], manifest["created_at"]
            print(f"{marker} {version_id}  {created}  papers={counts['papers']}  changes={counts['changes']}")
        except (StoreError, KeyError, TypeError):
            print(f"{marker} {version_id}  (damaged: its manifest cannot be read; see `validate`)")
    return EXIT_OK


def serve(args: argparse.Namespace) -> int:
    """`serve`: a scheduled deployment of the flow on a running Prefect server."""
    api_url = PREFECT_API_URL.value()
    if not api_url:
        return error(f"PREFECT_API_URL is not set.\n{SERVER_HELP}", EXIT_NO_PREFECT)
    failure = server_answers(api_url)
    if failure is not None:
        return error(f"no Prefect server answers at {api_url} ({failure}).\n{SERVER_HELP}", EXIT_NO_PREFECT)
    print(f"serving deployment listings-to-parquet/{args.name} on {api_url} with cron {args.cron!r}; Ctrl-C stops")
    parameters = flow_parameters(args.raw, args.out, max_reject_rate=args.max_reject_rate,
                                 max_removed_rate=args.max_removed_rate, keep=args.keep)  # fmt: skip
    refresh.serve(
        name=args.name,
        cron=args.cron,
        # stored in the deployment as JSON, and read from wherever the served process runs
        parameters={**parameters, "raw_dir": _absolute(args.raw), "out_dir": _absolute(args.out)},
        description="Refresh the listings dataset from every capture in the raw folder.",
        print_starting_message=False,
    )
    return EXIT_OK


def _absolute(location: Path | S3Location) -> str:
    return location.url if isinstance(location, S3Location) else str(location.resolve())


def diff(args: argparse.Namespace) -> int:
    """`diff`: what changed between two versions."""
    try:
        out = readable(args.out, [f"{name}.parquet" for name in CHANGE_INPUTS])
        check_plain_path(out)
        old_path = version_path(out, args.old)
        new_path = version_path(out, args.new)
        old, new = verified_files(old_path, CHANGE_INPUTS), verified_files(new_path, CHANGE_INPUTS)
        changes, before, after = changes_between(old, new)
    except StoreError as err:
        return error(err, err.exit_code)
    print(f"{old_path.name} → {new_path.name}: {before} → {after} papers")
    counts = changes["change"].value_counts()
    print("  " + (", ".join(f"{counts.get(k, 0)} {k}" for k in CHANGE_KINDS)))
    for row in changes.head(args.limit).itertuples(index=False):
        fields = f" ({row.changed_fields!s})" if row.changed_fields else ""
        print(f"  {row.change!s:<8} {row.paper_id!s}  {_cell(row.title, 70)}{fields}")
    if len(changes) > args.limit:
        print(f"  ... {len(changes) - args.limit} more")
    return EXIT_OK


def _cell(value: object, width: int = SHOW_COLUMN_CHARS) -> str:
    """A value on one line of at most `width` characters."""
    text = " ".join(str(value).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def show(args: argparse.Namespace) -> int:
    """`show`: a version's manifest summary and the first rows of a table."""
    if args.table not in MODELS:
        return error(f"no table {args.table!r}; tables: {', '.join(MODELS)}", EXIT_UNUSABLE)
    try:
        path = version_path(readable(args.out, [f"{args.table}.parquet"]), args.version)
        manifest = read_manifest(path)
        frame = read_tables(path, [args.table])[args.table]
    except StoreError as err:
        return error(err, err.exit_code)
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


def export(args: argparse.Namespace) -> int:
    """`export delta`: every version as Delta tables, adding only the new ones."""

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        result = export_delta(args.out, args.dir, on_progress=progress)
    except PipelineError as err:
        return error(err.message, err.exit_code)
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


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": run,
    "validate": validate,
    "versions": versions,
    "diff": diff,
    "show": show,
    "serve": serve,
    "export": export,
}
