"""The published output frozen as row digests, so that a new data path must reproduce it exactly.

Three inputs: the committed sample, the 9,010 real records rendered as a listing, and a 20k-paper
listing of real abstracts (`benchmarks.generate`). Each table of each first version is kept as
the multiset of its rows' digests (``tests/data/frozen_outputs.parquet``).

Refreeze only when the published output is meant to change, and say so in the commit:
``.venv/bin/python -m tests.frozen DIR`` (DIR: where the runs put their data).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Mapping
from datetime import date
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
FROZEN = Path(__file__).resolve().parent / "data" / "frozen_outputs.parquet"
CAPTURE = date(2026, 11, 26)
LISTING_NAME = f"listing_{CAPTURE.isoformat()}.txt"
CORPORA = ("sample", "real_9010", "synthetic_20k")


def write_corpus(corpus: str, raw: Path) -> Path:
    """Write one frozen input into the raw folder `raw`; return the file."""
    raw.mkdir(parents=True, exist_ok=True)
    path = raw / LISTING_NAME
    if corpus == "sample":
        shutil.copy(ROOT / "data" / "raw" / LISTING_NAME, path)
    elif corpus == "real_9010":
        from benchmarks.render import load_records, render_listing

        text, _ = render_listing(load_records(), CAPTURE)
        path.write_text(text, encoding="utf-8")
    elif corpus == "synthetic_20k":
        from benchmarks.generate import write_listing

        with path.open("w", encoding="utf-8", newline="\n") as out:
            write_listing(20_000, out)
    else:
        raise ValueError(f"unknown corpus {corpus!r}")
    return path


def _canonical(value: object) -> object:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, date | pd.Timestamp):
        return value.isoformat()[:10]
    if hasattr(value, "item"):  # numpy scalars
        return _canonical(value.item())  # type: ignore[union-attr]
    return value


def row_digests(frame: pd.DataFrame) -> list[str]:
    """One digest per row over its column names and values, sorted (a multiset of rows)."""
    columns = list(frame.columns)
    digests = []
    for row in frame.itertuples(index=False, name=None):
        payload = json.dumps([[c, _canonical(v)] for c, v in zip(columns, row, strict=True)], ensure_ascii=False)
        digests.append(hashlib.blake2b(payload.encode("utf-8"), digest_size=12).hexdigest())
    return sorted(digests)


def digests_frame(corpus: str, tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The frozen form of one corpus's tables: (corpus, table, row digest) rows."""
    rows = [(corpus, name, d) for name, frame in sorted(tables.items()) for d in row_digests(frame)]
    return pd.DataFrame(rows, columns=["corpus", "table", "row_digest"])


def frozen_digests(corpus: str) -> dict[str, list[str]]:
    """The frozen row digests of one corpus, per table."""
    frame = pd.read_parquet(FROZEN)
    frame = frame[frame["corpus"] == corpus]
    return {name: sorted(group["row_digest"]) for name, group in frame.groupby("table")}


def freeze(work: Path) -> None:
    """Run the CLI on every corpus under `work` and write the digests of what it published."""
    from pipeline import store

    frames = []
    for corpus in CORPORA:
        raw, out = work / corpus / "raw", work / corpus / "out"
        shutil.rmtree(work / corpus, ignore_errors=True)
        write_corpus(corpus, raw)
        subprocess.run(
            [sys.executable, "-m", "pipeline", "run", "--raw", str(raw), "--out", str(out),
             "--max-reject-rate", "1", "--quiet"],
            check=True, cwd=ROOT,
        )  # fmt: skip
        frames.append(digests_frame(corpus, store.read_tables(store.version_path(out))))
    pd.concat(frames, ignore_index=True).to_parquet(FROZEN, compression="zstd", index=False)
    print(f"wrote {FROZEN}")


if __name__ == "__main__":
    freeze(Path(sys.argv[1]))
