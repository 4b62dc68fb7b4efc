"""Defaults and limits, each declared once: folders, guards, timeouts, part sizes and DuckDB's memory."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pipeline.errors import PrefectUnavailableError, StoreError

# The package's version (`pipeline.__version__`, `--version`, the manifests and file footers).
VERSION = "0.1.0"

DEFAULT_RAW = Path("data/raw")
DEFAULT_OUT = Path("data/processed")
# Set by an operator (or a scheduler's environment) instead of --raw / --out on every command.
RAW_ENV = "PIPELINE_RAW_DIR"
OUT_ENV = "PIPELINE_OUT_DIR"

DEFAULT_MAX_REJECT_RATE = 0.05
DEFAULT_MAX_REMOVED_RATE = 0.10
# How long a run (or an export) waits for another one's lock.
DEFAULT_LOCK_TIMEOUT_S = 600.0
# Seen: 167 s for a first start of Prefect's server with 6 busy loops and a fsync-heavy writer on 2 cores.
DEFAULT_STARTUP_ALLOWANCE_S = 600.0
# Prefect's own setting of the temporary server's allowance, which the pipeline honours too.
ALLOWANCE_SETTING = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"

# A part of a listing is parsed by one process: big enough that a part's fixed costs (four
# Parquet files) vanish, small enough that a worker needs ~100 MB beyond its imports.
DEFAULT_CHUNK_BYTES = 8 << 20
# Below this much text to parse, worker processes cost more (~1 s to start) than they save.
MIN_PARALLEL_BYTES = 8 << 20
# A task run costs ~25 ms of Prefect bookkeeping: ~8 MB of listings per parse task outweighs it.
DEFAULT_BATCH_BYTES = 8_000_000

# Every Parquet file the pipeline writes: zstd, and a checksum on every page (checked on every read).
PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "write_page_checksum": True}

# A table's files are cut past this size (between keys): a version of 1M papers is ~16 files, and
# rewriting one of them (a compaction) stays cheap.
TARGET_FILE_BYTES = 64 << 20
# Compaction (`pipeline.published.compaction`): a generation of a table smaller than this is small;
# once a table holds more than MAX_SMALL_FILES files of small generations, each run of consecutive
# small generations is merged into one file (daily refreshes: every ~16 days, ~1 MB each).
SMALL_GENERATION_BYTES = 8 << 20
MAX_SMALL_FILES = 16
# Once more than this share of a table's stored rows are superseded by newer rows, it is rewritten.
MAX_SUPERSEDED_SHARE = 0.25
# Files that no kept version lists are deleted once they have been so this long: a reader of a
# pruned version finishes first (Delta Lake's VACUUM keeps 7 days; a refresh here is daily).
GC_GRACE_SETTING = "PIPELINE_GC_GRACE_S"
DEFAULT_GC_GRACE_S = 3600.0
# Where readers keep verified copies of files of a dataset on object storage, by sha256.
CACHE_SETTING = "PIPELINE_CACHE_DIR"

# Keys of what the pipeline's files say about themselves (Parquet footers, the paper index, Delta
# commits) start so.
METADATA_PREFIX = "paper_listings."

# DuckDB's share of the run's memory: beyond it, joins and sorts spill to a scratch folder. Not
# all of the assembly spills: the paper index's join needs about 65 MB per 200k papers (measured:
# it fails at 60 MB and passes at 80 MB on 200k), and 384 MB ran out once in six first runs of 1M.
# An operator gives it more with PIPELINE_ASSEMBLY_MEMORY.
ASSEMBLY_MEMORY = "512MB"
ASSEMBLY_MEMORY_SETTING = "PIPELINE_ASSEMBLY_MEMORY"
_MEMORY_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(?:KB|MB|GB|TB|KiB|MiB|GiB|TiB)", re.IGNORECASE)
# A reader (publishing streams two tables at once, the key checks and the report run beside it)
# needs only the join of papers with `seen`, or aggregates.
READER_MEMORY = "192MB"
# Finding papers listed again in a later part of one capture: one narrow column.
PART_CHECK_MEMORY = "128MB"


def gc_grace_s() -> float:
    """Seconds a file no kept version lists is kept before it is deleted (PIPELINE_GC_GRACE_S)."""
    given = os.environ.get(GC_GRACE_SETTING, "").strip()
    if not given:
        return DEFAULT_GC_GRACE_S
    try:
        value = float(given)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 30 * 86400:
        raise StoreError(f"{GC_GRACE_SETTING}={given[:20]!r} is not a number of seconds from 0 to 2592000")
    return value


def assembly_memory() -> str:
    """DuckDB's memory limit for assembly: PIPELINE_ASSEMBLY_MEMORY (a size such as 2GB), else
    ASSEMBLY_MEMORY."""
    given = os.environ.get(ASSEMBLY_MEMORY_SETTING, "").strip()
    if not given:
        return ASSEMBLY_MEMORY
    size = _MEMORY_SIZE.fullmatch(given)
    if size is None or float(size.group(1)) <= 0:
        raise StoreError(f"{ASSEMBLY_MEMORY_SETTING}={given[:20]!r} is not a size such as 512MB or 2GB")
    return given


def cache_dir() -> Path:
    """Where readers keep verified copies of remote files (PIPELINE_CACHE_DIR, else ~/.cache/paper-listings)."""
    configured = os.environ.get(CACHE_SETTING)
    return Path(configured) if configured else Path.home() / ".cache" / "paper-listings"


def startup_allowance() -> float:
    """Seconds the temporary server may take to answer: the user's setting, else a generous default.

    Call it before Prefect is imported: Prefect reads the same setting, as a whole number, and a
    bad value would fail its import with a long validation traceback.
    """
    given = os.environ.get(ALLOWANCE_SETTING, "").strip()
    if not given:
        return DEFAULT_STARTUP_ALLOWANCE_S
    if not given.isdigit() or int(given) < 1:
        raise PrefectUnavailableError(f"{ALLOWANCE_SETTING}={given!r} is not a whole number of seconds (1 or more)")
    return float(given)
