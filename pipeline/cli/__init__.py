"""Command line: `python -m pipeline run|serve|validate|versions|diff|show|export` (also `paper-listings`)."""

from __future__ import annotations

import os
import sys
import traceback

from pipeline.cli.parser import build_parser, flow_parameters
from pipeline.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, PipelineError
from pipeline.settings import assembly_memory, startup_allowance

# Before Prefect is imported: no telemetry, and quiet shutdown of the temporary server.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")

__all__ = ["build_parser", "flow_parameters", "main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code (`pipeline.errors`: EXIT_*)."""
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
    try:
        startup_allowance()  # Prefect reads the same setting when imported, and fails on a bad value
        assembly_memory()  # a bad value, said now rather than after the listings are parsed
    except PipelineError as err:
        print(f"error: {err.message}", file=sys.stderr)
        return err.exit_code
    # The flow's commands import Prefect, which reads the settings above when it is first
    # imported: they are loaded only now, and only for a command that runs the flow (the others
    # start ~2 s sooner without it).
    from pipeline.cli.commands import COMMANDS, error

    if args.command not in COMMANDS:
        from pipeline.cli.flow_commands import COMMANDS

    try:
        code = COMMANDS[args.command](args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`show | head`): stop writing, quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        return error("interrupted", EXIT_INTERRUPTED)
    except Exception:
        traceback.print_exc()
        return error("internal error (a bug): the traceback above says where", EXIT_INTERNAL)
    return code
