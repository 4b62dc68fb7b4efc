"""The writer lock on object storage, against a real S3 server: one holder, takeover of the dead."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from pipeline.errors import StoreLockedError
from pipeline.storage.lease import object_lock
from pipeline.storage.local import HOST
from pipeline.storage.s3 import S3Storage, parse_s3_url

pytestmark = pytest.mark.server


def test_a_second_writer_waits_for_the_first_then_gives_up(s3, s3_prefix):
    storage = S3Storage(parse_s3_url(s3_prefix))
    with object_lock(storage, ".lock", timeout_s=5) as lease:
        told = []
        with (
            pytest.raises(StoreLockedError, match="another run"),
            object_lock(storage, ".lock", timeout_s=0.5, on_wait=told.append),
        ):
            pass
        lease.check()
        assert told
        assert "pid" in told[0]
    assert storage.head(".lock") is None  # released


def test_one_of_many_writers_holds_the_lock_at_a_time(s3, s3_prefix):
    storage = S3Storage(parse_s3_url(s3_prefix))
    inside, most, lock = [0], [0], threading.Lock()

    def writer() -> None:
        with object_lock(storage, ".lock", timeout_s=60):
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == 1


def test_the_lock_of_a_dead_process_is_taken_over_at_once(s3, s3_prefix):
    storage = S3Storage(parse_s3_url(s3_prefix))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    holder = {"host": HOST, "pid": int(dead.stdout), "token": "x", "lease_s": 3600}
    storage.put(".lock", json.dumps(holder).encode())
    with object_lock(storage, ".lock", timeout_s=5) as lease:
        lease.check()


def test_a_lock_not_renewed_for_a_lease_is_taken_over(s3, s3_prefix, monkeypatch):
    monkeypatch.setenv("PIPELINE_S3_LEASE_S", "1")
    storage = S3Storage(parse_s3_url(s3_prefix))
    # Another machine's holder, which never renews: its lease runs out.
    storage.put(".lock", json.dumps({"host": "elsewhere", "pid": 1, "token": "y"}).encode())
    with object_lock(storage, ".lock", timeout_s=30) as lease:
        lease.check()


def test_a_holder_whose_lock_was_taken_over_never_commits_nor_deletes_the_new_lock(s3, s3_prefix, monkeypatch):
    monkeypatch.setenv("PIPELINE_S3_LEASE_S", "1")
    storage = S3Storage(parse_s3_url(s3_prefix))
    other = json.dumps({"host": "elsewhere", "pid": 1, "token": "z"}).encode()
    with object_lock(storage, ".lock", timeout_s=5) as lease:
        storage.put(".lock", other)  # what a takeover does while this holder stalls
        deadline = time.monotonic() + 60
        while not lease.lost and time.monotonic() < deadline:
            time.sleep(0.05)  # the renewal thread finds out at its next renewal (every lease / 4)
        with pytest.raises(StoreLockedError, match="taken over"):
            lease.check()
    assert storage.get(".lock") == other
