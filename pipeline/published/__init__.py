"""The versioned store: versions sharing immutable files, one atomic commit of every table, verified reads.

`Store.open(folder or URL)` is the store; `VersionTransaction` writes a version; `write_version`
composes its tables from an assembly and its parent; `check_location` is `validate`;
`export_version` a hand-off; `prune` and `collect_garbage` retention.
"""

from pipeline.published.handoff import export_version
from pipeline.published.layout import LATEST, LAYOUT, POINTER, REPORT_FILE, check_version_id
from pipeline.published.manifest import DataFile, Manifest
from pipeline.published.publish import write_version
from pipeline.published.rejected import write_rejected
from pipeline.published.retention import collect_garbage, prune
from pipeline.published.store import PublishOutcome, Store
from pipeline.published.transaction import VersionTransaction
from pipeline.published.validate import check_location, check_version
from pipeline.published.verify import read_tables, table_arrow, table_sql, version_parts

__all__ = [
    "LATEST",
    "LAYOUT",
    "POINTER",
    "REPORT_FILE",
    "DataFile",
    "Manifest",
    "PublishOutcome",
    "Store",
    "VersionTransaction",
    "check_location",
    "check_version",
    "check_version_id",
    "collect_garbage",
    "export_version",
    "prune",
    "read_tables",
    "table_arrow",
    "table_sql",
    "version_parts",
    "write_rejected",
    "write_version",
]
