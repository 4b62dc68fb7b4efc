"""Parsing fanned out to a Dask cluster whose workers share no disk with the driver: raw captures and
staged parts travel through a real S3 server (SeaweedFS), and the tables are those of a local run."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from pipeline.consume.read import TABLES, load
from pipeline.storage.s3 import S3Storage, parse_s3_url
from tests.conftest import ROOT, run_flow
from tests.s3server import free_port

pytestmark = [pytest.mark.server, pytest.mark.flow]


def _listings(folder: Path, count: int) -> list[Path]:
    """`count` captures rendered from the real corpus, 120 papers each, overlapping by a sixth."""
    from benchmarks.render import load_records, render_listing

    folder.mkdir(parents=True)
    records = load_records()
    paths = []
    for n in range(count):
        capture = date(2026, 3, 1) + timedelta(days=7 * n)
        text, _ = render_listing(records[n * 100 : n * 100 + 120], capture, seed=n)
        paths.append(folder / f"listing_{capture.isoformat()}.txt")
        paths[-1].write_text(text, encoding="utf-8")
    return paths


@pytest.fixture
def fenced_cluster(s3, prefect_server, prefect_api_url: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A Dask scheduler and two worker processes, each worker with a temporary folder of its own and
    fenced off (tests/fence.py) from the driver's folder, which it yields with the address."""
    from distributed import Client

    driver = tmp_path / "driver"
    driver.mkdir()
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    base = {**os.environ, **s3.env(), "PYTHONPATH": str(ROOT), "PREFECT_API_URL": prefect_api_url,
            "PIPELINE_TEST_FENCE": str(driver)}  # fmt: skip
    dask = Path(sys.executable).parent / "dask"
    processes = [
        subprocess.Popen([str(dask), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                         cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=base)
    ]  # fmt: skip
    for n in range(2):
        own = tmp_path / f"worker-{n}"
        own.mkdir()
        processes.append(subprocess.Popen(
            [str(dask), "worker", address, "--host", "127.0.0.1", "--nworkers", "1", "--nthreads", "1",
             "--no-dashboard", "--local-directory", str(own), "--preload", "tests.fence"],
            cwd=own, env={**base, "TMPDIR": str(own)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
    try:
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        yield address, driver
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:  # a worker still closing: the test is over, end it
                process.kill()
                process.wait()


def test_workers_without_the_drivers_disk_stage_through_s3_and_give_a_local_runs_tables(
    s3, s3_prefix, fenced_cluster, monkeypatch
):
    from distributed import Client

    from pipeline.orchestrate.flow import refresh
    from pipeline.orchestrate.runners import task_runner
    from tests import fence

    address, driver = fenced_cluster
    monkeypatch.setattr(tempfile, "tempdir", str(driver))  # every working folder of the driver is fenced
    listings = _listings(driver / "raw", 6)
    raw = S3Storage(parse_s3_url(f"{s3_prefix}/raw"))
    for path in listings:
        raw.put(path.name, path.read_bytes())
    on_cluster = refresh.with_options(task_runner=task_runner(None, address))
    remote = run_flow(f"{s3_prefix}/raw", f"{s3_prefix}/out", flow=on_cluster, batch_bytes=1, max_reject_rate=1.0)
    local = run_flow(driver / "raw", driver / "out", max_reject_rate=1.0)
    assert remote.published
    assert len(remote.parsed_files) == 6
    assert remote.row_counts == local.row_counts
    assert remote.row_counts["papers"] > 500
    for table in TABLES:
        assert load(table, out=f"{s3_prefix}/out").equals(load(table, out=driver / "out")), table
    with Client(address) as client:
        staged_by_worker = client.run(fence.staged_count)
        assert set(client.run(fence.can_open, str(listings[0])).values()) == {False}  # the fence holds
    assert sorted(staged_by_worker.values())[0] >= 1, staged_by_worker  # both workers staged, in their own folders
    assert sum(staged_by_worker.values()) == 6
