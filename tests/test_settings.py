"""Defaults and limits: the Prefect start-up allowance, generous unless the user set one; assembly's
memory limit, the default unless the operator gave a size."""

from __future__ import annotations

import pytest

from pipeline.errors import PrefectUnavailableError, StoreError
from pipeline.settings import (
    ALLOWANCE_SETTING,
    ASSEMBLY_MEMORY,
    ASSEMBLY_MEMORY_SETTING,
    DEFAULT_STARTUP_ALLOWANCE_S,
    assembly_memory,
    startup_allowance,
)


def test_the_startup_allowance_is_generous_unless_the_user_set_one(monkeypatch) -> None:
    monkeypatch.delenv(ALLOWANCE_SETTING, raising=False)
    assert startup_allowance() == DEFAULT_STARTUP_ALLOWANCE_S >= 600
    monkeypatch.setenv(ALLOWANCE_SETTING, "42")
    assert startup_allowance() == 42
    for bad in ("soon", "0.5", "0", "-3"):  # Prefect reads the same setting as a whole number
        monkeypatch.setenv(ALLOWANCE_SETTING, bad)
        with pytest.raises(PrefectUnavailableError, match="not a whole number of seconds"):
            startup_allowance()


def test_assembly_memory_is_the_default_unless_the_operator_gave_a_size(monkeypatch) -> None:
    monkeypatch.delenv(ASSEMBLY_MEMORY_SETTING, raising=False)
    assert assembly_memory() == ASSEMBLY_MEMORY
    for given in ("2GB", "1.5 GiB", "768mb"):
        monkeypatch.setenv(ASSEMBLY_MEMORY_SETTING, given)
        assert assembly_memory() == given
    for bad in ("lots", "512", "0MB", "-1GB", "1GB; SET threads=64"):  # DuckDB takes it as a setting
        monkeypatch.setenv(ASSEMBLY_MEMORY_SETTING, bad)
        with pytest.raises(StoreError, match=f"{ASSEMBLY_MEMORY_SETTING}=.* is not a size such as 512MB"):
            assembly_memory()
