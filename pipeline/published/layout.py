"""The store's layout: where versions, their files, the staged layer and the pointers live, as keys of its storage.

```
versions/<id>/manifest.json   the commit: written last, created only if absent
versions/<id>/contract/…      the version's contract and report.html
data/<table>/<gen>-<part>-<sha256>.parquet    immutable table files, shared by every version that lists them
index/<name>/<gen>-<part>-<sha256>.parquet    what a refresh reads instead of the tables (not data)
staged/<key>/                 one parsed capture, reused by later refreshes
rejected/<run>/               the rejects of a refused run
LATEST_ID, latest             pointers to the newest version (advisory: the newest manifest decides)
gc/pending.json               files no kept version lists, and since when (collected after a grace)
.lock                         the writer lock
```
"""

from __future__ import annotations

import re

from pipeline.errors import StoreError
from schemas.tables import MODELS

LAYOUT = 2  # the layout this code writes; 1: each version a folder holding one file per table
VERSIONS = "versions"
DATA = "data"
INDEX = "index"
STAGED = "staged"
REJECTED = "rejected"
LATEST = "latest"
# Not "LATEST": on a case-insensitive file system (macOS) that is the `latest` link itself.
POINTER = "LATEST_ID"
LOCK = ".lock"
GC_LEDGER = "gc/pending.json"
MANIFEST = "manifest.json"
CONTRACT = "contract"
CONTRACT_FILES = (f"{CONTRACT}/schema.json", f"{CONTRACT}/data_dictionary.md")
# The version at a glance, written by the reporting layer and handed to the transaction as a file.
REPORT_FILE = "report.html"
OWN_FILES = frozenset({*CONTRACT_FILES, REPORT_FILE})
# Layout 1: a version's own folder held its tables, one file each.
LAYOUT1_FILES = frozenset({f"{name}.parquet" for name in MODELS} | OWN_FILES)
VERSION_ID = re.compile(r"[0-9]{6}")
_FILE_NAME = re.compile(r"(?P<generation>[0-9]{6})-(?P<part>[0-9]{4})-(?P<sha256>[0-9a-f]{64})\.parquet")
_TABLE_NAME = re.compile(r"[a-z_]{1,40}")


def check_version_id(version_id: str) -> str:
    """`version_id` when it has the exact shape of one (six digits); else a StoreError."""
    if not VERSION_ID.fullmatch(version_id):
        raise StoreError(f"{version_id[:40]!r} is not a version id (six digits, e.g. 000001)")
    return version_id


def version_key(version_id: str, relative: str = "") -> str:
    """The key of a version's folder, or of a file in it."""
    folder = f"{VERSIONS}/{check_version_id(version_id)}"
    return f"{folder}/{relative}" if relative else folder


def manifest_key(version_id: str) -> str:
    """The key of a version's manifest: the object whose existence is the version."""
    return version_key(version_id, MANIFEST)


def file_key(area: str, table: str, generation: int, part: int, sha256: str) -> str:
    """The key of a table file: its generation and part first, so that names sort as generations do."""
    return f"{area}/{table}/{generation:06d}-{part:04d}-{sha256}.parquet"


def check_file_key(key: str, area: str, table: str) -> int:
    """The generation a table file's key names; StoreError unless the key is exactly one of
    `area`/`table`'s (a manifest never makes a reader open anything else)."""
    head, _, name = key.rpartition("/")
    found = _FILE_NAME.fullmatch(name)
    if head != f"{area}/{table}" or found is None or not _TABLE_NAME.fullmatch(table):
        raise StoreError(f"{key[:120]!r} is not a file of {area}/{table}")
    return int(found["generation"])


def version_of_key(key: str) -> str | None:
    """The version id a key of ``versions/<id>/...`` is under (None for another key)."""
    parts = key.split("/")
    if len(parts) >= 2 and parts[0] == VERSIONS and VERSION_ID.fullmatch(parts[1]):
        return parts[1]
    return None
