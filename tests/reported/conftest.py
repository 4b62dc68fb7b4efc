"""The versions the report tests share: the sample with an edited child, and a large generated one."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from pipeline.reported.report_data import ReportData, report_data
from tests.assembly import assembled, publish_frames
from tests.conftest import SAMPLE
from tests.report_versions import CAPTURE, edited_sample, folder_report_data, large_tables, write_large_version
from tests.validation import validate_dataset


@pytest.fixture(scope="session")
def versions(tmp_path_factory, sample_tables, sample_text) -> tuple[Path, dict[str, pd.DataFrame]]:
    """A dataset of two versions (the second has a parent, changes and rejects), and the second's tables."""
    out = tmp_path_factory.mktemp("report") / "out"
    first = validate_dataset(sample_tables)
    publish_frames(out, first, {"fingerprint": "f1"}, datetime(2026, 11, 26, tzinfo=UTC))
    work = tmp_path_factory.mktemp("edited")
    second = validate_dataset(assembled(work, [(SAMPLE.name, CAPTURE, edited_sample(sample_text))], parent=first))
    outcome = publish_frames(out, second, {"fingerprint": "f2"}, datetime(2026, 11, 27, tzinfo=UTC))
    assert (outcome.version_id, outcome.parent_id) == ("000002", "000001")
    return Path(outcome.path), second


@pytest.fixture(scope="session")
def data(versions) -> ReportData:
    """The report data of the sample's edited child."""
    return folder_report_data(versions[0])


@pytest.fixture(scope="session")
def large(tmp_path_factory) -> tuple[dict[str, pd.DataFrame], ReportData]:
    """The large generated version's tables, and its report data."""
    tables = large_tables()
    parts = write_large_version(tmp_path_factory.mktemp("large"), tables)
    return tables, report_data(parts, "000009", "000008", {name: len(frame) for name, frame in tables.items()})
