"""What runs leave behind: the leftovers of dead runs removed, the work of live runs kept."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pipeline.published.cleanup import clean_incomplete
from pipeline.storage.local import HOST


def test_leftovers_of_dead_runs_go_and_work_of_live_runs_stays(tmp_path: Path) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    here = HOST
    with subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE) as live:
        alive = versions / f".tmp-000002-h{here}-pid{live.pid}-t1"
        alive.mkdir()
        dead = versions / f".tmp-000003-h{here}-pid999999999-t1"  # no such process
        dead.mkdir()
        elsewhere = versions / ".tmp-000004-hffffffff-pid1-t1"  # another host's: cannot be checked
        elsewhere.mkdir()
        crashed = tmp_path / ".tmp-LATEST_ID-1234"  # an older name without an owner: a leftover
        crashed.write_text("000001", encoding="utf-8")
        assert sorted(clean_incomplete(tmp_path)) == sorted([dead, crashed])
        assert alive.is_dir()
        live.communicate(b"")
    assert clean_incomplete(tmp_path) == [alive]
    assert elsewhere.is_dir()
