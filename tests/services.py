"""The services the tests talk to, started once a session: a Prefect server, a Dask cluster and an
S3 server (SeaweedFS), on 127.0.0.1; and the session's own readers' cache. A plugin (the root
conftest.py registers it), so that the docs' snippets share them with the tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.s3server import BUCKET, S3Server, start_s3_server

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def own_reader_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The suite's own readers' cache: never the user's ~/.cache, nor a previous run's copies."""
    with pytest.MonkeyPatch.context() as patched:
        cache = tmp_path_factory.mktemp("reader-cache")
        patched.setenv("PIPELINE_CACHE_DIR", str(cache))
        yield cache


# What `main([... "--quiet"])` sets for the process: not to be passed on to CLI subprocesses.
QUIET_SETTINGS = ("PREFECT_LOGGING_LEVEL", "PREFECT_SERVER_LOGGING_LEVEL")
# A first start migrates a new database: minutes on a loaded machine, so allow ten.
SERVER_STARTUP_ALLOWANCE_S = 600


SHARED_SERVER = pytest.StashKey[tuple[subprocess.Popen[bytes], Path]]()


def pytest_configure(config: pytest.Config) -> None:
    """Under xdist (`-n`), one Prefect server for every worker, started here by the controller and
    found by the workers through PIPELINE_TEST_PREFECT_API_URL: a temporary server for each worker
    would cost each its start-up. Not when one is given, nor for the fast tier, which needs none."""
    if hasattr(config, "workerinput") or os.environ.get("PIPELINE_TEST_PREFECT_API_URL"):
        return
    if not getattr(config.option, "numprocesses", None) or "not service" in (config.option.markexpr or ""):
        return
    home = Path(tempfile.mkdtemp(prefix="pipeline-test-prefect-"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    prefect = str(Path(sys.executable).parent / "prefect")
    command = [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with (home / "server.log").open("wb") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    config.stash[SHARED_SERVER] = (server, home)
    # The workers inherit it; the `prefect_server` fixture waits for its /health before use.
    os.environ["PIPELINE_TEST_PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"


def pytest_unconfigure(config: pytest.Config) -> None:
    started = config.stash.get(SHARED_SERVER, None)
    if started is None:
        return
    server, home = started
    os.environ.pop("PIPELINE_TEST_PREFECT_API_URL", None)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """One Prefect server for every flow test of the session: the one .ci/run started
    (PIPELINE_TEST_PREFECT_API_URL), else a temporary one. The flows
    run in the tests' processes send no heartbeats, as on the CLI's temporary server: the thread
    that sends them holds each flow run's end up to a second (tests/e2e/test_refresh.py and
    test_versions.py took 72 s with them, 51 s without)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    no_heartbeats = temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})
    given = os.environ.get("PIPELINE_TEST_PREFECT_API_URL")
    if given:
        assert _wait_healthy(given, SERVER_STARTUP_ALLOWANCE_S), f"no Prefect server at {given}"
        with temporary_settings(updates={PREFECT_API_URL: given}), no_heartbeats:
            yield
        return
    with prefect_test_harness(server_startup_timeout=SERVER_STARTUP_ALLOWANCE_S), no_heartbeats:
        yield


@pytest.fixture(scope="session")
def cli_env(prefect_server) -> dict[str, str]:
    """Environment for CLI subprocesses: the package importable, and a running Prefect API (the
    one .ci/run started, else this session's test server) so that none pays a server's start-up."""
    from prefect.settings import PREFECT_API_URL

    url = os.environ.get("PIPELINE_TEST_PREFECT_API_URL") or PREFECT_API_URL.value()
    assert url, "the session's Prefect test server has no URL"
    env = {key: value for key, value in os.environ.items() if key not in QUIET_SETTINGS}
    return {**env, "PYTHONPATH": str(ROOT), "PREFECT_API_URL": str(url)}


def _wait_healthy(url: str, timeout_s: float) -> bool:
    import time
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.5)
    return False


@pytest.fixture(scope="session")
def prefect_api_url(prefect_server) -> str:
    """The URL of the session's Prefect server (`prefect_server`), for subprocesses and API clients."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    assert url, "the session's Prefect server has no URL"
    return str(url)


@pytest.fixture(scope="module")
def dask_address() -> Iterator[str]:
    """The address of a running Dask cluster (a scheduler and one worker process on 127.0.0.1),
    for the module that uses it: an idle cluster kept for the whole session costs the other tests
    about 20 CPU-seconds."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:  # fmt: skip
        yield cluster.scheduler_address


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> Iterator[S3Server]:
    """One real S3 server (SeaweedFS) for the session, started on 127.0.0.1 and stopped at the end."""
    server = start_s3_server(tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch, tmp_path: Path) -> S3Server:
    """The S3 server, with this process configured for it through the standard AWS variables
    (a client is made anew for new settings) and a reader cache of the test's own."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path / "reader-cache"))
    return s3_server


@pytest.fixture
def s3_prefix(s3: S3Server, request) -> str:
    """A URL of the test's own under the server's bucket."""
    import re

    return f"s3://{BUCKET}/{re.sub(r'[^a-z0-9-]+', '-', request.node.name.lower())[:60]}-{os.urandom(3).hex()}"


# A test that uses one of these, or carries one of these markers, talks to a service (a Prefect
# server, SeaweedFS, a Dask cluster, Chromium, a CLI subprocess): marked `service`, so that the
# fast tier (`make test-fast`: -m "not service") leaves it out.
SERVICE_FIXTURES = frozenset({"prefect_server", "prefect_api_url", "cli_env", "s3_server", "s3", "s3_prefix",
                              "dask_address", "flow_versions", "docs_workdir", "docs_dataset"})  # fmt: skip
SERVICE_MARKERS = ("flow", "subprocess", "server", "browser", "docs")
# A parameter that stands for a storage served by SeaweedFS (`storage` fixtures that take it on demand).
SERVICE_PARAMS = frozenset({"s3"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if (
            SERVICE_FIXTURES & set(getattr(item, "fixturenames", ()))
            or any(item.get_closest_marker(name) for name in SERVICE_MARKERS)
            or SERVICE_PARAMS & {str(value) for value in params.values()}
        ):
            item.add_marker(pytest.mark.service)


# CI sets this: every test is required there, so a skip (a missing browser, a service that could
# not start) fails the run instead of passing unseen.
NO_SKIPS_SETTING = "PIPELINE_NO_SKIPS"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if os.environ.get(NO_SKIPS_SETTING) == "1" and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.longrepr = f"skipped, and {NO_SKIPS_SETTING}=1 requires every test to run: {reason}"
