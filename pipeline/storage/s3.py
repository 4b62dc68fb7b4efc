"""Object storage (S3 and S3-compatible servers) as storage: s3:// locations, one client, errors in one line."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import IO, Any

from pipeline.errors import StoreError, StoreWriteError

SCHEME = "s3://"
# S3's bucket names (the strict rules of today's AWS, which S3-compatible servers accept).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# One segment of a prefix or key: printable, and never "." or "..", which some servers and
# every local copy would read as a step up.
_SEGMENT = re.compile(r"[^\x00-\x1f\x7f/\\]+")
# Whole files moved at once by `concurrently` (each of them streamed in parts by boto3).
TRANSFER_THREADS = 4
_NO_BUCKET = "the bucket does not exist (create it, or fix the URL)"
_NO_CREDENTIALS = "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
_DENIED = frozenset({"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
                     "InvalidToken", "TokenRefreshRequired", "403", "Forbidden"})  # fmt: skip
_PRECONDITION = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})


def is_s3_url(value: object) -> bool:
    """True when `value` is text naming an s3:// location (a Path never is)."""
    return isinstance(value, str) and value.startswith(SCHEME)


@dataclass(frozen=True, slots=True)
class S3Location:
    """A place in a bucket: ``s3://bucket/prefix``. Carries no credential: every process reads
    those from its own AWS configuration (environment, profile, instance role)."""

    bucket: str
    prefix: str  # "" or segments joined by "/", without a leading or trailing one

    @property
    def url(self) -> str:
        """The location as a URL."""
        return f"{SCHEME}{self.bucket}/{self.prefix}".rstrip("/")

    def __str__(self) -> str:
        return self.url

    def key(self, relative: str = "") -> str:
        """The object key of `relative` (a '/'-separated name) under this location."""
        check_relative(relative)
        return "/".join(part for part in (self.prefix, relative) if part)

    def child(self, relative: str) -> S3Location:
        """The location of `relative` under this one."""
        return S3Location(self.bucket, self.key(relative))


def check_relative(relative: str) -> str:
    """`relative` when every segment is a plain name; else StoreError (it would escape its prefix)."""
    if relative and not all(_SEGMENT.fullmatch(s) and s not in {".", ".."} for s in relative.split("/")):
        raise StoreError(f"{relative[:80]!r} is not a plain relative name: refusing a key that could escape its prefix")
    return relative


def parse_s3_url(text: str) -> S3Location:
    """The location an ``s3://bucket/prefix`` URL names; StoreError when it is not one exactly."""
    if not is_s3_url(text):
        raise StoreError(f"{text[:80]!r} is not an s3:// URL")
    bucket, _, prefix = text[len(SCHEME) :].partition("/")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise StoreError(f"{text[:80]!r}: {bucket[:64]!r} is not a bucket name (3-63 of a-z, 0-9, '.', '-')")
    prefix = prefix.strip("/")
    try:
        check_relative(prefix)
    except StoreError:
        raise StoreError(f"{text[:80]!r}: the prefix must be plain names separated by '/'") from None
    return S3Location(bucket, prefix)


def parse_location(value: str | os.PathLike[str]) -> Path | S3Location:
    """A dataset or raw location: an s3:// URL, or else a local path."""
    return parse_s3_url(value) if isinstance(value, str) and is_s3_url(value) else Path(value)


def concurrently(transfer: Callable[[str], None], names: Iterable[str]) -> None:
    """`transfer` of each name, `TRANSFER_THREADS` at a time; the first failure is raised."""
    with ThreadPoolExecutor(TRANSFER_THREADS) as pool:
        list(pool.map(transfer, names))


# --- the client ------------------------------------------------------------------------------------


@cache
def _sdk() -> SimpleNamespace:
    """boto3, imported at the first use of object storage: a run on local disk never pays for it
    (~1 s and ~13 MB in the driver and in the parsers' forkserver)."""
    import boto3
    import botocore.exceptions
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config

    return SimpleNamespace(
        boto3=boto3,
        errors=botocore.exceptions,
        # What botocore's "standard" retry mode retries: throttling, 5xx and dropped connections;
        # a 4xx (denied, missing, precondition failed) fails at once. Four attempts, then one
        # clear error.
        client_config=Config(
            retries={"mode": "standard", "total_max_attempts": 4},
            connect_timeout=5,
            read_timeout=60,
            tcp_keepalive=True,
        ),
        transfer=TransferConfig(multipart_threshold=64 << 20, multipart_chunksize=64 << 20, max_concurrency=4),
        failures=(botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError),
    )


def _failures() -> tuple[type[Exception], ...]:
    """What a failed request raises (evaluated only once a request has raised: boto3 is loaded)."""
    return tuple(_sdk().failures)


