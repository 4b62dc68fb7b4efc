"""What each command of the CLI does, and the exit code it ends with (each error class carries its own)."""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Callable, Sequence

import httpx
from prefect.logging.handlers import PrefectConsoleHandler
from prefect.settings import PREFECT_API_URL

from pipeline.assembled.changes import changes_between
from pipeline.cli.parser import flow_parameters
from pipeline.consume.export_delta import VERSION_KEY, export_delta
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
from pipeline.published import Store, check_location, export_version, read_tables, version_parts
from pipeline.raw.sources import Source, find_listings
from pipeline.reported.summary import report_markdown
from pipeline.settings import startup_allowance
from pipeline.staged.stage import start_parsers, worth_starting_parsers
from pipeline.staged.store import known_inputs
from pipeline.storage import Storage
from schemas.tables import CHANGE_KINDS, MODELS
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


def _latest(out: Storage) -> str | None:
    return Store.open(out).latest_id()


def _what_was_published(out: Storage, before: str | None) -> str:
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
        inputs = find_listings(args.raw, args.as_of)
        store = Store.open(args.out)
        store.check_usable()
        latest_before = store.latest_id()
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
    if runner is None:
        _start_parsers_early(inputs.sources, store, parameters["workers"], args.refresh)
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


def _start_parsers_early(sources: Sequence[Source], store: Store, workers: int, refresh: bool) -> None:
    """Start the parsers' forkserver while Prefect's server starts, when the listings that the last
    run did not read as they are now are big enough to be parsed on worker processes (a
    forkserver started for nothing would cost ~100 MB and CPU)."""
    try:
        known = {} if refresh else known_inputs(store.staged)
    except PipelineError:
        return  # the run reports it
    new = sum(
        s.size_bytes for s in sources if (k := known.get(s.name)) is None or (k.tag, k.size) != (s.tag, s.size_bytes)
    )
    if worth_starting_parsers(new, workers):
        start_parsers()


def validate(args: argparse.Namespace) -> int:
    """`validate`: a version (its folder in a store, or a hand-off folder), against the contract."""
    try:
        report = check_location(args.path)
    except StoreError as err:
        return error(err, err.exit_code)
    if len(report):
        print(f"{args.path.url} does not conform to the contract:\n{format_report(report)}", file=sys.stderr)
        return EXIT_REFUSED
    print(
        f"{args.path.url} conforms to the contract ({len(MODELS)} tables; files match the manifest's sha256; "
        "page checksums, types, keys and row counts checked)"
    )
    return EXIT_OK


def versions(args: argparse.Namespace) -> int:
    """`versions`: every published version, `*` on latest."""
    store = Store.open(args.out)
    try:
        ids = store.version_ids()
    except StoreError as err:
        return error(err, err.exit_code)
    if not ids and not store.storage.list().objects:
        return error(f"no dataset at {store.url} (pass --out DIR)", EXIT_UNUSABLE)
    if not ids:
        print(f"no versions published under {store.url}")
    for version_id in ids:
        marker = "*" if version_id == ids[-1] else " "
        try:
            manifest = store.manifest(version_id)
            counts = manifest.row_counts
            print(
                f"{marker} {version_id}  {manifest.created_at}  papers={counts['papers']}  changes={counts['changes']}"
            )
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
        parameters={**parameters, "raw_dir": args.raw.uri(), "out_dir": args.out.uri()},
        description="Refresh the listings dataset from every capture in the raw folder.",
        print_starting_message=False,
    )
    return EXIT_OK


def diff(args: argparse.Namespace) -> int:
    """`diff`: what changed between two versions."""
    store = Store.open(args.out)
    try:
        old_id, new_id = store.resolve(args.old), store.resolve(args.new)
        old = version_parts(store, store.manifest(old_id), CHANGE_INPUTS, check_types=False)
        new = version_parts(store, store.manifest(new_id), CHANGE_INPUTS, check_types=False)
        changes, before, after = changes_between(old, new)
    except StoreError as err:
        return error(err, err.exit_code)
    print(f"{old_id} → {new_id}: {before} → {after} papers")
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
    store = Store.open(args.out)
    try:
        version_id = store.resolve(args.version)
        manifest = store.manifest(version_id)
        frame = read_tables(store, version_id, [args.table])[args.table]
    except StoreError as err:
        return error(err, err.exit_code)
    parent = manifest.parent_id
    lineage = f"parent {parent}" if parent else "no parent: the first version"
    print(f"version {manifest.id} ({lineage}), created {manifest.created_at}")
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
    """`export delta`: every version as Delta tables, adding only the new ones; `export version`:
    one version as a self-contained folder."""
    if args.format == "version":
        return _export_version(args)

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


def _export_version(args: argparse.Namespace) -> int:
    store = Store.open(args.out)
    try:
        version_id = store.resolve(None if args.version == "latest" else args.version)
        where, rows = export_version(store, version_id, args.dir)
    except PipelineError as err:
        return error(err.message, err.exit_code)
    print(f"exported version {version_id} to {where}: {rows['papers']} papers in {len(rows)} tables, one file each "
          f"(`validate {where}` checks it)")  # fmt: skip
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
