"""The published contract: every table of the sample validates against its model; foreign keys, strict
columns and every table are checked; Arrow types follow the models."""

from __future__ import annotations

import pytest

from pipeline.errors import DatasetInvalidError
from schemas.tables import MODELS, arrow_schema
from tests.validation import validate_dataset


@pytest.fixture
def tables(sample_tables):
    return sample_tables


def test_sample_dataset_validates(tables, gold) -> None:
    validated = validate_dataset(tables)
    assert set(validated) == set(MODELS)
    assert len(validated["papers"]) == gold.papers


def test_foreign_keys_are_checked(tables) -> None:
    bad = {name: frame.copy() for name, frame in tables.items()}
    bad["authors"] = bad["authors"].iloc[1:]
    bad["papers"].loc[0, "category"] = "cs.XX"
    with pytest.raises(DatasetInvalidError) as err:
        validate_dataset(bad)
    checks = set(err.value.report["check"])
    assert "foreign_key(authors.author_id)" in checks
    assert "foreign_key(categories.category)" in checks


def test_strict_schema_rejects_unknown_columns_and_missing_tables(tables) -> None:
    bad = {name: frame for name, frame in tables.items() if name != "changes"}
    bad["papers"] = tables["papers"].assign(extra=1)
    with pytest.raises(DatasetInvalidError) as err:
        validate_dataset(bad)
    checks = set(err.value.report["check"])
    assert "table_present" in checks
    assert any("column_in_schema" in c for c in checks)


def test_arrow_types_follow_the_contract() -> None:
    papers = arrow_schema("papers")
    assert str(papers.field("published").type) == "date32[day]"
    assert str(papers.field("has_code").type) == "bool"
    assert papers.field("score").nullable
    assert not papers.field("paper_id").nullable
