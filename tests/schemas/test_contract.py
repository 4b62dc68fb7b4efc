"""The contract shipped inside every version: its exports, and the committed data dictionary kept current."""

from __future__ import annotations

from schemas.contract import contract_json, data_dictionary, schema_fingerprint
from schemas.tables import MODELS
from tests.conftest import ROOT


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
