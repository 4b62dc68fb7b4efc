"""Command line: `python -m pipeline run|validate|versions`."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date
from pathlib import Path

# Before Prefect is imported: no telemetry, and quiet shutdown of the temporary server.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")

DEFAULT_RAW = Path("data/raw")
DEFAULT_OUT = Path("data/processed")


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser (defaults live here only)."""
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="parse every listing and publish a new version")
    run.add_argument("--raw", type=Path, default=DEFAULT_RAW, help="folder of raw listings (default: %(default)s)")
    run.add_argument("--out", type=Path, default=DEFAULT_OUT, help="dataset folder (default: %(default)s)")
    run.add_argument(
        "--as-of", type=_iso_date, default=None,
        help="capture date for files whose name has no YYYY-MM-DD (default: their modification date)",
    )  # fmt: skip
    run.add_argument("--force", action="store_true", help="publish even when latest has the same content")
    run.add_argument(
        "--lock-timeout", type=float, default=600.0, help="seconds to wait for another run (default: %(default)s)"
    )

    validate = commands.add_parser("validate", help="re-validate a published version folder")
    validate.add_argument("path", type=Path, help="a version folder, e.g. data/processed/latest")

    versions = commands.add_parser("versions", help="list published versions")
    versions.add_argument("--out", type=Path, default=DEFAULT_OUT, help="dataset folder (default: %(default)s)")
    return parser


def _run(args: argparse.Namespace) -> int:
    from pipeline.sources import InputError, discover_sources

    try:
        # Fail fast, before Prefect's start-up, when there is nothing to read.
        discover_sources(args.raw, args.as_of)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    from pipeline.flow import refresh
    from pipeline.store import StoreError
    from schemas import DatasetInvalidError

    try:
        summary = refresh(
            raw_dir=args.raw, out_dir=args.out, as_of=args.as_of, force=args.force, lock_timeout_s=args.lock_timeout
        )
    except (InputError, StoreError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except DatasetInvalidError as err:
        print(f"error: the dataset failed validation; nothing was published.\n{err}", file=sys.stderr)
        return 1
    state = "published new version" if summary.published else "up to date: latest is version"
    print(f"{state} {summary.version_id} at {summary.path}")
    print(f"records: {summary.records}  rejects: {summary.rejects}")
    for rule, count in summary.rejects_by_rule.items():
        print(f"  reject {rule}: {count}")
    for table, rows in summary.row_counts.items():
        print(f"  {table:<20} {rows:>8} rows")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from pipeline.store import read_tables
    from schemas import MODELS, DatasetInvalidError, validate_dataset

    missing = [name for name in MODELS if not (args.path / f"{name}.parquet").is_file()]
    if missing:
        print(f"error: {args.path} lacks {', '.join(m + '.parquet' for m in missing)}", file=sys.stderr)
        return 1
    try:
        validate_dataset(read_tables(args.path))
    except DatasetInvalidError as err:
        print(f"{args.path} does not conform to the contract:\n{err}", file=sys.stderr)
        return 1
    print(f"{args.path} conforms to the contract ({len(MODELS)} tables)")
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


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    handlers = {"run": _run, "validate": _validate, "versions": _versions}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
