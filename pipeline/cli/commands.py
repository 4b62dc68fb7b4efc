"""What each command of the CLI does, and the exit code it ends with (each error class carries its own)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from pipeline.assembled.changes import changes_between
from pipeline.consume.export_delta import VERSION_KEY, export_delta
from pipeline.errors import (
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNUSABLE,
    PipelineError,
    StoreError,
)
from pipeline.parse.tables import CHANGE_INPUTS
from pipeline.published import Store, check_location, export_version, read_tables, version_parts
from schemas.tables import CHANGE_KINDS, MODELS
from schemas.validate import format_report

SHOW_COLUMN_CHARS = 40
SHOW_MAX_COLUMNS = 8


def error(message: object, code: int) -> int:
    """Print `message` as the command's one line of failure; return `code`."""
    print(f"error: {message}", file=sys.stderr)
    return code


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
    "validate": validate,
    "versions": versions,
    "diff": diff,
    "show": show,
    "export": export,
}
