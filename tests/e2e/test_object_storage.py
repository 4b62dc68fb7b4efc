"""The flow and the CLI on object storage (a real SeaweedFS): the same tables and guarantees as on disk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import duckdb
import pandas as pd
import polars as pl
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.arrow import ArrowFSWrapper

from pipeline.cli import main
from pipeline.consume.read import TABLES, load, load_duckdb
from pipeline.errors import StoreError
from pipeline.published import Store, VersionTransaction
from pipeline.storage.files import bytes_digest
from pipeline.storage.local import HOST
from pipeline.storage.s3 import S3Storage, parse_s3_url
from tests.conftest import SAMPLE, run_flow
from tests.s3server import ACCESS_KEY, REGION, SECRET_KEY

pytestmark = [pytest.mark.server, pytest.mark.flow]


def _everything_under(url: str) -> bytes:
    storage = S3Storage(parse_s3_url(url))
    blob = b""
    for found in storage.list("").objects:
        blob += storage.get(found.key) or b""
    return blob


def test_a_run_to_s3_publishes_the_tables_of_a_local_run(s3, s3_prefix, raw_dir, tmp_path, prefect_server, capsys):
    remote = run_flow(raw_dir, s3_prefix)
    local = run_flow(raw_dir, tmp_path / "out")
    assert remote.published
    assert remote.path == f"{s3_prefix}/versions/000001"
    for table in TABLES:
        assert load(table, out=s3_prefix).equals(load(table, out=tmp_path / "out")), table
    assert remote.row_counts == local.row_counts
    assert not run_flow(raw_dir, s3_prefix).published  # up to date: the staged layer and manifest are read back
    assert run_flow(raw_dir, s3_prefix, force=True).version_id == "000002"
    con = load_duckdb(out=s3_prefix)
    assert con.sql("SELECT count(DISTINCT version) FROM all_versions").fetchall() == [(2,)]
    assert main(["validate", f"{s3_prefix}/versions/000001"]) == 0
    assert main(["validate", f"{s3_prefix}/latest"]) == 0
    assert main(["versions", "--out", s3_prefix]) == 0
    assert main(["show", "--out", s3_prefix, "--table", "authors"]) == 0
    assert main(["diff", "000001", "--out", s3_prefix]) == 0
    assert main(["export", "delta", f"{s3_prefix}/delta", "--out", s3_prefix]) == 0  # S3 to S3
    printed = capsys.readouterr()
    assert "exported 2 version(s) (000001 to 000002)" in printed.out
    assert "* 000002" in printed.out
    assert "conforms to the contract" in printed.out
    assert SECRET_KEY.encode() not in _everything_under(s3_prefix)
    assert SECRET_KEY not in printed.out + printed.err


def test_raw_listings_are_read_from_s3(s3, s3_prefix, tmp_path, prefect_server):
    storage = S3Storage(parse_s3_url(f"{s3_prefix}/raw"))
    storage.put(f"2026/{SAMPLE.name}", SAMPLE.read_bytes())
    storage.put("notes.md", b"not a listing")
    summary = run_flow(f"{s3_prefix}/raw", f"{s3_prefix}/out")
    assert summary.records == 50
    assert summary.inputs[0]["path"] == f"2026/{SAMPLE.name}"
    assert summary.inputs[0]["capture_date"] == "2026-11-26"


def test_consumers_read_a_version_straight_from_s3_with_their_own_tools(s3, s3_prefix, raw_dir, prefect_server):
    run_flow(raw_dir, s3_prefix)
    store = parse_s3_url(s3_prefix)
    storage = S3Storage(store)
    # what a consumer without the pipeline does: the pointer, the manifest, the files it lists
    assert storage.get("LATEST_ID") == b"000001\n"
    manifest = json.loads(storage.get("versions/000001/manifest.json") or b"")
    files = manifest["tables"]["papers"]["files"]
    assert {f["generation"] for f in files} == {1}  # a first version: its files are the table as they are
    keys = [store.key(f["path"]) for f in files]
    # pyarrow ignores AWS_ENDPOINT_URL (apache/arrow#49643): it is given explicitly.
    fs = pafs.S3FileSystem(access_key=ACCESS_KEY, secret_key=SECRET_KEY, region=REGION,
                           endpoint_override=os.environ["AWS_ENDPOINT_URL"])  # fmt: skip
    assert sum(pq.read_table(f"{store.bucket}/{key}", filesystem=fs).num_rows for key in keys) == 50
    con = duckdb.connect()
    con.register_filesystem(ArrowFSWrapper(fs))
    listed = ", ".join(f"'s3://{store.bucket}/{key}'" for key in keys)
    assert con.sql(f"SELECT count(*) FROM read_parquet([{listed}])").fetchall() == [(50,)]
    options = {"aws_access_key_id": ACCESS_KEY, "aws_secret_access_key": SECRET_KEY, "aws_region": REGION,
               "aws_endpoint_url": os.environ["AWS_ENDPOINT_URL"], "aws_allow_http": "true"}  # fmt: skip
    urls = [f"s3://{store.bucket}/{key}" for key in keys]
    assert pl.read_parquet(urls, storage_options=options).height == 50


def test_load_reads_an_s3_version_with_every_engine(s3, s3_prefix, raw_dir, prefect_server):
    run_flow(raw_dir, s3_prefix)
    expected = load("paper_authors", engine="arrow", out=s3_prefix).num_rows
    assert expected > 50
    assert len(load("paper_authors", out=s3_prefix)) == expected  # pandas
    assert load("paper_authors", engine="polars", out=s3_prefix).height == expected
    assert len(load("paper_authors", engine="duckdb", out=s3_prefix).fetchall()) == expected
    assert len(load("papers", version="000001", engine="polars", out=s3_prefix)) == 50
    con = load_duckdb(version="000001", out=s3_prefix)
    assert con.sql("SELECT count(*) FROM papers").fetchall() == [(50,)]
    assert con.sql("SELECT DISTINCT version FROM all_versions").fetchall() == [("000001",)]


def test_a_tampered_file_on_s3_is_never_read(s3, s3_prefix, raw_dir, prefect_server, tmp_path, monkeypatch):
    """A reader downloads a file once, checks it, and reads its checked copy: a machine that holds
    one reads the published bytes; one that must download refuses the tampered object; `validate`
    always downloads, and names it."""
    run_flow(raw_dir, s3_prefix)
    published = load("authors", out=s3_prefix)
    storage = S3Storage(parse_s3_url(s3_prefix))
    (authors,) = Store.open(s3_prefix).manifest("000001").tables["authors"]
    storage.put(authors.key, b"PAR1 not what was published")
    pd.testing.assert_frame_equal(load("authors", out=s3_prefix), published)  # the checked copy, never the object
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path / "another-machine"))
    with pytest.raises(StoreError, match="differs from the sha256 in its manifest"):
        load("authors", out=s3_prefix)
    assert main(["validate", f"{s3_prefix}/versions/000001"]) != 0


@pytest.mark.parametrize("version", ["../000001", "000001/../x", "latest/..", "1"])
def test_a_version_id_that_would_escape_the_prefix_is_refused(s3, s3_prefix, version):
    with pytest.raises(StoreError):
        load("papers", version=version, out=s3_prefix)
    with pytest.raises(ValueError, match="unknown table"):
        load("../papers", out=s3_prefix)


def test_a_dead_writers_lock_and_partial_version_are_cleaned_by_the_next_run(
    s3, s3_prefix, raw_dir, prefect_server, monkeypatch
):
    monkeypatch.setenv("PIPELINE_GC_GRACE_S", "0")  # files no version lists are collected at once
    run_flow(raw_dir, s3_prefix)
    storage = S3Storage(parse_s3_url(s3_prefix))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    storage.put(".lock", json.dumps({"host": HOST, "pid": int(dead.stdout), "token": "t"}).encode())
    # a killed writer's files: a table file no manifest lists, and its version's folder without a manifest
    half = b"half a file of a killed writer"
    orphan = f"data/papers/000002-0000-{bytes_digest(half)['sha256']}.parquet"
    storage.put(orphan, half)
    storage.put("versions/000002/report.html", half)
    assert Store.open(s3_prefix).latest_id() == "000001"  # readers never see it
    summary = run_flow(raw_dir, s3_prefix, force=True)
    assert summary.version_id == "000002"
    assert main(["validate", f"{s3_prefix}/versions/000002"]) == 0
    assert storage.head(orphan) is None  # collected
    assert storage.get("versions/000002/report.html") != half  # the dead writer's folder was removed first
    own = Store.open(s3_prefix).manifest("000002").own
    assert {o.key for o in storage.list("versions/000002").objects} == {
        "versions/000002/manifest.json",
        *(f"versions/000002/{name}" for name in own),
    }


@pytest.mark.subprocess
def test_a_writer_killed_mid_run_leaves_latest_valid_and_the_next_run_completes(s3, s3_prefix, raw_dir, cli_env):
    """The killed writer is the CLI in a process of its own; the runs before and after it, the
    flow in this one."""
    env = {**cli_env, **s3.env(), "PIPELINE_CACHE_DIR": os.environ["PIPELINE_CACHE_DIR"]}  # the test's own cache
    run_flow(raw_dir, s3_prefix)
    storage = S3Storage(parse_s3_url(s3_prefix))
    writer = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", "--raw", str(raw_dir), "--out", s3_prefix, "--quiet", "--force"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while storage.head(".lock") is None and writer.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)  # the event: the writer holds the lock
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert Store.open(s3_prefix).latest_id() in {"000001", "000002"}
    assert run_flow(raw_dir, s3_prefix, force=True).published
    latest = Store.open(s3_prefix).latest_id()
    assert main(["validate", f"{s3_prefix}/versions/{latest}"]) == 0


@pytest.mark.subprocess
def test_two_writers_on_one_prefix_publish_two_versions_in_order(s3, s3_prefix, raw_dir, tmp_path, cli_env):
    env = {**cli_env, **s3.env(), "PIPELINE_CACHE_DIR": os.environ["PIPELINE_CACHE_DIR"]}  # the test's own cache
    second = tmp_path / "raw2"
    second.mkdir()
    (second / "listing_2026-11-27.txt").write_bytes(SAMPLE.read_bytes()[: len(SAMPLE.read_bytes()) // 2])
    runs = [
        subprocess.Popen([sys.executable, "-m", "pipeline", "run", "--raw", str(raw), "--out", s3_prefix,
                          "--quiet", "--max-removed-rate", "1"], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for raw in (raw_dir, second)
    ]  # fmt: skip
    outcomes = [run.communicate(timeout=600) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outcomes
    store = Store.open(s3_prefix)
    assert store.version_ids() == ["000001", "000002"]
    parent = json.loads(S3Storage(parse_s3_url(s3_prefix)).get("versions/000002/manifest.json") or b"")["parent_id"]
    assert parent == "000001"


def test_the_server_stopped_mid_publish_publishes_nothing_and_the_next_run_completes(
    tmp_path, raw_dir, prefect_server, monkeypatch
):
    from tests.s3server import start_s3_server

    server = start_s3_server(tmp_path / "own-server")
    try:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)  # a client is made anew for new settings
        monkeypatch.setenv("PIPELINE_S3_LEASE_S", "1")
        monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path / "reader-cache"))
        url = "s3://listings/stopped"
        run_flow(raw_dir, url)
        commit = VersionTransaction.commit

        def stop_then_commit(self, *args):
            server.stop()
            return commit(self, *args)

        monkeypatch.setattr(VersionTransaction, "commit", stop_then_commit)
        with pytest.raises(StoreError, match="does not answer"):
            run_flow(raw_dir, url, force=True)
        monkeypatch.setattr(VersionTransaction, "commit", commit)
        server = start_s3_server(tmp_path / "own-server")  # the same data, new ports
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint)
        store = Store.open(url)
        assert store.latest_id() == "000001"
        assert store.version_ids() == ["000001"]
        assert run_flow(raw_dir, url, force=True).version_id == "000002"
        assert main(["validate", f"{url}/versions/000002"]) == 0
    finally:
        server.stop()
