"""pylatexenc's renderings of the 20,108 real abstracts, stored once so that tests compare against them quickly.

`latex_to_text` (pylatexenc on the whole abstract) costs about 80 s over the corpus: too slow for every
test run. ``tests/data/abstracts_20k_text.jsonl.gz`` holds, after a header line recording the pylatexenc
version and the SHA-256 of ``abstracts_20k.jsonl.gz``, one line ``{"id", "text"}`` per abstract, in the
corpus's order; "text" is null where the rendering is the abstract with its whitespace collapsed (most
abstracts: that keeps the file small). tests/parse/test_latex.py checks the header against the installed
pylatexenc and the corpus, and recomputes a sample live.

Regenerate (after a pylatexenc upgrade or a corpus change): ``.venv/bin/python -m tests.latex_reference``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

import pylatexenc

from pipeline.parse.latex import latex_to_text

DATA = Path(__file__).resolve().parent / "data"
ABSTRACTS = DATA / "abstracts_20k.jsonl.gz"
REFERENCE = DATA / "abstracts_20k_text.jsonl.gz"


def load_abstracts() -> list[dict[str, Any]]:
    """The real corpus: one dict per paper, with its "id" and "abstract"."""
    with gzip.open(ABSTRACTS, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def corpus_sha256() -> str:
    return hashlib.sha256(ABSTRACTS.read_bytes()).hexdigest()


def load_reference(papers: list[dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """The stored header and the renderings of `papers` (the corpus, in its order)."""
    with gzip.open(REFERENCE, "rt", encoding="utf-8") as handle:
        header = json.loads(handle.readline())
        rows = [json.loads(line) for line in handle]
    if [row["id"] for row in rows] != [p["id"] for p in papers]:
        raise ValueError(f"{REFERENCE.name} does not list the papers of {ABSTRACTS.name}: regenerate it")
    pairs = zip(papers, rows, strict=True)
    return header, [" ".join(p["abstract"].split()) if row["text"] is None else row["text"] for p, row in pairs]


def write_reference() -> None:
    papers = load_abstracts()
    header = {
        "pylatexenc": pylatexenc.__version__,
        "corpus": ABSTRACTS.name,
        "corpus_sha256": corpus_sha256(),
        "count": len(papers),
        "rendering": "pipeline.parse.latex.latex_to_text (pylatexenc on the whole abstract)",
    }
    lines = [json.dumps(header, ensure_ascii=False)]
    for paper in papers:
        text: str | None = latex_to_text(paper["abstract"])
        if text == " ".join(paper["abstract"].split()):
            text = None
        lines.append(json.dumps({"id": paper["id"], "text": text}, ensure_ascii=False))
    # mtime 0 and no file name in the gzip header: the same renderings give the same bytes.
    with REFERENCE.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as out:
        out.write(("\n".join(lines) + "\n").encode("utf-8"))
    print(f"wrote {REFERENCE} ({len(papers):,} renderings, pylatexenc {pylatexenc.__version__})")


if __name__ == "__main__":
    write_reference()
