"""Fixtures of the published layer's tests: the sample's tables published as a version, and a hand-off."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.published import PublishOutcome, Store, export_version
from tests.assembly import publish_frames
from tests.validation import validate_dataset

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def tables(sample_tables):
    """The sample's tables, validated (shared by a module: copy a frame before changing it)."""
    return validate_dataset(sample_tables)


def publish(out: Path | str, tables, fingerprint: str = "f1") -> PublishOutcome:
    """`tables` published in `out` as the child of its latest version, created at NOW."""
    return publish_frames(out, tables, {"fingerprint": fingerprint}, NOW)


@pytest.fixture(scope="module")
def published(sample_tables, tmp_path_factory) -> Path:
    """A dataset folder holding the sample as version 000001 (shared by a module: copy before changing it)."""
    out = tmp_path_factory.mktemp("published")
    publish_frames(out, validate_dataset(sample_tables), {"fingerprint": "f1"}, datetime(2026, 11, 26, tzinfo=UTC))
    return out


@pytest.fixture(scope="module")
def handed_off(published: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The version handed to another team: written as a self-contained folder (`export version`)
    once for the module (copy it before changing it)."""
    target = tmp_path_factory.mktemp("handed-off") / "handoff"
    export_version(Store.open(published), "000001", target)
    return target


@pytest.fixture
def copy(handed_off: Path, tmp_path: Path) -> Path:
    """The test's own copy of the version handed to another team (`handed_off`)."""
    return Path(shutil.copytree(handed_off, tmp_path / "handoff"))
