"""Shared fixtures: recorded real inputs, the reference data and one Prefect test server."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from anyascii import anyascii
from hypothesis import settings

from tests.s3server import BUCKET, S3Server, start_s3_server

# Shared, noisy machines: a slow example is not a failure; a wrong one is.
settings.register_profile("shared-machine", deadline=None)
settings.load_profile("shared-machine")

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SAMPLE = ROOT / "data" / "raw" / "listing_2026-11-26.txt"
GOLD = DATA / "gold_2026-11-26.jsonl"


def gold_records() -> list[dict[str, Any]]:
    """The hand-checked parse of the sample (GOLD): one record per paper, in listing order."""
    return [json.loads(line) for line in GOLD.read_text(encoding="utf-8").splitlines()]


def same_person(name: str) -> str:
    """A listed name folded as a reader would match it (diacritics, case and spacing aside): the
    test's own rule, not the pipeline's, so that counts made with it check the pipeline's identity."""
    return " ".join(anyascii(name).casefold().split())


@dataclass(frozen=True)
class Gold:
    """What the sample holds, counted from its gold file: tests derive the sample's counts from it."""

    records: tuple[dict[str, Any], ...]

    @property
    def papers(self) -> int:
        """Papers (and records: every record of the sample is a paper)."""
        return len(self.records)

    @property
    def paper_authors(self) -> int:
        """Author rows: each paper's listed authors (those shown before "et al.")."""
        return sum(len(record["authors"]) for record in self.records)

    @property
    def authors(self) -> int:
        """Distinct people and organisations among the listed authors, spellings of one folded together."""
        return len({same_person(name) for record in self.records for name in record["authors"]})

    def papers_of(self, author: str) -> int:
        """Papers that list `author`, in any spelling of theirs."""
        wanted = same_person(author)
        return sum(any(same_person(name) == wanted for name in r["authors"]) for r in self.records)


@pytest.fixture(scope="session", autouse=True)
def own_reader_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The suite's own readers' cache: never the user's ~/.cache, nor a previous run's copies."""
    with pytest.MonkeyPatch.context() as patched:
        cache = tmp_path_factory.mktemp("reader-cache")
        patched.setenv("PIPELINE_CACHE_DIR", str(cache))
        yield cache


@pytest.fixture(scope="session")
def gold() -> Gold:
    return Gold(tuple(gold_records()))


@pytest.fixture(scope="session")
def reference():
    from pipeline.parse.reference import load_reference

    return load_reference()


@pytest.fixture(scope="session")
def sample_text() -> str:
    return SAMPLE.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def sample_tables(sample_text, tmp_path_factory):
    """The sample's tables as a first version would publish them (assembled, not yet validated)."""
    from datetime import date

    from tests.assembly import assembled

    return assembled(tmp_path_factory.mktemp("sample"), [(SAMPLE.name, date(2026, 11, 26), sample_text)])


ONE_RECORD = "LGMar 1, 2025\nA Study of GraphsAnn Lee\nAbstract.\n"


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    """A raw folder holding one listing of one record."""
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "listing_2026-01-01.txt").write_text(ONE_RECORD, encoding="utf-8")
    return folder


@pytest.fixture
def raw_dir(tmp_path: Path) -> Path:
    """A raw folder holding a copy of the committed sample listing."""
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(SAMPLE, raw / SAMPLE.name)
    return raw


# What `main([... "--quiet"])` sets for the process: not to be passed on to CLI subprocesses.
QUIET_SETTINGS = ("PREFECT_LOGGING_LEVEL", "PREFECT_SERVER_LOGGING_LEVEL")
# A first start migrates a new database: minutes on a loaded machine, so allow ten.
SERVER_STARTUP_ALLOWANCE_S = 600


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """One Prefect server for every flow test of the session: the one .ci/run started
    (PIPELINE_TEST_PREFECT_API_URL), else a temporary one (its start-up costs 7-30 s)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    given = os.environ.get("PIPELINE_TEST_PREFECT_API_URL")
    if given:
        assert _wait_healthy(given, 180), f"no Prefect server at {given}"
        with temporary_settings(updates={PREFECT_API_URL: given}):
            yield
        return
    with prefect_test_harness(server_startup_timeout=SERVER_STARTUP_ALLOWANCE_S):
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


class LineWatcher:
    """Reads a subprocess's stream on a thread, keeps every line and signals the first line that
    holds a given text: tests wait on that event, never on a sleep."""

    def __init__(self, stream, wanted: str) -> None:
        import threading

        self.lines: list[str] = []
        self.seen = threading.Event()
        self.wanted = wanted
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line)
            if self.wanted in line:
                self.seen.set()

    def join(self) -> str:
        self._thread.join()
        return "".join(self.lines)


def own_copy(folder: Path, target: Path) -> Path:
    """A copy of the dataset folder `folder` at `target`, for one test to change (links kept as links)."""
    shutil.copytree(folder, target, symlinks=True)
    return target


def run_flow(raw: Path, out: Path, flow=None, **overrides):
    """Call the flow (or a variant of it) with the CLI's defaults, overridden by keyword."""
    from pipeline.cli import flow_parameters
    from pipeline.orchestrate.flow import refresh

    return (flow or refresh)(**{**flow_parameters(raw, out, lock_timeout_s=30.0), **overrides})


# The listings of `flow_versions`: P2 is captured again with a score, P4 again as it was, P3 is new.
P1 = "LGMar 1, 2025\nA Study of GraphsSébastien Bubeck, Ann Lee\nAbstract one.\n"
P2 = "CLMar 2, 2025\nLanguage Models RevisitedBo Chen, Cy Wu\nAbstract two.\n"
P2_NEW = "91.0CLMar 2, 2025Code\nLanguage Models RevisitedBo Chen, Cy Wu\nAbstract two.\n"
P3 = "CVMar 3, 2025\nVision at ScaleŁukasz Kaiser · openai\nAbstract three.\n"
P4 = "ROMar 4, 2025\nRobots Without ChangeDee Park\nAbstract four.\n"
STRAY = "a stray line\n"


@pytest.fixture(scope="session")
def flow_versions(prefect_server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset folder of two versions published by the flow (read only: copy it to change it):
    000001 (P1, P2, P4 and a reject), 000002 (P2 re-captured with a score, P4 re-captured as it
    was, P3 added)."""
    from pipeline.published import Store

    root = tmp_path_factory.mktemp("flow-versions")
    raw, out = root / "raw", root / "out"
    raw.mkdir()
    (raw / "listing_2026-01-01.txt").write_text(P1 + P2 + P4 + STRAY, encoding="utf-8")
    run_flow(raw, out, max_reject_rate=1.0)
    (raw / "listing_2026-02-01.txt").write_text(P2_NEW + P3 + P4, encoding="utf-8")
    run_flow(raw, out, max_reject_rate=1.0)
    assert Store.open(out).version_ids() == ["000001", "000002"]
    return out


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


@pytest.fixture(scope="session")
def dask_address() -> Iterator[str]:
    """A running Dask scheduler: the one .ci/run started (PIPELINE_TEST_DASK_ADDRESS), else a local cluster."""
    given = os.environ.get("PIPELINE_TEST_DASK_ADDRESS")
    if given:
        yield given
        return
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
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
