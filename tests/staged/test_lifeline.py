"""The parsers' tie to their run: a killed run leaves no parser behind, and a parser of an ended run writes nothing."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from pipeline.parse.tables import staged_schemas
from pipeline.raw.scan import Chunk
from pipeline.staged.lifeline import RUN_PID, SERVER_PID, run_alive
from pipeline.staged.stage import stage_chunk
from tests.listings import only_source, record

# The staging step of a run, on two worker processes, in a process of its own that the test kills.
STAGING = """
import sys
import time
from pathlib import Path
from pipeline import settings
settings.MIN_PARALLEL_BYTES = 0
from pipeline.staged.stage import no_meter, stage_sources
from pipeline.storage import open_storage
from tests.listings import only_source
staged = Path(sys.argv[2])
source = only_source(Path(sys.argv[1]))
stage_sources([source], open_storage(staged), False, 2, 4_000, no_meter, Path(sys.argv[2] + "-cache"))
"""


def _parsers(run: psutil.Process) -> list[psutil.Process]:
    return [p for p in run.children(recursive=True) if "forkserver" in " ".join(p.cmdline())]


def test_a_killed_run_leaves_no_parser_behind(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "listing_2026-01-01.txt").write_text("".join(record(n) for n in range(60_000)), encoding="utf-8")
    staged = tmp_path / "staged"
    run = subprocess.Popen([sys.executable, "-c", STAGING, str(raw), str(staged)], cwd=Path(__file__).parents[2])
    family: list[psutil.Process] = []
    try:
        driver = psutil.Process(run.pid)
        # The event: the server and both workers exist, so parts are being parsed.
        deadline = time.monotonic() + 120
        while len(parsers := _parsers(driver)) < 3:
            assert time.monotonic() < deadline, "no workers after 120 s"
            with contextlib.suppress(subprocess.TimeoutExpired):
                run.wait(timeout=0.1)  # between looks: the staging's end, which must not come first
                pytest.fail("the staging ended before its workers were seen")
        family += [*parsers, *driver.children(recursive=True)]
        run.send_signal(signal.SIGKILL)
        run.wait()
        _, alive = psutil.wait_procs(family, timeout=10)
        assert not alive, [" ".join(p.cmdline())[:80] for p in alive]
        assert not any(staged.glob("*/capture.json"))  # killed while parsing, not after
    finally:  # nothing of this test outlives it, whatever failed
        run.kill()
        for process in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()


def test_a_worker_whose_server_ended_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "listing_2026-01-01.txt").write_text(record(1), encoding="utf-8")
    source = only_source(raw)
    folder = tmp_path / "part"
    folder.mkdir()
    chunk = Chunk(0, source.size_bytes, 1, hashlib.sha256(source.path.read_bytes()).hexdigest())
    # As in a worker whose server is gone: its parent is no longer the server it was forked by.
    monkeypatch.setenv(SERVER_PID, str(os.getppid() + 1_000_000))
    assert not run_alive()
    with pytest.raises(SystemExit, match="nothing written"):
        stage_chunk(source, chunk, folder, 0, staged_schemas())
    assert not any(folder.iterdir())


def test_in_the_run_itself_the_run_is_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SERVER_PID, raising=False)
    monkeypatch.setenv(RUN_PID, str(os.getpid()))
    assert run_alive()