@cache
def client() -> Any:
    """The process's S3 client, configured as every AWS tool is: the environment
    (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL),
    then AWS_PROFILE's profile, then an instance role. Thread-safe; made once per process."""
    try:
        sdk = _sdk()
        return sdk.boto3.session.Session().client("s3", config=sdk.client_config)
    except _sdk().errors.BotoCoreError as err:  # a missing profile, a bad region name
        raise StoreError(f"the AWS configuration cannot be used: {type(err).__name__}") from None


def endpoint() -> str:
    """The endpoint requests go to (AWS_ENDPOINT_URL, a profile's endpoint_url, else AWS's)."""
    return str(client().meta.endpoint_url)


def object_store_options() -> dict[str, str]:
    """This process's S3 configuration (as `client` resolves it) in the form Rust's object_store
    takes, for deltalake's `storage_options`: the credentials, region and endpoint, and conditional
    put by ETag (`If-None-Match` / `If-Match`), which makes concurrent Delta commits safe with no
    DynamoDB. The values are secrets: never log or show them."""
    session = _sdk().boto3.session.Session()
    found = session.get_credentials()
    if found is None:
        raise StoreError(_NO_CREDENTIALS)
    credentials = found.get_frozen_credentials()
    options = {
        "aws_access_key_id": credentials.access_key,
        "aws_secret_access_key": credentials.secret_key,
        "aws_region": session.region_name or str(client().meta.region_name),
        "aws_conditional_put": "etag",
    }
    if credentials.token:
        options["aws_session_token"] = credentials.token
    url = endpoint()
    if not url.endswith(".amazonaws.com"):  # AWS itself is object_store's default, with its own URL style
        options["aws_endpoint"] = url
        options["aws_allow_http"] = str(url.startswith("http://")).lower()
    return options


def error_code(err: Exception) -> str | None:
    """The S3 error code of a failed request (None when it is not a service error)."""
    if isinstance(err, _sdk().errors.ClientError):
        return str(err.response.get("Error", {}).get("Code", ""))
    return None


