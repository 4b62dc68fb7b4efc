"""Every error the pipeline raises on purpose, under one root whose classes carry their exit code."""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    import pandas as pd

# Exit codes of the CLI (the README's table says the same).
EXIT_OK = 0  # published, or up to date
EXIT_REFUSED = 1  # a data guard refused the run (rejects, removals, validation): nothing published
EXIT_UNUSABLE = 2  # inputs or store unusable (missing folder, full or read-only disk, lock, damage)
EXIT_NO_PREFECT = 3  # no Prefect API: the temporary server did not start, or PREFECT_API_URL is down
EXIT_INTERNAL = 4  # an unexpected error: a bug, reported with its traceback
EXIT_INTERRUPTED = 130  # Ctrl-C

# Errors that a retry cannot cure: the task fails at once with a clear message.
PERMANENT_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.ENAMETOOLONG}
)


class PipelineError(Exception):
    """An expected failure: the CLI prints `message` on one line and exits with `exit_code`."""

    exit_code: ClassVar[int] = EXIT_UNUSABLE

    @property
    def message(self) -> str:
        """What the operator reads after ``error:``."""
        return str(self)


# --- unusable inputs or store: exit 2 -------------------------------------------------------------


class InputError(PipelineError):
    """The run's inputs cannot be used at all (missing folder, no listings, an unreadable file)."""


class StoreError(PipelineError):
    """The store cannot be read or written as asked."""


class StoreLockedError(StoreError):
    """Another run holds the writer lock."""


class StoreWriteError(StoreError):
    """Writing failed (full or read-only disk, permissions); nothing partial was left behind."""

    def __init__(self, message: str, errno_code: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno_code

    @property
    def permanent(self) -> bool:
        """True when retrying cannot help (no space, read-only, no permission)."""
        return self.errno in PERMANENT_ERRNOS


class VersionDamagedError(StoreError):
    """A version's files cannot be read as published (damaged, tampered or missing)."""


class StagedEntryInvalidError(StoreError):
    """A staged capture failed verification; it is parsed again."""


class UnreadableInputError(StoreError):
    """A staged or published Parquet file holds values DuckDB cannot read (damaged or tampered)."""


class OutOfMemoryError(PipelineError):
    """DuckDB needed more memory than its limit for the step: nothing was published."""


class ExportError(PipelineError):
    """The export cannot be made as asked (deltalake missing, a target that is not this dataset's
    export, a write that failed); what was committed before stays a consistent prefix."""


# --- refused by a data guard: exit 1 ----------------------------------------------------------------


class RefusedError(PipelineError):
    """The run's data failed a guard; nothing was published."""

    exit_code: ClassVar[int] = EXIT_REFUSED


class RejectRateExceededError(RefusedError):
    """More records were rejected than the run allows; nothing was published."""


class RemovalRateExceededError(RefusedError):
    """More of the current papers would disappear than the run allows; nothing was published."""


class NothingToPublishError(RefusedError):
    """A first version would hold no paper at all (empty or unusable inputs); nothing was published."""


class DatasetInvalidError(PipelineError):
    """The dataset does not conform; `report` names every failing table, column, check and row."""

    exit_code: ClassVar[int] = EXIT_REFUSED

    def __init__(self, report: pd.DataFrame) -> None:
        # Imported here: pandera and pandas would otherwise load with every module that names an
        # error (the parsers' server ties itself to its run before it loads anything heavy).
        from schemas.validate import format_report

        self.report = report
        super().__init__(format_report(report))

    @property
    def message(self) -> str:
        """The report, after a line that says nothing went out."""
        return f"the dataset failed validation; nothing was published.\n{self}"


# --- no Prefect API: exit 3 -------------------------------------------------------------------------


class PrefectUnavailableError(PipelineError):
    """No Prefect API could be reached or started; the message says what to do."""

    exit_code: ClassVar[int] = EXIT_NO_PREFECT
