"""Refresh orchestration: incremental parsing, run reports as Prefect artifacts, Dask fan-out."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import psutil
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from pipeline.orchestrate.steps import REJECTS_ARTIFACT, REPORT_ARTIFACT, SUMMARY_ARTIFACT
from pipeline.published.layout import REPORT_FILE, STAGED
from pipeline.published.manifest import read_manifest
from pipeline.published.verify import read_tables
from pipeline.storage.local import file_digest
from tests.conftest import SAMPLE, run_flow

pytestmark = pytest.mark.flow

EXTRA = "LGMar 1, 2025\nA Study of GraphsSébastien Bubeck, Ann Lee\nAbstract.\nXXMar 2, 2025\nBad SuffixBo Chen\nAbs.\n"


def artifacts_of(flow_run_id) -> dict[str, object]:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key: a.data for a in found if a.key}


def test_second_run_parses_only_the_new_file_and_reports_it(prefect_server, tmp_path: Path) -> None:
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
    assert "| papers | 51 |" in summary
    report = out / "versions" / "000002" / REPORT_FILE
    assert f"- report: {report}" in summary
    assert artifacts[REPORT_ARTIFACT] == f"[report of version 000002]({report.absolute().as_uri()})"
    assert 'id="papers-per-month"' in report.read_text(encoding="utf-8")
    assert read_manifest(report.parent)["files"][REPORT_FILE] == file_digest(report)
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
    assert len(list((out / STAGED).iterdir())) == 1  # the deleted file's entry is pruned


@pytest.fixture(scope="module")
def twenty_files(tmp_path_factory) -> Path:
    """20 captures rendered from the real corpus, 150 papers each, overlapping by a third."""
    from datetime import date, timedelta

    from benchmarks.render import load_records, render_listing

    raw = tmp_path_factory.mktemp("twenty")
    records = load_records()
    for n in range(20):
        capture = date(2026, 1, 1) + timedelta(days=7 * n)
        text, _ = render_listing(records[n * 100 : n * 100 + 150], capture, seed=n)
        (raw / f"listing_{capture.isoformat()}.txt").write_text(text, encoding="utf-8")
    return raw


def test_dask_workers_give_the_same_tables(prefect_server, twenty_files: Path, tmp_path: Path) -> None:
    from pipeline.orchestrate.flow import refresh
    from pipeline.orchestrate.prefect_api import prefect_api
    from pipeline.orchestrate.runners import task_runner

    default = run_flow(twenty_files, tmp_path / "default", max_reject_rate=1.0)
    dask_flow = refresh.with_options(task_runner=task_runner(2, None))
    # as `--workers 2` does: the workers report to this session's server, not temporary ones;
    # batch_bytes=1: one task per file, so the 20 files really spread over the workers
    with prefect_api(60):
        assert os.environ["PREFECT_API_URL"]
        on_dask = run_flow(twenty_files, tmp_path / "dask", max_reject_rate=1.0, flow=dask_flow, batch_bytes=1)
    assert default.row_counts == on_dask.row_counts
    assert default.row_counts["papers"] > 2000
    assert len(on_dask.parsed_files) == 20
    left = read_tables(tmp_path / "default" / "latest")
    right = read_tables(tmp_path / "dask" / "latest")
    for name in left:
        pd.testing.assert_frame_equal(left[name], right[name], obj=name)


def test_existing_dask_cluster_by_address(
    prefect_server, dask_address: str, twenty_files: Path, tmp_path: Path
) -> None:
    from pipeline.orchestrate.flow import refresh
    from pipeline.orchestrate.runners import task_runner

    on_cluster = refresh.with_options(task_runner=task_runner(None, dask_address))
    summary = run_flow(twenty_files, tmp_path / "out", max_reject_rate=1.0, flow=on_cluster, batch_bytes=1)
    assert summary.published
    assert len(summary.parsed_files) == 20


def _listening(process: psutil.Process) -> set[tuple[str, int]]:
    return {(c.laddr.ip, c.laddr.port) for c in process.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}


def test_a_local_dask_cluster_listens_on_loopback_only() -> None:
    """`--workers N`: scheduler, its HTTP endpoints, nannies and workers bind 127.0.0.1, and never
    warn about port 8787 when another cluster (as .ci/run's) holds it."""
    import socket
    import warnings

    from distributed import LocalCluster

    from pipeline.orchestrate.runners import local_cluster_kwargs

    me = psutil.Process()
    with socket.socket() as other_cluster, warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        other_cluster.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            other_cluster.bind(("127.0.0.1", 8787))
            other_cluster.listen()
        except OSError:
            pass  # 8787 is already held, by another cluster: the case itself
        before = _listening(me)
        with LocalCluster(**local_cluster_kwargs(2)) as cluster:
            assert len(cluster.workers) == 2
            opened = _listening(me) - before
            for child in me.children(recursive=True):
                opened |= _listening(child)
    assert opened
    assert {ip for ip, _ in opened} == {"127.0.0.1"}
