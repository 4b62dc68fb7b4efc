"""The published output frozen as row digests, so that a new data path must reproduce it exactly.

Three inputs: the committed sample, the 9,010 real records rendered as a listing, and a 20k-paper
listing of real abstracts (`benchmarks.generate`). Each table of each first version is kept as
the multiset of its rows' digests (``tests/data/frozen_outputs.parquet``); papers without their
``abstract_text``, which is kept per paper beside a flag: whether it was the reference rendering
(`pipeline.parse.latex.latex_to_text`, pylatexenc on the whole abstract). The design frozen rendered
runs of words one by one, which differs from the reference on a few abstracts: there, and only
there, the new output must be the reference instead.

Refreeze only when the published output is meant to change, and say so in the commit:
``.venv/bin/python -m tests.frozen DIR [CODE]`` (DIR: where the runs put their data; CODE: a
checkout whose CLI makes the output, e.g. a worktree of the commit to freeze; default this one).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from datetime import date
from pathlib import Path

import pandas as pd

from pipeline.parse.latex import latex_to_text
from tests.assembly import version_tables

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


ABSTRACT_TEXT = "papers.abstract_text"


def table_digests(tables: Mapping[str, pd.DataFrame]) -> dict[str, list[str]]:
    """Each table's sorted row digests, papers without abstract_text (as `frozen_digests` gives them)."""
    shown = {
        name: (frame.drop(columns=["abstract_text"]) if name == "papers" else frame) for name, frame in tables.items()
    }
    return {name: row_digests(frame) for name, frame in sorted(shown.items())}


def digests_frame(corpus: str, tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The frozen form of one corpus's tables: (corpus, table, row digest) rows, papers without
    abstract_text; then per paper its abstract_text digest and whether it is the reference (the
    reference rendering of every abstract: slow, for freezing only)."""
    rows = [(corpus, name, d) for name, digests in table_digests(tables).items() for d in digests]
    frame = pd.DataFrame(rows, columns=["corpus", "table", "row_digest"])
    papers = tables["papers"]
    texts = pd.DataFrame(
        {
            "corpus": corpus,
            "table": ABSTRACT_TEXT,
            "row_digest": [text_digest(t) for t in papers["abstract_text"]],
            "paper_id": papers["paper_id"],
            "is_reference": [
                t == latex_to_text(a) for a, t in zip(papers["abstract"], papers["abstract_text"], strict=True)
            ],
        }
    )
    return pd.concat([frame, texts], ignore_index=True)


def text_digest(text: str) -> str:
    """Digest of one abstract_text."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=12).hexdigest()


def frozen_digests(corpus: str) -> dict[str, list[str]]:
    """The frozen row digests of one corpus, per table (abstract_text apart: `frozen_texts`)."""
    frame = pd.read_parquet(FROZEN)
    frame = frame[(frame["corpus"] == corpus) & (frame["table"] != ABSTRACT_TEXT)]
    return {name: sorted(group["row_digest"]) for name, group in frame.groupby("table")}


def frozen_texts(corpus: str) -> pd.DataFrame:
    """Per paper of one corpus: the frozen abstract_text's digest and whether it was the reference."""
    frame = pd.read_parquet(FROZEN)
    frame = frame[(frame["corpus"] == corpus) & (frame["table"] == ABSTRACT_TEXT)]
    return frame.set_index("paper_id")[["row_digest", "is_reference"]]


def freeze(work: Path, code: Path = ROOT) -> None:
    """Run the CLI of the checkout `code` on every corpus under `work` and write the digests of
    what it published."""
    frames = []
    for corpus in CORPORA:
        raw, out = work / corpus / "raw", work / corpus / "out"
        shutil.rmtree(work / corpus, ignore_errors=True)
        write_corpus(corpus, raw)
        subprocess.run(
            [sys.executable, "-m", "pipeline", "run", "--raw", str(raw), "--out", str(out),
             "--max-reject-rate", "1", "--quiet"],
            check=True, cwd=code, env={**os.environ, "PYTHONPATH": str(code)},
        )  # fmt: skip
        frames.append(digests_frame(corpus, version_tables(out / "latest")))
    pd.concat(frames, ignore_index=True).to_parquet(FROZEN, compression="zstd", index=False)
    print(f"wrote {FROZEN}")


if __name__ == "__main__":
    freeze(Path(sys.argv[1]), Path(sys.argv[2]).resolve() if len(sys.argv) > 2 else ROOT)
