"""The writer lock: one writer at a time, a second waits and then says who holds it; released, it names no run."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from pipeline.errors import StoreLockedError
from pipeline.storage.lock import writer_lock


def test_second_writer_waits_then_reports_the_lock(tmp_path: Path) -> None:
    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with writer_lock(tmp_path / ".lock", timeout_s=5):
            holding.set()
            release.wait(5)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert holding.wait(5)
        with pytest.raises(StoreLockedError, match="another run"), writer_lock(tmp_path / ".lock", timeout_s=0.5):
            pass
    finally:
        release.set()
        thread.join()
    with writer_lock(tmp_path / ".lock", timeout_s=1):
        pass


def test_the_lock_names_no_run_once_released(tmp_path: Path) -> None:
    with writer_lock(tmp_path / ".lock", timeout_s=1):
        assert (tmp_path / ".lock").read_text(encoding="utf-8") == f"pid {os.getpid()}"
    assert (tmp_path / ".lock").read_text(encoding="utf-8") == ""
