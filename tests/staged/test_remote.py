"""The staged layer on object storage: a task on another machine stages into its own folder and shares the entry."""

from __future__ import annotations

import pytest

from pipeline.raw.remote import discover_remote_sources
from pipeline.staged.remote import StagedPlace, pull_missing, stage_at, this_process
from pipeline.staged.stage import no_meter
from pipeline.staged.store import read_staged
from pipeline.storage.s3 import S3Storage, parse_s3_url
from tests.conftest import SAMPLE

pytestmark = pytest.mark.server


def test_a_task_elsewhere_stages_into_its_own_folder_and_the_driver_pulls_the_entry(s3, s3_prefix, tmp_path, gold):
    S3Storage(parse_s3_url(f"{s3_prefix}/raw")).write_bytes(SAMPLE.name, SAMPLE.read_bytes())
    (source,) = discover_remote_sources(parse_s3_url(f"{s3_prefix}/raw"), None).sources
    driver = tmp_path / "driver" / "staged"
    elsewhere = StagedPlace(driver, parse_s3_url(s3_prefix), driver="another-machine")
    (capture,) = stage_at([source], elsewhere, False, 1, 1 << 20, no_meter)
    assert not driver.exists()  # the task never wrote to the driver's disk
    assert (capture.counts.records, capture.from_cache, capture.folder) == (gold.papers, False, driver / capture.key)
    here = StagedPlace(driver, parse_s3_url(s3_prefix), driver=this_process())
    assert pull_missing([capture], here) == []
    assert read_staged(driver, capture.key)["counts"] == capture.counts.to_json()
    # A second task finds the entry on object storage: nothing is parsed again.
    assert stage_at([source], elsewhere, False, 1, 1 << 20, no_meter)[0].from_cache


def test_a_damaged_shared_entry_is_staged_again(s3, s3_prefix, tmp_path):
    S3Storage(parse_s3_url(f"{s3_prefix}/raw")).write_bytes(SAMPLE.name, SAMPLE.read_bytes())
    (source,) = discover_remote_sources(parse_s3_url(f"{s3_prefix}/raw"), None).sources
    elsewhere = StagedPlace(tmp_path / "driver", parse_s3_url(s3_prefix), driver="another-machine")
    (capture,) = stage_at([source], elsewhere, False, 1, 1 << 20, no_meter)
    storage = S3Storage(parse_s3_url(s3_prefix))
    part = next(name for name in storage.tree(f"staged/{capture.key}") if name.startswith("papers-"))
    storage.write_bytes(f"staged/{capture.key}/{part}", b"edited")
    here = StagedPlace(tmp_path / "driver", parse_s3_url(s3_prefix), driver=this_process())
    assert pull_missing([capture], here) == [source]
