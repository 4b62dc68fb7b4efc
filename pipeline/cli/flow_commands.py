"""The commands that run the flow through Prefect: `run`, once, and `serve`, on a schedule."""

from __future__ import annotations

import argparse
import logging
import traceback
from collections.abc import Callable, Sequence

import httpx
from prefect.logging.handlers import PrefectConsoleHandler
from prefect.settings import PREFECT_API_URL

from pipeline.cli.commands import error
from pipeline.cli.parser import flow_parameters
from pipeline.errors import EXIT_INTERNAL, EXIT_NO_PREFECT, EXIT_OK, PipelineError, StoreError
from pipeline.orchestrate.flow import refresh
from pipeline.orchestrate.prefect_api import prefect_api, server_answers
from pipeline.orchestrate.runners import task_runner
from pipeline.published import Store
from pipeline.raw.sources import Source, find_listings
from pipeline.reported.summary import report_markdown
from pipeline.settings import startup_allowance
from pipeline.staged.stage import start_parsers, worth_starting_parsers
from pipeline.staged.store import known_inputs
from pipeline.storage import Storage

SERVER_HELP = """\
A schedule needs a running Prefect server (the temporary one that `run` starts cannot schedule):

    .venv/bin/prefect server start                     # in another terminal; SQLite by default
    export PREFECT_API_URL=http://127.0.0.1:4200/api
    .venv/bin/python -m pipeline serve --cron "0 6 * * *"
"""


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


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"run": run, "serve": serve}
