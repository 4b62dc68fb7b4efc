"""A scheduled refresh: `serve --cron` against a real `prefect server start`, then a triggered run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL, temporary_settings

from pipeline.published import Store
from tests.conftest import ROOT, SAMPLE

pytestmark = [pytest.mark.server, pytest.mark.subprocess]


def test_served_deployment_has_the_cron_and_a_triggered_run_publishes(
    prefect_api_url: str, tmp_path: Path, gold
) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    shutil.copy(SAMPLE, raw / SAMPLE.name)
    # The runner asks for runs due every second (Prefect's default: 10 s), so that the triggered
    # run starts as soon as it is due.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_API_URL": prefect_api_url,
           "PREFECT_RUNNER_POLL_FREQUENCY": "1"}  # fmt: skip
    name = f"test-{os.getpid()}"
    log = (tmp_path / "serve.log").open("w")
    serving = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "serve", "--cron", "0 6 * * *", "--name", name,
         "--raw", str(raw), "--out", str(out)],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
    )  # fmt: skip
    try:
        with temporary_settings(updates={PREFECT_API_URL: prefect_api_url}), get_client(sync_client=True) as client:
            deadline = time.monotonic() + 120
            deployment = None
            while deployment is None and time.monotonic() < deadline:
                assert serving.poll() is None, (tmp_path / "serve.log").read_text()
                try:
                    deployment = client.read_deployment_by_name(f"listings-to-parquet/{name}")
                except ObjectNotFound:  # not registered yet
                    time.sleep(1)
            assert deployment is not None, (tmp_path / "serve.log").read_text()
            crons = [getattr(s.schedule, "cron", None) for s in deployment.schedules]
            assert crons == ["0 6 * * *"]

            flow_run = run_deployment(f"listings-to-parquet/{name}", timeout=240, poll_interval=0.5)
            assert flow_run.state is not None
            assert flow_run.state.is_completed(), (flow_run.state, (tmp_path / "serve.log").read_text())
    finally:
        serving.terminate()
        serving.wait(timeout=60)
        log.close()
    store = Store.open(out)
    assert store.latest_id() == "000001"
    assert store.manifest(store.resolve("latest")).row_counts["papers"] == gold.papers
