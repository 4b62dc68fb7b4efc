"""Where a run's Prefect API lives: the configured server, or a temporary one that dies with the run.

Prefect starts a temporary server by itself when no `PREFECT_API_URL` is set, but allows it 20 s
to answer: a first start creates and migrates its SQLite database (9 s on an idle 2-core machine,
minutes on a busy one), so one-off runs failed on loaded machines. This module starts that
server itself: with a generous allowance, failing at once when the server process dies, one start
at a time per Prefect home (so that two first runs do not migrate one database together), and
with the server bound to 127.0.0.1 and killed by the kernel (Linux) when the thread that started
it ends: the CLI starts it from its main thread, so when the run's process dies, even by SIGKILL.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import prefect
from prefect.settings import (
    PREFECT_API_URL,
    PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
    PREFECT_HOME,
    get_current_settings,
    temporary_settings,
)

from pipeline.errors import PrefectUnavailableError
from pipeline.settings import ALLOWANCE_SETTING
from pipeline.storage.lock import wait_for_lock

HEALTH_POLL_S = 0.1
_PR_SET_PDEATHSIG = 1  # linux/prctl.h

HELP = (
    "start a server (`prefect server start`) and set PREFECT_API_URL=http://127.0.0.1:4200/api, "
    f"or give the temporary server longer to start ({ALLOWANCE_SETTING}=1200)"
)


def server_answers(api_url: str, timeout_s: float = 30.0) -> str | None:
    """None when the Prefect API at `api_url` is healthy, else what went wrong."""
    try:
        response = httpx.get(f"{api_url.rstrip('/')}/health", timeout=timeout_s)
    except httpx.HTTPError as err:
        return str(err) or type(err).__name__
    return None if response.status_code == 200 else f"HTTP {response.status_code}"


@contextlib.contextmanager
def prefect_api(allowance_s: float) -> Iterator[str]:
    """The Prefect API for this run, exported to the environment so that worker processes
    (Dask) report to it too: the configured `PREFECT_API_URL` when it answers, else a temporary
    server started here (stopped at exit, after Prefect's log and event workers have drained;
    stopping it earlier makes them retry for a minute). Raises PrefectUnavailableError.
    """
    configured = PREFECT_API_URL.value()
    if configured:
        failure = server_answers(configured)
        if failure is not None:
            raise PrefectUnavailableError(
                f"no Prefect server answers at PREFECT_API_URL={configured} ({failure}); {HELP}"
            )
        url = str(configured)
    else:
        url = start_temporary_server(allowance_s)
    previous = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = url
    try:
        with temporary_settings(updates=api_settings(url, temporary=not configured)):
            yield url
    finally:
        if previous is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous


def api_settings(url: str, *, temporary: bool) -> dict[Any, Any]:
    """The Prefect settings of a run whose API is at `url`. On a temporary server, no flow-run
    heartbeats: they let a server mark a killed run as crashed, but this server dies with the run,
    and the thread that sends them sleeps in 1 s steps, so it holds each run's end up to a second."""
    if temporary:
        return {PREFECT_API_URL: url, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
    return {PREFECT_API_URL: url}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _death_signal_hook() -> Callable[[], None]:
    """A hook to run in the server's process before it starts (Linux): the kernel kills it when
    the thread that started it ends (for the CLI, its main thread: the whole process). SIGKILL,
    because nobody is left to wait for a clean stop and SQLite survives it."""
    libc = ctypes.CDLL(None, use_errno=True)  # loaded here: the hook runs between fork and exec
    parent = os.getpid()

    def hook() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(1)

    return hook


def _server_command(port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn",
        "--app-dir", str(Path(prefect.__file__).parent.parent),
        "--factory", "prefect.server.api.server:create_app",
        "--host", "127.0.0.1", "--port", str(port),
        "--log-level", "error", "--lifespan", "on",
    ]  # fmt: skip


def _server_environment() -> dict[str, str]:
    return {
        **os.environ,
        **get_current_settings().to_environment_variables(exclude_unset=True),
        # As Prefect's own temporary server: no UI, no background services.
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
    }


@contextlib.contextmanager
def _start_lock(deadline: float) -> Iterator[None]:
    """One temporary-server start at a time per Prefect home: the first migrates the database."""
    home = Path(PREFECT_HOME.value())
    try:
        home.mkdir(parents=True, exist_ok=True)
        handle = (home / "pipeline-server-start.lock").open("a")
    except OSError as err:
        raise PrefectUnavailableError(f"cannot use the Prefect home {home} ({err.strerror}); {HELP}") from None
    with handle:
        if not wait_for_lock(handle, max(deadline - time.monotonic(), 0), poll_s=HEALTH_POLL_S):
            raise PrefectUnavailableError(
                f"another run kept the Prefect home {home} busy past the start-up allowance; {HELP}"
            )
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def start_temporary_server(allowance_s: float) -> str:
    """Start Prefect's API server for this process only; return its URL once it answers."""
    deadline = time.monotonic() + allowance_s
    with _start_lock(deadline):
        for attempt in range(3):
            # Kept open for the server's whole life: it holds what the server printed, for an error.
            log = tempfile.TemporaryFile(mode="w+b")  # noqa: SIM115
            port = _free_port()
            process = subprocess.Popen(
                _server_command(port),
                env=_server_environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Linux: the kernel kills the server when this process dies, even by SIGKILL.
                preexec_fn=_death_signal_hook() if sys.platform.startswith("linux") else None,
            )
            atexit.register(_stop, process)
            url = f"http://127.0.0.1:{port}/api"
            failure = _wait_until_healthy(process, url, deadline)
            if failure is None:
                return url
            _stop(process)
            log.seek(0)
            printed = log.read().decode("utf-8", errors="replace")
            if "address already in use" not in printed or attempt == 2:
                break  # else another process took the port between our check and the server's bind
    cause = _last_error_line(printed)
    raise PrefectUnavailableError(f"the temporary Prefect server {failure}{f' ({cause})' if cause else ''}; {HELP}")


def _wait_until_healthy(process: subprocess.Popen[bytes], url: str, deadline: float) -> str | None:
    """None once the server answers; else why it never will (it exited, or time is up)."""
    with httpx.Client(timeout=10) as client:
        while True:
            code = process.poll()
            if code is not None:
                return f"exited with code {code} while starting"
            try:
                if client.get(f"{url}/health").status_code == 200:
                    return None
            except httpx.HTTPError:
                pass  # not listening yet
            if time.monotonic() >= deadline:
                return "did not answer within its start-up allowance"
            time.sleep(HEALTH_POLL_S)


_EXCEPTION_LINE = re.compile(r"^[\w.]+(?:Error|Exception): ")


def _last_error_line(printed: str) -> str:
    """The line of the server's output that best says why it failed: its last exception."""
    lines = [line.strip() for line in printed.splitlines() if line.strip()]
    errors = [line for line in lines if _EXCEPTION_LINE.match(line)]
    return (errors or lines or [""])[-1][:300]


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
