"""s3:// locations (pure) and the S3 storage against a real server (SeaweedFS)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import StoreError
from pipeline.storage.s3 import S3Location, S3Storage, check_relative, parse_location, parse_s3_url
from tests.conftest import ROOT


def test_an_s3_url_names_its_bucket_and_prefix():
    assert parse_s3_url("s3://my-bucket/some/prefix/") == S3Location("my-bucket", "some/prefix")
    assert parse_s3_url("s3://my-bucket").url == "s3://my-bucket"
    assert parse_location("s3://b-1/x").key("versions/000001/papers.parquet") == "x/versions/000001/papers.parquet"
    assert parse_location("data/processed") == Path("data/processed")


@pytest.mark.parametrize(
    "url",
    ["s3://", "s3://UPPER/x", "s3://a/x/../y", "s3://ab/./x", "s3://a..b/x", "s3://bucket/x\ny", "s3://b/x\\y",
     "s3://" + "b" * 64],
)  # fmt: skip
def test_a_url_that_is_not_exactly_a_location_is_refused(url):
    with pytest.raises(StoreError):
        parse_s3_url(url)


def test_a_run_on_local_disk_never_loads_boto3():
    # What the driver and the parsers' forkserver import; boto3 costs each ~1 s and ~13 MB.
    code = (
        "import sys, pipeline.cli.commands, pipeline.orchestrate.flow, pipeline.staged.worker; "
        "print(sorted(m for m in ('boto3', 'botocore') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("name", ["../x", "a/../../b", "a//b", "/abs", "a/./b", "x\x00y"])
def test_a_relative_name_that_could_escape_is_refused(name):
    with pytest.raises(StoreError, match="escape"):
        check_relative(name)
    with pytest.raises(StoreError):
        S3Location("bucket", "p").key(name)


@pytest.mark.server
def test_create_if_absent_never_overwrites_and_compare_and_swap_needs_the_current_tag(s3, s3_prefix):
    storage = S3Storage(parse_s3_url(s3_prefix))
    assert storage.create_if_absent("a/manifest.json", b"first")
    assert not storage.create_if_absent("a/manifest.json", b"second")
    data, tag = storage.read_with_tag("a/manifest.json")
    assert data == b"first"
    new_tag = storage.replace_if_tag("a/manifest.json", b"third", tag)
    assert new_tag is not None
    assert storage.replace_if_tag("a/manifest.json", b"fourth", tag) is None  # a stale tag loses
    assert storage.read_bytes("a/manifest.json") == b"third"


@pytest.mark.server
def test_list_tree_and_delete_work_by_prefix(s3, s3_prefix, tmp_path):
    storage = S3Storage(parse_s3_url(s3_prefix))
    with storage.open_write("v/1/x.parquet") as handle:
        handle.write(b"x" * 1000)
    storage.write_bytes("v/1/sub/y", b"y")
    storage.write_bytes("v/10", b"z")
    assert storage.list("v") == ["1", "10"]
    assert storage.tree("v/1") == {"x.parquet": 1000, "sub/y": 1}
    storage.download("v/1/x.parquet", tmp_path / "x")
    assert (tmp_path / "x").read_bytes() == b"x" * 1000
    storage.delete("v/1")
    assert storage.tree("v") == {"10": 1}  # (SeaweedFS may still list the empty folder "1": S3 would not)
    assert storage.size("v/1/x.parquet") is None
    assert storage.read_with_tag("missing") is None


@pytest.mark.server
def test_an_unusable_store_is_one_line_without_the_secret(s3, monkeypatch):
    from pipeline.storage import s3 as s3_storage
    from tests.s3server import SECRET_KEY, free_port

    with pytest.raises(StoreError, match="bucket does not exist") as missing:
        S3Storage(parse_s3_url("s3://no-such-bucket/x")).check_usable()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-" + SECRET_KEY)
    s3_storage.client.cache_clear()
    with pytest.raises(StoreError, match="access denied") as denied:
        S3Storage(parse_s3_url("s3://listings/x")).check_usable()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    s3_storage.client.cache_clear()
    with pytest.raises(StoreError, match="does not answer") as silent:
        S3Storage(parse_s3_url("s3://listings/x")).check_usable()
    for failure in (missing, denied, silent):
        assert "\n" not in str(failure.value)
        assert SECRET_KEY not in str(failure.value)


@pytest.mark.server
def test_throttling_and_server_errors_are_retried_and_a_refusal_is_not(s3, s3_prefix, monkeypatch):
    from pipeline.storage import s3 as s3_storage
    from tests.s3server import FaultyProxy

    proxy = FaultyProxy(s3.endpoint)
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        s3_storage.client.cache_clear()
        storage = S3Storage(parse_s3_url(s3_prefix))
        proxy.fail_next(503, 500)  # throttled, then a server error: both cured by a retry
        storage.write_bytes("x", b"data")
        assert proxy.requests == 3
        assert storage.read_bytes("x") == b"data"
        proxy.fail_next(503, 503, 503, 503)  # four attempts, then one line
        with pytest.raises(StoreError, match="SlowDown"):
            storage.write_bytes("y", b"data")
        assert proxy.requests == 4
        proxy.fail_next(403)  # a refusal is final: never sent again
        with pytest.raises(StoreError, match="access denied"):
            storage.read_bytes("x")
        assert proxy.requests == 1
    finally:
        proxy.stop()
