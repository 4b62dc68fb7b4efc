"""The run's Prefect API: a generous start-up allowance, one clear line when there is none, and a
temporary server that never outlives its run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from prefect.settings import (
    PREFECT_API_DATABASE_CONNECTION_URL,
    PREFECT_API_URL,
    PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
    PREFECT_HOME,
    temporary_settings,
)

from pipeline.cli import main
from pipeline.errors import PrefectUnavailableError
from pipeline.orchestrate.prefect_api import (
    api_settings,
    start_temporary_server,
)
from pipeline.published import Store
from pipeline.settings import ALLOWANCE_SETTING
from tests.conftest import ROOT, SAMPLE, LineWatcher
from tests.services import QUIET_SETTINGS

SERVER_APP = "prefect.server.api.server:create_app"


def servers_of(home: Path) -> list[psutil.Process]:
    """Running Prefect servers started for the Prefect home `home`."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if SERVER_APP in " ".join(process.info["cmdline"] or []) and process.environ().get("PREFECT_HOME") == str(
                home
            ):
                found.append(process)
        except psutil.Error:
            continue
    return found


def test_a_run_on_a_temporary_server_sends_no_heartbeats_and_one_on_a_configured_server_keeps_them() -> None:
    url = "http://127.0.0.1:4200/api"
    temporary = api_settings(url, temporary=True)
    assert temporary[PREFECT_API_URL] == url
    assert PREFECT_FLOWS_HEARTBEAT_FREQUENCY in temporary
    assert temporary[PREFECT_FLOWS_HEARTBEAT_FREQUENCY] is None
    with temporary_settings(updates=temporary):
        assert PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value() is None
    configured = api_settings(url, temporary=False)
    assert configured == {PREFECT_API_URL: url}  # the user's own heartbeat setting stands


@pytest.fixture
def fresh_home(tmp_path: Path) -> Iterator[Path]:
    """A Prefect home with no database yet, as on a first-ever run; no server configured."""
    home = tmp_path / "prefect-home"
    home.mkdir()
    updates = {
        PREFECT_HOME: home,
        PREFECT_API_URL: None,
        PREFECT_API_DATABASE_CONNECTION_URL: f"sqlite+aiosqlite:///{home}/prefect.db",
    }
    with temporary_settings(updates=updates):  # type: ignore[arg-type]
        yield home


@pytest.mark.subprocess
def test_a_server_slower_than_its_allowance_is_one_line_and_exit_3(
    fresh_home: Path, raw_dir: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """A first start migrates a new database: it never answers within a second."""
    monkeypatch.setenv(ALLOWANCE_SETTING, "1")
    assert main(["run", "--raw", str(raw_dir), "--out", str(tmp_path / "out")]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("error: the temporary Prefect server did not answer within its start-up allowance")
    assert "prefect server start" in err
    assert "PREFECT_API_URL" in err
    assert ALLOWANCE_SETTING in err
    assert servers_of(fresh_home) == []  # stopped, not left to finish starting


@pytest.mark.subprocess
def test_a_server_that_exits_at_start_is_reported_at_once(fresh_home: Path) -> None:
    bad_database = f"sqlite+aiosqlite:///{fresh_home}/missing-folder/prefect.db"
    with (
        temporary_settings(updates={PREFECT_API_DATABASE_CONNECTION_URL: bad_database}),  # type: ignore[dict-item]
        pytest.raises(
            PrefectUnavailableError, match=r"exited with code \d+ while starting \(.*unable to open database"
        ),
    ):
        start_temporary_server(600)  # fails as soon as the server exits, not after the allowance


def test_a_configured_server_that_does_not_answer_is_exit_3(raw_dir: Path, tmp_path: Path, capsys) -> None:
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        assert main(["run", "--raw", str(raw_dir), "--out", str(tmp_path / "out")]) == 3
    err = capsys.readouterr().err
    assert err.startswith("error: no Prefect server answers at PREFECT_API_URL=http://127.0.0.1:9/api")
    assert err.count("\n") == 1


# --- real one-off runs, each with its own temporary server -----------------------------------------


@pytest.fixture(scope="module")
def first_run_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("first-run-home")


def one_off_env(home: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_HOME": str(home)}
    for name in ("PREFECT_API_URL", "PREFECT_API_DATABASE_CONNECTION_URL", ALLOWANCE_SETTING, *QUIET_SETTINGS):
        env.pop(name, None)
    return env


@pytest.mark.subprocess
def test_a_first_ever_run_publishes_and_stops_its_server(first_run_home: Path, raw_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", "--raw", str(raw_dir), "--out", str(out), "--quiet"],
        capture_output=True, text=True, env=one_off_env(first_run_home), cwd=tmp_path, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "published new version 000001" in proc.stdout
    assert (first_run_home / "prefect.db").is_file()  # created by this run
    _, alive = psutil.wait_procs(servers_of(first_run_home), timeout=60)
    assert alive == []


@pytest.mark.subprocess
def test_a_bad_allowance_is_one_line_before_prefect_is_imported(raw_dir: Path, tmp_path: Path) -> None:
    """Prefect validates the setting on import: a value it refuses once gave a long traceback."""
    env = {**one_off_env(tmp_path / "home"), ALLOWANCE_SETTING: "0.5"}
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", "--raw", str(raw_dir), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 3
    assert proc.stderr == f"error: {ALLOWANCE_SETTING}='0.5' is not a whole number of seconds (1 or more)\n"


@pytest.mark.subprocess
def test_a_killed_run_takes_its_server_with_it(first_run_home: Path, raw_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copy(SAMPLE, raw_dir / "listing_2026-11-27.txt")
    # Holding the writer lock keeps the run alive, its server up, until the test kills it.
    with Store.open(out).lock(5):
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "run", "--raw", str(raw_dir), "--out", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=one_off_env(first_run_home),
        )  # fmt: skip
        watcher = LineWatcher(proc.stderr, "waiting for the writer lock")
        assert watcher.seen.wait(timeout=600), watcher.lines
        (server,) = [p for p in psutil.Process(proc.pid).children() if SERVER_APP in " ".join(p.cmdline())]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    _, alive = psutil.wait_procs([server], timeout=30)
    assert alive == [], "the temporary server outlived its killed run"
    watcher.join()