def s3_error(where: str, err: Exception) -> StoreError:
    """One line for a failed request: what failed and why, never a credential.

    botocore's own messages are not repeated: some echo what was signed."""
    code = error_code(err)
    if code == "NoSuchBucket":
        return StoreError(f"{where}: {_NO_BUCKET}")
    if code in _DENIED:
        return StoreError(f"{where}: access denied ({code}): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                          "or AWS_PROFILE, and the bucket's policy")  # fmt: skip
    if code is not None:
        return StoreWriteError(f"{where}: the S3 server answered {code}")
    errors = _sdk().errors
    if isinstance(err, errors.NoCredentialsError | errors.PartialCredentialsError):
        return StoreError(f"{where}: {_NO_CREDENTIALS}")
    if isinstance(err, errors.EndpointConnectionError | errors.ConnectionError):
        return StoreError(f"{where}: the S3 endpoint {endpoint()} does not answer ({type(err).__name__})")
    return StoreError(f"{where}: {type(err).__name__}")


@contextlib.contextmanager
def translated(where: str) -> Iterator[None]:
    """Run a request, its failure raised as `s3_error`'s one line."""
    try:
        yield
    except _failures() as err:
        raise s3_error(where, err) from None


class S3Storage:
    """`Storage` on an s3:// location: keys are relative names under its prefix.

    An object is visible whole or not at all, so a write needs no temporary name; what the
    local disk does with `rename`, this does with create-if-absent (``If-None-Match: *``) and
    compare-and-swap (``If-Match``), the conditional writes of S3 and its compatible servers.
    """

    def __init__(self, location: S3Location) -> None:
        self.location = location
        self.bucket = location.bucket

    def __repr__(self) -> str:
        return f"S3Storage({self.location.url!r})"

    def url(self, key: str = "") -> str:
        """`key` as a URL, for messages."""
        return self.location.child(key).url if key else self.location.url

    def _key(self, key: str) -> str:
        return self.location.key(key)

    @contextlib.contextmanager
    def open_write(self, key: str) -> Iterator[IO[bytes]]:
        """A new object at `key`, written when the block ends (spooled to a temporary file first)."""
        with tempfile.SpooledTemporaryFile(8 << 20) as spool:
            yield spool
            spool.seek(0)
            with translated(f"cannot write {self.url(key)}"):
                client().upload_fileobj(spool, self.bucket, self._key(key), Config=_sdk().transfer)

    def write_bytes(self, key: str, data: bytes) -> None:
        """An object at `key` holding `data` (replacing one there)."""
        with translated(f"cannot write {self.url(key)}"):
            client().put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def read_bytes(self, key: str) -> bytes:
        """The whole object at `key`; FileNotFoundError when there is none."""
        found = self.read_with_tag(key)
        if found is None:
            raise FileNotFoundError(self.url(key))
        return found[0]

    def read_with_tag(self, key: str) -> tuple[bytes, str] | None:
        """The object at `key` and its ETag, or None when there is none."""
        try:
            answer = client().get_object(Bucket=self.bucket, Key=self._key(key))
            return answer["Body"].read(), str(answer["ETag"])
        except _failures() as err:
            if error_code(err) in _MISSING:
                return None
            raise s3_error(f"cannot read {self.url(key)}", err) from None

    def size(self, key: str) -> int | None:
        """The size of the object at `key`, or None when there is none."""
        try:
            return int(client().head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"])
        except _failures() as err:
            if error_code(err) in _MISSING:
                return None
            raise s3_error(f"cannot read {self.url(key)}", err) from None

    def _pages(self, key: str, delimiter: bool) -> Iterator[dict[str, Any]]:
        prefix = self._key(key)
        prefix = f"{prefix}/" if prefix else ""
        options = {"Bucket": self.bucket, "Prefix": prefix, **({"Delimiter": "/"} if delimiter else {})}
        with translated(f"cannot list {self.url(key)}"):
            yield from client().get_paginator("list_objects_v2").paginate(**options)

    def list(self, prefix: str) -> list[str]:
        """Names directly under `prefix` (objects and 'folders'), sorted."""
        start = len(self._key(prefix)) + 1 if self._key(prefix) else 0
        names: set[str] = set()
        for page in self._pages(prefix, delimiter=True):
            names.update(entry["Prefix"][start:].rstrip("/") for entry in page.get("CommonPrefixes", []))
            names.update(entry["Key"][start:] for entry in page.get("Contents", []))
        return sorted(name for name in names if name)

    def tree(self, prefix: str) -> dict[str, int]:
        """Every object under `prefix`, by its name relative to `prefix`, with its size."""
        start = len(self._key(prefix)) + 1 if self._key(prefix) else 0
        return {
            e["Key"][start:]: int(e["Size"]) for page in self._pages(prefix, False) for e in page.get("Contents", [])
        }

    def tree_dated(self, prefix: str) -> dict[str, tuple[int, date]]:
        """`tree`, with each object's last-modified date (UTC)."""
        start = len(self._key(prefix)) + 1 if self._key(prefix) else 0
        return {e["Key"][start:]: (int(e["Size"]), e["LastModified"].astimezone(UTC).date())
                for page in self._pages(prefix, False) for e in page.get("Contents", [])}  # fmt: skip

    def delete(self, key: str) -> None:
        """Remove the object `key` and every object under it; what is gone is not an error."""
        keys = [self._key(key)] + [self._key(f"{key}/{name}" if key else name) for name in self.tree(key)]
        with translated(f"cannot delete {self.url(key)}"):
            for start in range(0, len(keys), 1000):
                batch = [{"Key": k} for k in keys[start : start + 1000]]
                client().delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    def create_if_absent(self, key: str, data: bytes) -> bool:
        """Write `data` at `key` unless an object is there (then False): never overwrites."""
        return self.put_new(key, data) is not None

    def put_new(self, key: str, data: bytes) -> str | None:
        """`create_if_absent`, returning the new object's ETag (None when one was there)."""
        return self._conditional_put(key, data, IfNoneMatch="*")

    def replace_if_tag(self, key: str, data: bytes, tag: str) -> str | None:
        """Replace the object at `key` only while its ETag is `tag` (compare-and-swap); the new
        ETag, or None when another write came first."""
        return self._conditional_put(key, data, IfMatch=tag)

    def _conditional_put(self, key: str, data: bytes, **condition: str) -> str | None:
        try:
            answer = client().put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **condition)
        except _failures() as err:
            if error_code(err) in _PRECONDITION or (error_code(err) in _MISSING and "IfMatch" in condition):
                return None
            raise s3_error(f"cannot write {self.url(key)}", err) from None
        return str(answer["ETag"])

    def upload(self, path: Path, key: str) -> None:
        """The local file `path` as the object `key`, streamed in parts."""
        with translated(f"cannot write {self.url(key)}"):
            client().upload_file(str(path), self.bucket, self._key(key), Config=_sdk().transfer)

    def download(self, key: str, path: Path) -> None:
        """The object `key` into the local file `path`, streamed in parts."""
        with translated(f"cannot read {self.url(key)}"):
            client().download_file(self.bucket, self._key(key), str(path), Config=_sdk().transfer)

    def check_bucket(self) -> None:
        """StoreError, in one line, unless the bucket exists and answers (a missing object and a
        missing bucket look alike to a HEAD request: this tells them apart)."""
        try:
            client().head_bucket(Bucket=self.bucket)
        except _failures() as err:
            if error_code(err) in {"404", "NoSuchBucket"}:
                raise StoreError(f"{self.location.url}: {_NO_BUCKET}") from None
            raise s3_error(self.location.url, err) from None

    def check_usable(self) -> None:
        """StoreError, in one line, unless the bucket answers and takes a write under the prefix
        (bad credentials, a missing bucket, an endpoint that does not answer)."""
        self.check_bucket()
        probe = f".probe-{os.getpid()}-{os.urandom(4).hex()}"
        self.write_bytes(probe, b"probe")
        with translated(self.url(probe)):
            client().delete_object(Bucket=self.bucket, Key=self._key(probe))
