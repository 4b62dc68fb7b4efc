"""Time of a version's report: its files verified, `report_data` (DuckDB) and `render_report`.

OUT is a version folder (``OUT/versions/000001``) or a dataset folder (its latest version).
Run: ``.venv/bin/python -m benchmarks.report OUT [--repeat 3] [--html report.html]``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from pipeline.published.versions import version_path

from pipeline.published.layout import MANIFEST
from pipeline.published.manifest import read_manifest
from pipeline.published.verify import verified_files
from pipeline.reported.report_data import report_data
from pipeline.reported.version_report import render_report
from schemas import MODELS


def version_folder(path: Path) -> Path:
    """`path` itself when it holds a manifest, else the latest version of the dataset at `path`."""
    return path if (path / MANIFEST).is_file() else version_path(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="a version folder or a dataset folder")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--html", type=Path, help="also write the report here")
    args = parser.parse_args()
    folder = version_folder(args.out)
    manifest = read_manifest(folder)
    start = time.perf_counter()
    files = verified_files(folder, list(MODELS))
    verified = time.perf_counter() - start
    counts = manifest["row_counts"]
    print(f"version {manifest['id']} at {folder}: {counts['papers']:,} papers, {counts['paper_authors']:,} author rows")
    print(f"files verified against the manifest (sha256): {verified:.3f} s  (once; not part of the report)")
    print(f"cores: {os.cpu_count()}")
    page = ""
    for run in range(1, args.repeat + 1):
        start = time.perf_counter()
        data = report_data(files, str(manifest["id"]), manifest.get("parent_id"))
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
