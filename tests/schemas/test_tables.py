"""The contract: every table validates, and a failure names every bad row and foreign key."""

from __future__ import annotations

import pytest

from pipeline.errors import DatasetInvalidError
from schemas import MODELS, arrow_schema
from schemas.contract import contract_json, data_dictionary, schema_fingerprint
from tests.conftest import ROOT
from tests.validation import validate_dataset


@pytest.fixture
def tables(sample_tables):
    return sample_tables


def test_sample_dataset_validates(tables) -> None:
    validated = validate_dataset(tables)
    assert set(validated) == set(MODELS)
    assert len(validated["papers"]) == 50


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


def test_contract_exports() -> None:
    assert '"papers"' in contract_json()
    dictionary = data_dictionary()
    for name in MODELS:
        assert f"## {name}" in dictionary
    assert "references authors.author_id" in dictionary
    assert len(schema_fingerprint()) == 64


def test_committed_data_dictionary_is_current() -> None:
    committed = (ROOT / "schemas" / "DATA_DICTIONARY.md").read_text(encoding="utf-8")
    assert committed == data_dictionary(), "regenerate schemas/DATA_DICTIONARY.md from schemas.contract"
