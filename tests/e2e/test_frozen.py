"""Nothing changes for consumers: every table equals, row for row and value for value, what the
design before the columnar data path published (frozen in tests/data/frozen_outputs.parquet).

The one exception is written out: abstract_text may differ only where the frozen one was not the
reference rendering (pylatexenc on the whole abstract), and must then be the reference."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipeline.parse.latex import latex_to_text
from tests.assembly import version_tables
from tests.conftest import run_flow
from tests.frozen import CORPORA, frozen_digests, frozen_texts, table_digests, text_digest, write_corpus

pytestmark = pytest.mark.flow


@pytest.mark.parametrize("corpus", CORPORA)
def test_published_tables_equal_the_frozen_output(prefect_server, tmp_path: Path, corpus: str) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    write_corpus(corpus, raw)
    summary = run_flow(raw, out, max_reject_rate=1.0)
    assert summary.published
    published = version_tables(out / "latest")
    # The rows only: the reference rendering is computed below for the abstracts that differ, not
    # for every abstract (pylatexenc on 20k abstracts takes minutes).
    got = {name: digests for name, digests in table_digests(published).items() if digests}  # as frozen: no empty table
    want = frozen_digests(corpus)
    assert sorted(got) == sorted(want)
    for table in want:
        differing = len(set(got[table]) ^ set(want[table]))
        counts = f"{len(got[table])} rows (frozen: {len(want[table])})"
        assert got[table] == want[table], f"{table}: {counts}, {differing} differ"

    texts = frozen_texts(corpus)
    papers = published["papers"].set_index("paper_id")
    assert sorted(papers.index) == sorted(texts.index)
    new = pd.Series([text_digest(t) for t in papers["abstract_text"]], index=papers.index)
    differ = new.index[new != texts.loc[new.index, "row_digest"]]
    assert texts.loc[differ, "is_reference"].eq(False).all(), "a reference rendering changed"
    for paper_id in differ:  # the frozen design's rendering was not the reference: now it is
        assert papers.loc[paper_id, "abstract_text"] == latex_to_text(papers.loc[paper_id, "abstract"])
