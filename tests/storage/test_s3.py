"""s3:// locations (pure) and what S3 storage adds to the interface, against a real server (SeaweedFS)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import StoreError
from pipeline.storage import S3Storage, open_storage
from pipeline.storage.s3 import S3Location, check_relative, parse_s3_url


def test_an_s3_url_names_its_bucket_and_prefix():
    assert parse_s3_url("s3://my-bucket/some/prefix/") == S3Location("my-bucket", "some/prefix")
    assert parse_s3_url("s3://my-bucket").url == "s3://my-bucket"
    assert parse_s3_url("s3://b-1/x").key("versions/000001/manifest.json") == "x/versions/000001/manifest.json"
    assert isinstance(open_storage("s3://b-1/x"), S3Storage)
    assert open_storage("data/processed").url == "data/processed"


@pytest.mark.parametrize(
    "url",
    ["s3://", "s3://UPPER/x", "s3://a/x/../y", "s3://ab/./x", "s3://a..b/x", "s3://bucket/x\ny", "s3://b/x\\y",
     "s3://" + "b" * 64],
)  # fmt: skip
def test_a_url_that_is_not_exactly_a_location_is_refused(url):
    with pytest.raises(StoreError):
        parse_s3_url(url)


@pytest.mark.parametrize("name", ["../x", "a/../../b", "a//b", "/abs", "a/./b", "x\x00y"])
def test_a_relative_name_that_could_escape_is_refused(name):
    with pytest.raises(StoreError, match="escape"):
        check_relative(name)
    with pytest.raises(StoreError):
        S3Location("bucket", "p").key(name)


@pytest.mark.server
def test_compare_and_swap_needs_the_current_tag(s3, s3_prefix):
    storage = S3Storage(parse_s3_url(s3_prefix))
    tag = storage.put_new("a/lock", b"first")
    assert tag is not None
    assert storage.put_new("a/lock", b"second") is None
    new_tag = storage.replace_if_tag("a/lock", b"third", tag)
    assert new_tag is not None
    assert storage.replace_if_tag("a/lock", b"fourth", tag) is None  # a stale tag loses
    assert storage.get_with_tag("a/lock") == (b"third", new_tag)
    assert storage.get_with_tag("missing") is None


@pytest.mark.server
def test_an_unusable_store_is_one_line_without_the_secret(s3, monkeypatch):
    from tests.s3server import SECRET_KEY, free_port

    with pytest.raises(StoreError, match="bucket does not exist") as missing:
        open_storage("s3://no-such-bucket/x").check_usable()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-" + SECRET_KEY)
    with pytest.raises(StoreError, match="access denied") as denied:
        open_storage("s3://listings/x").check_usable()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(StoreError, match="does not answer") as silent:
        open_storage("s3://listings/x").check_usable()
    for failure in (missing, denied, silent):
        assert "\n" not in str(failure.value)
        assert SECRET_KEY not in str(failure.value)


@pytest.mark.server
def test_throttling_and_server_errors_are_retried_and_a_refusal_is_not(s3, s3_prefix, monkeypatch):
    from tests.s3server import FaultyProxy

    proxy = FaultyProxy(s3.endpoint)
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        storage = S3Storage(parse_s3_url(s3_prefix))
        proxy.fail_next(503, 500)  # throttled, then a server error: both cured by a retry
        storage.put("x", b"data")
        assert proxy.requests == 3
        assert storage.get("x") == b"data"
        proxy.fail_next(503, 503, 503, 503)  # four attempts, then one line
        with pytest.raises(StoreError, match="SlowDown"):
            storage.put("y", b"data")
        assert proxy.requests == 4
        proxy.fail_next(403)  # a refusal is final: never sent again
        with pytest.raises(StoreError, match="access denied"):
            storage.get("x")
        assert proxy.requests == 1
    finally:
        proxy.stop()


@pytest.mark.server
def test_a_profile_of_the_shared_files_is_used_when_no_key_is_set(s3, s3_prefix, monkeypatch, tmp_path: Path):
    from tests.s3server import ACCESS_KEY, SECRET_KEY

    credentials = tmp_path / "credentials"
    credentials.write_text(f"[listings]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_PROFILE", "listings")
    storage = open_storage(s3_prefix)
    storage.put("by-profile", b"yes")
    assert storage.get("by-profile") == b"yes"
    assert storage.options()["aws_access_key_id"] == ACCESS_KEY  # what deltalake is given
