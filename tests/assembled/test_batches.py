"""An assembly read back for publishing: papers come in capture, then line order, or not at all."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pipeline.assembled import batches


def test_papers_out_of_capture_and_line_order_are_refused() -> None:
    batch = pa.record_batch({batches.ORDINAL_COLUMN: [0, 0, 1], "source_line": [1, 4, 1]})
    assert batches.check_order(batch, None) == (1, 1)
    with pytest.raises(RuntimeError, match="out of capture and line order"):
        batches.check_order(batch, (0, 7))
    with pytest.raises(RuntimeError):
        batches.check_order(pa.record_batch({batches.ORDINAL_COLUMN: [0, 0], "source_line": [4, 1]}), None)
