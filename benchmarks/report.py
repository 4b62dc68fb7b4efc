"""Time of a version's report: its files verified, `report_data` (DuckDB) and `render_report`.

OUT is a dataset folder or s3:// prefix; the report is that of its latest version, or of --version.
As a refresh makes it: papers read from the version's paper index, authors' rows from its author
index (a version without indexes: from its tables).
Run: ``.venv/bin/python -m benchmarks.report OUT [--version ID] [--repeat 3] [--html report.html]``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from pipeline.published import Store, version_parts
from pipeline.reported.report_data import report_data
from pipeline.reported.version_report import render_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="a dataset folder or s3:// prefix")
    parser.add_argument("--version", default=None, help="a version id (default: latest)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--html", type=Path, help="also write the report here")
    args = parser.parse_args()
    store = Store.open(args.out)
    manifest = store.manifest(store.resolve(args.version))
    start = time.perf_counter()
    index = {name: store.parts(files) for name, files in manifest.index.items()}
    wanted = [name for name in manifest.tables if name != "papers" or "paper_index" not in index]
    parts = version_parts(store, manifest, wanted)
    parts.setdefault("papers", [])
    verified = time.perf_counter() - start
    counts = manifest.row_counts
    print(f"version {manifest.id} of {store.url}: {counts['papers']:,} papers, {counts['paper_authors']:,} author rows")
    print(f"files verified against the manifest (sha256): {verified:.3f} s  (once; not part of the report)")
    print(f"cores: {os.cpu_count()}")
    page = ""
    for run in range(1, args.repeat + 1):
        start = time.perf_counter()
        data = report_data(parts, manifest.id, manifest.parent_id, counts, index=index)
        aggregated = time.perf_counter()
        page = render_report(data)
        rendered = time.perf_counter()
        print(
            f"run {run}: report_data {aggregated - start:.3f} s, render_report {rendered - aggregated:.4f} s, "
            f"total {rendered - start:.3f} s, page {len(page.encode()):,} bytes"
        )
    if args.html is not None:
        args.html.write_text(page, encoding="utf-8")
        print(f"wrote {args.html}")


if __name__ == "__main__":
    main()
