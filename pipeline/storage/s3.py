"""Object storage (S3 and compatible servers) as storage, through obstore: one client, errors in one line."""

from __future__ import annotations

import builtins
import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache, partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

from pipeline.errors import StoreError, StoreWriteError
from pipeline.storage.interface import Lease, Listing, ObjectInfo, check_key
from pipeline.storage.lease import object_lock

SCHEME = "s3://"
# S3's bucket names (the strict rules of today's AWS, which S3-compatible servers accept).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# One segment of a prefix or key: printable, and never "." or "..", which some servers and
# every local copy would read as a step up.
_SEGMENT = re.compile(r"[^\x00-\x1f\x7f/\\]+")
_NO_BUCKET = "the bucket does not exist (create it, or fix the URL)"
_NO_CREDENTIALS = "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
_DENIED = frozenset({"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
                     "InvalidToken", "TokenRefreshRequired", "Forbidden"})  # fmt: skip
_CODE = re.compile(r"<Code>([A-Za-z0-9]+)</Code>")
# The environment that configures the client: a change of any of them makes a new one.
_ENVIRONMENT = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
                "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE",
                "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE")  # fmt: skip
# Four attempts of a request that a retry can cure (5xx, throttling, a dropped connection), with
# backoff; a 4xx (denied, missing, precondition failed) fails at once.
MAX_RETRIES = 3


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


# --- the client ------------------------------------------------------------------------------------


@cache
def _sdk() -> SimpleNamespace:
    """obstore, imported at the first use of object storage: a run on local disk never pays for it."""
    import obstore
    import obstore.exceptions
    import obstore.store

    return SimpleNamespace(obs=obstore, errors=obstore.exceptions, S3Store=obstore.store.S3Store)


def _environment() -> tuple[tuple[str, str | None], ...]:
    return tuple((name, os.environ.get(name)) for name in _ENVIRONMENT)


def endpoint() -> str | None:
    """The endpoint requests go to (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL), None for AWS's own."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def _profile_provider() -> Any:
    """A credential provider for AWS_PROFILE (the shared config files, SSO, roles), through boto3,
    which reads them as every AWS tool does; StoreError when boto3 is not installed."""
    try:
        import boto3
        from obstore.auth.boto3 import Boto3CredentialProvider
    except ImportError:
        raise StoreError(
            "AWS_PROFILE needs boto3 to read the profile: pip install 'paper-listings[aws]', or set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        ) from None
    try:
        return Boto3CredentialProvider(boto3.session.Session())
    except Exception as err:  # a missing profile, a bad file: botocore's own classes
        raise StoreError(f"the AWS profile cannot be used: {type(err).__name__}") from None


@cache
def _client(location: S3Location, environment: tuple[tuple[str, str | None], ...]) -> Any:
    """The obstore client of `location` for this environment (made once per process and settings)."""
    sdk = _sdk()
    settings = dict(environment)
    config: dict[str, Any] = {}
    url = endpoint()
    if url is not None:
        config["endpoint"] = url
    region = settings.get("AWS_REGION") or settings.get("AWS_DEFAULT_REGION")
    if region:
        config["region"] = region
    options = {"connect_timeout": "5s", "timeout": "300s", "allow_http": bool(url and url.startswith("http://"))}
    retry = {
        "max_retries": MAX_RETRIES,
        "retry_timeout": timedelta(seconds=120),
        "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=5), "base": 2},
    }
    extra: dict[str, Any] = {}
    if settings.get("AWS_PROFILE") and not settings.get("AWS_ACCESS_KEY_ID"):
        extra["credential_provider"] = _profile_provider()
    try:
        return sdk.S3Store(location.bucket, prefix=location.prefix or None, config=config, client_options=options,
                           retry_config=retry, **extra)  # fmt: skip
    except Exception as err:  # a malformed setting
        raise StoreError(f"the AWS configuration cannot be used: {type(err).__name__}") from None


def client(location: S3Location) -> Any:
    """The client of `location`, configured as every AWS tool is: AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL (or _S3), else
    AWS_PROFILE's profile (through boto3), else the instance's or container's role."""
    return _client(location, _environment())


