"""The command line's arguments: every option, its check and its default (the rest in `pipeline.settings`)."""

from __future__ import annotations

import argparse
import math
import os
import sys
from datetime import date
from pathlib import Path
from typing import Any

from pipeline.errors import StoreError
from pipeline.parse.normalize import EARLIEST_DATE, LATEST_CAPTURE_DATE, plausible_capture_date
from pipeline.settings import (
    DEFAULT_BATCH_BYTES,
    DEFAULT_CHUNK_BYTES,
    DEFAULT_LOCK_TIMEOUT_S,
    DEFAULT_MAX_REJECT_RATE,
    DEFAULT_MAX_REMOVED_RATE,
    DEFAULT_OUT,
    DEFAULT_RAW,
    OUT_ENV,
    RAW_ENV,
    VERSION,
)
from pipeline.storage import Location, Storage, location_text, open_storage

ONE_TASK = 1 << 62
DESCRIPTION = "Paper listings → cleaned, validated, versioned Parquet."


def _iso_date(text: str) -> date:
    try:
        value = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {text!r}") from None
    if not plausible_capture_date(value):
        raise argparse.ArgumentTypeError(f"a capture date from {EARLIEST_DATE} to {LATEST_CAPTURE_DATE}, not {text}")
    return value


def flow_parameters(
    raw_dir: Location | Storage,
    out_dir: Location | Storage,
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
    return {
        "raw_dir": location_text(raw_dir),
        "out_dir": location_text(out_dir),
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
    # Prefect is imported only once the arguments are read: it takes its logging settings
    # (--quiet) from the environment when it is first imported.
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


def _folder_default(variable: str, default: Path) -> str:
    """The folder or s3:// URL an environment variable names (an empty one counts as unset),
    else `default`; argparse checks it with the option's type."""
    return os.environ.get(variable) or str(default)


def _location(text: str) -> Storage:
    """A local folder, or an s3:// URL in its exact shape, as the storage it names."""
    try:
        return open_storage(text)
    except StoreError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _out_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=_location, default=_folder_default(OUT_ENV, DEFAULT_OUT),
        help=f"dataset folder or s3://bucket/prefix (default: ${OUT_ENV}, else {DEFAULT_OUT}; now %(default)s)",
    )  # fmt: skip


def _refresh_args(parser: argparse.ArgumentParser) -> None:
    """Options shared by `run` and `serve`: what to read, where to publish, what to accept."""
    parser.add_argument(
        "--raw", type=_location, default=_folder_default(RAW_ENV, DEFAULT_RAW),
        help=f"folder or s3://bucket/prefix of raw listings (default: ${RAW_ENV}, else {DEFAULT_RAW}; now %(default)s)",
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


def _run_args(run: argparse.ArgumentParser) -> None:
    """Options of `run`: the refresh's, and how it runs (date, force, lock, scale, quiet)."""
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


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser (defaults live here only)."""
    invoked_as = Path(sys.argv[0]).name
    prog = invoked_as if invoked_as == "paper-listings" else "python -m pipeline"
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"paper-listings {VERSION}")
    commands = parser.add_subparsers(dest="command", required=True)

    _run_args(commands.add_parser("run", help="parse every listing and publish a new version"))

    serve = commands.add_parser("serve", help="register a scheduled deployment on a Prefect server and serve it")
    serve.add_argument("--cron", required=True, type=_cron, help='cron schedule, e.g. "0 6 * * *" (daily at 06:00 UTC)')
    serve.add_argument("--name", default="scheduled-refresh", help="deployment name (default: %(default)s)")
    _refresh_args(serve)

    validate = commands.add_parser("validate", help="re-validate a version folder against the contract")
    validate.add_argument(
        "path",
        type=_location,
        help="a version folder (data/processed/latest) or URL (s3://bucket/prefix/versions/000002)",
    )

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

    export = commands.add_parser("export", help="every version as Delta tables, or one version as a hand-off folder")
    formats = export.add_subparsers(dest="format", required=True)
    delta = formats.add_parser("delta", help="every version as Delta tables, adding only new versions")
    delta.add_argument("dir", type=_location, metavar="DIR", help="target: one Delta table per table, DIR/<table>")
    _out_arg(delta)
    handoff = formats.add_parser("version", help="one version as a self-contained folder (a hand-off)")
    handoff.add_argument("version", help="version id, e.g. 000003, or latest")
    handoff.add_argument("dir", type=_location, metavar="DIR", help="a new folder or s3:// prefix")
    _out_arg(handoff)
    return parser
