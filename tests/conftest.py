"""Shared fixtures: recorded real inputs, the reference data and one Prefect test server."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SAMPLE = ROOT / "data" / "raw" / "listing_2026-11-26.txt"
GOLD = DATA / "gold_2026-11-26.jsonl"


@pytest.fixture(scope="session")
def reference():
    from pipeline.reference import load_reference

    return load_reference()


@pytest.fixture(scope="session")
def sample_text() -> str:
    return SAMPLE.read_text(encoding="utf-8")


@pytest.fixture
def raw_dir(tmp_path: Path) -> Path:
    """A raw folder holding a copy of the committed sample listing."""
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(SAMPLE, raw / SAMPLE.name)
    return raw


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """One temporary Prefect server for every flow test of the session (start-up costs ~7 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def run_flow(raw: Path, out: Path, **overrides):
    """Call the flow with the CLI's defaults, overridden by keyword."""
    from pipeline.flow import refresh

    params = {
        "raw_dir": raw, "out_dir": out, "as_of": None, "force": False, "lock_timeout_s": 30.0,
        "max_reject_rate": 0.05, "keep": None,
    }  # fmt: skip
    return refresh(**{**params, **overrides})