def s3_error(where: str, err: Exception) -> StoreError:
    """One line for a failed request: what failed and why, never a credential (the client's own
    messages are not repeated: they carry the request and the server's answer)."""
    errors = _sdk().errors
    text = str(err)
    found = _CODE.search(text)
    code = found[1] if found else None
    if code == "NoSuchBucket":
        return StoreError(f"{where}: {_NO_BUCKET}")
    if code in _DENIED or isinstance(err, errors.PermissionDeniedError | errors.UnauthenticatedError):
        return StoreError(f"{where}: access denied ({code or 'refused'}): check AWS_ACCESS_KEY_ID and "
                          "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, and the bucket's policy")  # fmt: skip
    if code is not None:
        return StoreWriteError(f"{where}: the S3 server answered {code}")
    if "credential" in text.lower() and ("metadata" in text.lower() or "not found" in text.lower()):
        return StoreError(f"{where}: {_NO_CREDENTIALS}")
    if "error sending request" in text or "connect" in text.lower():
        shown = endpoint() or "of AWS"
        return StoreError(f"{where}: the S3 endpoint {shown} does not answer")
    status = re.search(r"status code: (\d{3})", text)
    if status:
        return StoreWriteError(f"{where}: the S3 server answered HTTP {status[1]}")
    return StoreError(f"{where}: {type(err).__name__}")


def _missing(err: Exception) -> bool:
    """True when a request failed because the object is not there (not the bucket)."""
    return isinstance(err, FileNotFoundError) and "NoSuchBucket" not in str(err)


T = TypeVar("T")


def _request(where: str, call: Callable[[], T]) -> T:
    """`call`'s answer; a failed request raised as `s3_error`'s one line, an object that is not
    there as FileNotFoundError, and the refusal of a conditional write as it is (its caller reads it)."""
    try:
        return call()
    except StoreError:
        raise
    except Exception as err:
        errors = _sdk().errors
        if isinstance(err, errors.AlreadyExistsError | errors.PreconditionError):
            raise
        if _missing(err):
            raise FileNotFoundError(where) from None
        if isinstance(err, errors.BaseError | OSError):
            raise s3_error(where, err) from None
        raise


