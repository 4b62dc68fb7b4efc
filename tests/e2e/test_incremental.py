"""A second run parses only the new listing and reports it: the run summary, the version report and
the rejects as Prefect artifacts; --refresh-cache parses everything again; a deleted listing's
staged entry is pruned."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from pipeline.orchestrate.steps import REJECTS_ARTIFACT, REPORT_ARTIFACT, SUMMARY_ARTIFACT
from pipeline.published import Store
from pipeline.published.layout import REPORT_FILE, STAGED
from pipeline.raw.sources import code_fingerprint, listing_cache_key
from pipeline.storage.files import file_digest
from tests.conftest import SAMPLE, run_flow

pytestmark = pytest.mark.flow


EXTRA = "LGMar 1, 2025\nA Study of GraphsSébastien Bubeck, Ann Lee\nAbstract.\nXXMar 2, 2025\nBad SuffixBo Chen\nAbs.\n"


def artifacts_of(flow_run_id) -> dict[str, object]:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key: a.data for a in found if a.key}


def test_second_run_parses_only_the_new_file_and_reports_it(prefect_server, tmp_path: Path, gold) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    shutil.copy(SAMPLE, raw / SAMPLE.name)
    first = run_flow(raw, out)
    assert (first.parsed_files, first.cached_files) == ([SAMPLE.name], [])

    (raw / "listing_2026-11-27.txt").write_text(EXTRA, encoding="utf-8")
    state = run_flow(raw, out, max_reject_rate=0.5, return_state=True)
    second = state.result()
    assert second.parsed_files == ["listing_2026-11-27.txt"]
    assert second.cached_files == [SAMPLE.name]
    assert second.changes == {"added": 1}

    artifacts = artifacts_of(state.state_details.flow_run_id)
    summary = str(artifacts[SUMMARY_ARTIFACT])
    assert "published new version 000002" in summary
    assert "2 file(s), 1 parsed, 1 from cache" in summary
    assert "| unknown_category | 1 |" in summary
    assert f"| papers | {gold.papers + 1} |" in summary  # the sample and one good record of EXTRA
    report = out / "versions" / "000002" / REPORT_FILE
    assert f"- report: {report}" in summary
    assert artifacts[REPORT_ARTIFACT] == f"[report of version 000002]({report.absolute().as_uri()})"
    assert 'id="papers-per-period"' in report.read_text(encoding="utf-8")
    assert Store.open(out).manifest("000002").own[REPORT_FILE] == file_digest(report)
    rejects = artifacts[REJECTS_ARTIFACT]
    rows = pd.DataFrame(json.loads(rejects) if isinstance(rejects, str) else rejects)
    assert rows[["source_file", "source_line", "rule"]].to_numpy().tolist() == [
        ["listing_2026-11-27.txt", 4, "unknown_category"]
    ]

    third = run_flow(raw, out, max_reject_rate=0.5, refresh_cache=True)
    assert (third.published, sorted(third.parsed_files), third.cached_files) == (
        False, sorted([SAMPLE.name, "listing_2026-11-27.txt"]), [],
    )  # fmt: skip
    (raw / "listing_2026-11-27.txt").unlink()
    run_flow(raw, out, max_removed_rate=1.0)
    entries = [p.name for p in (out / STAGED).iterdir() if p.is_dir()]  # beside them: inputs.json
    sample_key = listing_cache_key(SAMPLE.name, date(2026, 11, 26), file_digest(SAMPLE)["sha256"], code_fingerprint())
    assert entries == [sample_key]  # the deleted file's entry is pruned
