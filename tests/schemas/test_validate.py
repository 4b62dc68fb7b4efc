"""Checking rows against the contract: a failure report names every bad row, by table, column and check."""

from __future__ import annotations

import pytest

from pipeline.errors import DatasetInvalidError
from tests.validation import validate_dataset


@pytest.fixture
def tables(sample_tables):
    return sample_tables


def test_failures_name_every_bad_row(tables) -> None:
    bad = {name: frame.copy() for name, frame in tables.items()}
    bad["papers"].loc[[3, 7], "score"] = 250.0
    bad["papers"].loc[5, "paper_id"] = "not-an-id"
    with pytest.raises(DatasetInvalidError) as err:
        validate_dataset(bad)
    report = err.value.report
    scores = report[report["column"] == "score"]
    assert sorted(scores["row"].astype(int)) == [3, 7]
    assert set(report.loc[report["column"] == "paper_id", "row"].astype(int)) >= {5}
    assert "papers.score" in str(err.value)
