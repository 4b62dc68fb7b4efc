"""Defaults and limits: the Prefect start-up allowance, generous unless the user set one."""

from __future__ import annotations

import pytest

from pipeline.errors import PrefectUnavailableError
from pipeline.settings import ALLOWANCE_SETTING, DEFAULT_STARTUP_ALLOWANCE_S, startup_allowance


def test_the_startup_allowance_is_generous_unless_the_user_set_one(monkeypatch) -> None:
    monkeypatch.delenv(ALLOWANCE_SETTING, raising=False)
    assert startup_allowance() == DEFAULT_STARTUP_ALLOWANCE_S >= 600
    monkeypatch.setenv(ALLOWANCE_SETTING, "42")
    assert startup_allowance() == 42
    for bad in ("soon", "0.5", "0", "-3"):  # Prefect reads the same setting as a whole number
        monkeypatch.setenv(ALLOWANCE_SETTING, bad)
        with pytest.raises(PrefectUnavailableError, match="not a whole number of seconds"):
            startup_allowance()
