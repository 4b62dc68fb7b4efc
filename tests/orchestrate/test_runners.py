"""Where a run's tasks run: Dask workers (local or an existing cluster) give the tables the thread pool
gives; a local cluster listens on loopback only."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import psutil
import pytest

from tests.assembly import version_tables
from tests.conftest import run_flow

pytestmark = pytest.mark.flow


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
    left = version_tables(tmp_path / "default" / "latest")
    right = version_tables(tmp_path / "dask" / "latest")
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