class S3Storage:
    """`Storage` on an s3:// location: keys are relative names under its prefix.

    An object is visible whole or not at all, so a write needs no temporary name; create-if-absent
    is ``If-None-Match: *`` and the writer lock a leased object renewed by compare-and-swap
    (``If-Match``): the conditional writes of S3 and its compatible servers.
    """

    def __init__(self, location: S3Location) -> None:
        self.location = location
        self.bucket = location.bucket

    def __repr__(self) -> str:
        return f"S3Storage({self.location.url!r})"

    @property
    def url(self) -> str:
        return self.location.url

    def where(self, key: str) -> str:
        return self.location.child(key).url if key else self.location.url

    def uri(self, key: str = "") -> str:
        return self.where(key)

    def child(self, prefix: str) -> S3Storage:
        return S3Storage(self.location.child(prefix))

    def within(self, other: object) -> bool:
        if not isinstance(other, S3Storage) or other.bucket != self.bucket:
            return False
        top, key = other.location.prefix, self.location.prefix
        return not top or key == top or key.startswith(top + "/")

    def parent(self) -> S3Storage:
        return S3Storage(S3Location(self.bucket, self.location.prefix.rpartition("/")[0]))

    @property
    def name(self) -> str:
        return self.location.prefix.rpartition("/")[2]

    def _store(self) -> Any:
        return client(self.location)

    def _key(self, key: str) -> str:
        check_key(key)
        return check_relative(key)

    # --- reading -----------------------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        found = self.get_with_tag(key)
        return None if found is None else found[0]

    def get_with_tag(self, key: str) -> tuple[bytes, str] | None:
        """The object at `key` and its ETag, or None when there is none."""

        def get() -> tuple[bytes, str]:
            answer = _sdk().obs.get(self._store(), self._key(key))
            return bytes(answer.bytes()), str(answer.meta["e_tag"])

        try:
            return _request(f"cannot read {self.where(key)}", get)
        except FileNotFoundError:
            return None

    def get_range(self, key: str, start: int, length: int) -> bytes:
        return _request(f"cannot read {self.where(key)}", lambda: bytes(
            _sdk().obs.get_range(self._store(), self._key(key), start=start, length=length)))  # fmt: skip

    def head(self, key: str) -> ObjectInfo | None:
        try:
            return _request(f"cannot read {self.where(key)}",
                            lambda: _info(key, _sdk().obs.head(self._store(), self._key(key))))  # fmt: skip
        except FileNotFoundError:
            return None

    @property
    def reads_in_place(self) -> bool:
        return False

    def local_file(self, key: str, into: Path) -> Path:
        into.parent.mkdir(parents=True, exist_ok=True)
        partial = into.with_name(f"{into.name}.part-{os.getpid()}")

        def download() -> None:
            with partial.open("wb") as sink:
                answer = _sdk().obs.get(self._store(), self._key(key))
                for block in answer.stream(min_chunk_size=8 << 20):
                    sink.write(block)

        try:
            _request(f"cannot read {self.where(key)}", download)
            partial.replace(into)
        finally:
            partial.unlink(missing_ok=True)
        return into

    def list(self, prefix: str = "") -> Listing:
        objects, skipped = [], []

        def batches() -> builtins.list[Any]:
            return builtins.list(_sdk().obs.list(self._store(), prefix=f"{self._key(prefix)}/" if prefix else None))

        for batch in _request(f"cannot list {self.where(prefix)}", batches):
            for meta in batch:
                key = str(meta["path"])
                try:
                    check_relative(key)
                except StoreError:
                    skipped.append((key, "its key is not a plain relative name: not read"))
                    continue
                objects.append(_info(key, meta))
        objects.sort(key=lambda o: o.key)
        return Listing(objects, skipped)

    # --- writing -----------------------------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        _request(f"cannot write {self.where(key)}", lambda: _sdk().obs.put(self._store(), self._key(key), data))

    def put_if_absent(self, key: str, data: bytes) -> bool:
        return self.put_new(key, data) is not None

    def put_new(self, key: str, data: bytes) -> str | None:
        """`put_if_absent`, returning the new object's ETag (None when one was there)."""
        try:
            answer = _request(f"cannot write {self.where(key)}",
                              lambda: _sdk().obs.put(self._store(), self._key(key), data, mode="create"))  # fmt: skip
        except (_sdk().errors.AlreadyExistsError, _sdk().errors.PreconditionError):
            return None
        return str(answer["e_tag"])

    def replace_if_tag(self, key: str, data: bytes, tag: str) -> str | None:
        """Replace the object at `key` only while its ETag is `tag` (compare-and-swap); the new
        ETag, or None when another write came first (or the object is gone)."""
        try:
            answer = _request(
                f"cannot write {self.where(key)}",
                lambda: _sdk().obs.put(self._store(), self._key(key), data, mode={"e_tag": tag}),
            )
        except (_sdk().errors.PreconditionError, _sdk().errors.AlreadyExistsError, FileNotFoundError):
            return None
        return str(answer["e_tag"])

    def put_file(self, key: str, path: Path) -> None:
        _request(f"cannot write {self.where(key)}", lambda: _sdk().obs.put(self._store(), self._key(key), path))

    def delete(self, keys: Iterable[str]) -> None:
        names = [self._key(k) for k in keys]
        for start in range(0, len(names), 1000):
            batch = names[start : start + 1000]
            _request(f"cannot delete under {self.url}", partial(_sdk().obs.delete, self._store(), batch))

    def lock(
        self, key: str, timeout_s: float, on_wait: Callable[[str], None] | None = None
    ) -> contextlib.AbstractContextManager[Lease]:
        return object_lock(self, key, timeout_s, on_wait)

    def workspace(self) -> contextlib.AbstractContextManager[Path]:
        return _temporary_workspace()

    def alias(self, key: str, target: str) -> None:
        return None  # no links on object storage: readers use the pointer object

    def check_usable(self) -> None:
        # a missing bucket says so here
        _request(self.location.url, lambda: next(iter(_sdk().obs.list(self._store(), chunk_size=1)), None))
        probe = f".probe-{os.getpid()}-{os.urandom(4).hex()}"
        self.put(probe, b"probe")
        self.delete([probe])

    def cleanup(self) -> builtins.list[str]:
        return []  # a write is whole or absent: nothing half-written to remove

    def options(self) -> dict[str, Any] | None:
        """This process's S3 configuration in the form object_store takes (deltalake's
        `storage_options`): credentials, region, endpoint, and conditional put by ETag, which makes
        concurrent Delta commits safe with no DynamoDB. The values are secrets: never show them."""
        key, secret, token = (os.environ.get(n) for n in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                                           "AWS_SESSION_TOKEN"))  # fmt: skip
        if not (key and secret) and os.environ.get("AWS_PROFILE"):
            provider = _profile_provider()
            found = provider()
            key, secret, token = found.get("access_key_id"), found.get("secret_access_key"), found.get("token")
        if not (key and secret):
            raise StoreError(_NO_CREDENTIALS)
        options = {
            "aws_access_key_id": key,
            "aws_secret_access_key": secret,
            "aws_conditional_put": "etag",
            "aws_region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        }
        if token:
            options["aws_session_token"] = token
        url = endpoint()
        if url is not None:
            options["aws_endpoint"] = url
            options["aws_allow_http"] = str(url.startswith("http://")).lower()
        return options


def _info(key: str, meta: Any) -> ObjectInfo:
    modified = meta["last_modified"]
    if isinstance(modified, datetime):
        modified = modified.astimezone(UTC)
    return ObjectInfo(key, int(meta["size"]), modified, str(meta.get("e_tag") or ""))


@contextlib.contextmanager
def _temporary_workspace() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="paper-listings-work-") as folder:
        yield Path(folder)
