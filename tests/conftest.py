"""Shared fixtures: recorded real inputs, the reference data and one Prefect test server."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from anyascii import anyascii
from hypothesis import settings

# Shared, noisy machines: a slow example is not a failure; a wrong one is.
settings.register_profile("shared-machine", deadline=None)
settings.load_profile("shared-machine")

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SAMPLE = ROOT / "data" / "raw" / "listing_2026-11-26.txt"
GOLD = DATA / "gold_2026-11-26.jsonl"


def gold_records() -> list[dict[str, Any]]:
    """The hand-checked parse of the sample (GOLD): one record per paper, in listing order."""
    return [json.loads(line) for line in GOLD.read_text(encoding="utf-8").splitlines()]


def same_person(name: str) -> str:
    """A listed name folded as a reader would match it (diacritics, case and spacing aside): the
    test's own rule, not the pipeline's, so that counts made with it check the pipeline's identity."""
    return " ".join(anyascii(name).casefold().split())


@dataclass(frozen=True)
class Gold:
    """What the sample holds, counted from its gold file: tests derive the sample's counts from it."""

    records: tuple[dict[str, Any], ...]

    @property
    def papers(self) -> int:
        """Papers (and records: every record of the sample is a paper)."""
        return len(self.records)

    @property
    def paper_authors(self) -> int:
        """Author rows: each paper's listed authors (those shown before "et al.")."""
        return sum(len(record["authors"]) for record in self.records)

    @property
    def authors(self) -> int:
        """Distinct people and organisations among the listed authors, spellings of one folded together."""
        return len({same_person(name) for record in self.records for name in record["authors"]})

    def papers_of(self, author: str) -> int:
        """Papers that list `author`, in any spelling of theirs."""
        wanted = same_person(author)
        return sum(any(same_person(name) == wanted for name in r["authors"]) for r in self.records)


@pytest.fixture(scope="session")
def gold() -> Gold:
    return Gold(tuple(gold_records()))


@pytest.fixture(scope="session")
def reference():
    from pipeline.parse.reference import load_reference

    return load_reference()


@pytest.fixture(scope="session")
def sample_text() -> str:
    return SAMPLE.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def sample_tables(sample_text, tmp_path_factory):
    """The sample's tables as a first version would publish them (assembled, not yet validated)."""
    from datetime import date

    from tests.assembly import assembled

    return assembled(tmp_path_factory.mktemp("sample"), [(SAMPLE.name, date(2026, 11, 26), sample_text)])


ONE_RECORD = "LGMar 1, 2025\nA Study of GraphsAnn Lee\nAbstract.\n"


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    """A raw folder holding one listing of one record."""
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "listing_2026-01-01.txt").write_text(ONE_RECORD, encoding="utf-8")
    return folder


@pytest.fixture
def raw_dir(tmp_path: Path) -> Path:
    """A raw folder holding a copy of the committed sample listing."""
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(SAMPLE, raw / SAMPLE.name)
    return raw


class LineWatcher:
    """Reads a subprocess's stream on a thread, keeps every line and signals the first line that
    holds a given text: tests wait on that event, never on a sleep."""

    def __init__(self, stream, wanted: str) -> None:
        import threading

        self.lines: list[str] = []
        self.seen = threading.Event()
        self.wanted = wanted
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line)
            if self.wanted in line:
                self.seen.set()

    def join(self) -> str:
        self._thread.join()
        return "".join(self.lines)


def own_copy(folder: Path, target: Path) -> Path:
    """A copy of the dataset folder `folder` at `target`, for one test to change (links kept as links)."""
    shutil.copytree(folder, target, symlinks=True)
    return target


def run_flow(raw: Path, out: Path, flow=None, **overrides):
    """Call the flow (or a variant of it) with the CLI's defaults, overridden by keyword."""
    from pipeline.cli import flow_parameters
    from pipeline.orchestrate.flow import refresh

    return (flow or refresh)(**{**flow_parameters(raw, out, lock_timeout_s=30.0), **overrides})


# The listings of `flow_versions`: P2 is captured again with a score, P4 again as it was, P3 is new.
P1 = "LGMar 1, 2025\nA Study of GraphsSébastien Bubeck, Ann Lee\nAbstract one.\n"
P2 = "CLMar 2, 2025\nLanguage Models RevisitedBo Chen, Cy Wu\nAbstract two.\n"
P2_NEW = "91.0CLMar 2, 2025Code\nLanguage Models RevisitedBo Chen, Cy Wu\nAbstract two.\n"
P3 = "CVMar 3, 2025\nVision at ScaleŁukasz Kaiser · openai\nAbstract three.\n"
P4 = "ROMar 4, 2025\nRobots Without ChangeDee Park\nAbstract four.\n"
STRAY = "a stray line\n"


@pytest.fixture(scope="session")
def flow_versions(prefect_server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset folder of two versions published by the flow (read only: copy it to change it):
    000001 (P1, P2, P4 and a reject), 000002 (P2 re-captured with a score, P4 re-captured as it
    was, P3 added)."""
    from pipeline.published import Store

    root = tmp_path_factory.mktemp("flow-versions")
    raw, out = root / "raw", root / "out"
    raw.mkdir()
    (raw / "listing_2026-01-01.txt").write_text(P1 + P2 + P4 + STRAY, encoding="utf-8")
    run_flow(raw, out, max_reject_rate=1.0)
    (raw / "listing_2026-02-01.txt").write_text(P2_NEW + P3 + P4, encoding="utf-8")
    run_flow(raw, out, max_reject_rate=1.0)
    assert Store.open(out).version_ids() == ["000001", "000002"]
    return out
