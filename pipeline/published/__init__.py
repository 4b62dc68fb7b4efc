"""The versioned store: immutable versions under OUT/versions, `latest`, verified reads, `validate`, retention."""

from pipeline.published.cleanup import clean_incomplete, prune_versions, remove_legacy_cache, scratch_folder
from pipeline.published.index import IndexSource, paper_index
from pipeline.published.layout import (
    CONTRACT_FILES,
    INDEX,
    LATEST,
    LEGACY_CACHE,
    MANIFEST,
    POINTER,
    REJECTED,
    REPORT_FILE,
    STAGED,
    VERSION_ID,
    VERSIONS,
    check_version_id,
    check_writable,
)
from pipeline.published.manifest import read_manifest
from pipeline.published.rejected import write_rejected
from pipeline.published.splice import KeptRows
from pipeline.published.transaction import PublishOutcome, VersionTransaction
from pipeline.published.validate import check_version_folder
from pipeline.published.verify import read_tables, verified_files
from pipeline.published.versions import fingerprint, latest_id, version_ids, version_path
from pipeline.published.writer import decoded
from pipeline.storage.local import file_digest
from pipeline.storage.lock import writer_lock

__all__ = [
    "CONTRACT_FILES",
    "INDEX",
    "LATEST",
    "LEGACY_CACHE",
    "MANIFEST",
    "POINTER",
    "REJECTED",
    "REPORT_FILE",
    "STAGED",
    "VERSIONS",
    "VERSION_ID",
    "IndexSource",
    "KeptRows",
    "PublishOutcome",
    "VersionTransaction",
    "check_version_folder",
    "check_version_id",
    "check_writable",
    "clean_incomplete",
    "decoded",
    "file_digest",
    "fingerprint",
    "latest_id",
    "paper_index",
    "prune_versions",
    "read_manifest",
    "read_tables",
    "remove_legacy_cache",
    "scratch_folder",
    "verified_files",
    "version_ids",
    "version_path",
    "write_rejected",
    "writer_lock",
]
