"""Nothing changes for consumers: every table equals, row for row and value for value, what the
design before the columnar data path published (frozen in tests/data/frozen_outputs.parquet)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import store
from tests.conftest import run_flow
from tests.frozen import CORPORA, digests_frame, frozen_digests, write_corpus

pytestmark = pytest.mark.flow


@pytest.mark.parametrize("corpus", CORPORA)
def test_published_tables_equal_the_frozen_output(prefect_server, tmp_path: Path, corpus: str) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    write_corpus(corpus, raw)
    summary = run_flow(raw, out, max_reject_rate=1.0)
    assert summary.published
    published = store.read_tables(store.version_path(out))
    got = {name: sorted(group["row_digest"]) for name, group in digests_frame(corpus, published).groupby("table")}
    want = frozen_digests(corpus)
    assert sorted(got) == sorted(want)
    for table in want:
        differing = len(set(got[table]) ^ set(want[table]))
        counts = f"{len(got[table])} rows (frozen: {len(want[table])})"
        assert got[table] == want[table], f"{table}: {counts}, {differing} differ"
