"""Input guards end to end: a bad record costs that record, never the run, never silent data loss;
too many rejects publish nothing."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from pipeline.errors import NothingToPublishError, RejectRateExceededError, RemovalRateExceededError
from pipeline.published import Store
from pipeline.reported.summary import report_markdown
from schemas.contract import schema_fingerprint
from tests.assembly import version_tables
from tests.conftest import SAMPLE, run_flow

pytestmark = pytest.mark.flow

P1 = "LGMar 1, 2025\nA Study of GraphsSébastien Bubeck, Ann Lee\nAbstract one.\n"


def test_a_score_out_of_range_costs_its_record_only(prefect_server, raw_dir: Path, tmp_path: Path, gold) -> None:
    (raw_dir / "listing_2026-11-25.txt").write_text(
        "150LGMar 12, 2026\nA Study of GraphsAnn Lee\nAbstract.\n", encoding="utf-8"
    )
    summary = run_flow(raw_dir, tmp_path / "out")
    assert summary.published
    assert summary.row_counts["papers"] == gold.papers
    assert summary.rejects_by_rule == {"score_out_of_range": 1}


def test_an_emptied_capture_does_not_silently_remove_its_papers(
    prefect_server, raw_dir: Path, tmp_path: Path, gold
) -> None:
    out = tmp_path / "out"
    assert run_flow(raw_dir, out).version_id == "000001"
    (raw_dir / SAMPLE.name).write_bytes(b"")  # the capture truncated to 0 bytes
    with pytest.raises(RemovalRateExceededError) as refused:
        run_flow(raw_dir, out)
    message = str(refused.value)
    n = gold.papers
    assert f"{n} of {n} papers (100.0%) would be removed, more than --max-removed-rate 10.0%" in message
    assert f"{SAMPLE.name} ({n} paper(s); now empty (0 bytes))" in message
    assert "--max-removed-rate 1" in message
    assert Store.open(out).version_ids() == ["000001"]

    # The operator means it: the removal goes through, with the empty capture called out.
    allowed = run_flow(raw_dir, out, max_removed_rate=1.0)
    assert (allowed.version_id, allowed.changes) == ("000002", {"removed": n})
    assert allowed.warnings == [f"{SAMPLE.name}: empty file (0 bytes): no records"]
    assert "**1 warning(s)**" in report_markdown(allowed)


def test_a_deleted_capture_is_named_as_the_cause(prefect_server, raw_dir: Path, tmp_path: Path, gold) -> None:
    out = tmp_path / "out"
    shutil.copy(SAMPLE, raw_dir / "listing_2026-11-27.txt")
    run_flow(raw_dir, out)
    (raw_dir / "listing_2026-11-27.txt").unlink()
    (raw_dir / SAMPLE.name).unlink()
    (raw_dir / "listing_2026-11-28.txt").write_text("LGMar 1, 2025\nA Study of GraphsAnn Lee\nAbs.\n", encoding="utf-8")
    cause = rf"listing_2026-11-27.txt \({gold.papers} paper\(s\); no longer in the raw"
    with pytest.raises(RemovalRateExceededError, match=cause):
        run_flow(raw_dir, out)


def test_a_latin1_capture_counts_each_lost_record(prefect_server, raw_dir: Path, tmp_path: Path, gold) -> None:
    """10,000 records in Latin-1: each with an accent is a reject, so the reject rate stops the run."""
    record = "LGMar 2, 2024\nVision Models {n}José Núñez\nAbstract {n}.\n"
    accented = 10_000
    data = "".join(record.format(n=n) for n in range(accented)).encode("latin-1")
    (raw_dir / "listing_2026-11-25.txt").write_bytes(data)
    with pytest.raises(RejectRateExceededError, match=rf"{accented} of {accented + gold.papers} records rejected"):
        run_flow(raw_dir, tmp_path / "out")


def test_a_header_less_capture_is_warned_about(prefect_server, raw_dir: Path, tmp_path: Path) -> None:
    (raw_dir / "listing_2026-11-25.txt").write_text("Login\nSign up\n", encoding="utf-8")
    summary = run_flow(raw_dir, tmp_path / "out")
    assert summary.published
    assert any("listing_2026-11-25.txt: no record header" in w for w in summary.warnings)


def test_links_out_of_the_raw_folder_are_not_published(prefect_server, raw_dir: Path, tmp_path: Path) -> None:
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n", encoding="utf-8")
    (raw_dir / "y.txt").symlink_to(secret)
    out = tmp_path / "out"
    summary = run_flow(raw_dir, out)
    assert summary.warnings == ["y.txt: skipped: a link that leads outside the root: not followed"]
    rejects = version_tables(out / "latest", ["rejects"])["rejects"]
    assert "root:x" not in "".join(rejects["raw"])
    store = Store.open(out)
    manifest = store.manifest(store.resolve("latest"))
    assert [i["path"] for i in manifest.get("inputs")] == [SAMPLE.name]
    assert manifest.get("skipped_inputs") == [summary.warnings[0]]


def test_a_file_name_that_is_not_utf8_does_not_crash_the_run(prefect_server, raw_dir: Path, tmp_path: Path) -> None:
    path = os.fsencode(raw_dir) + b"/caf\xe9_2026-11-20.txt"
    with open(path, "wb") as handle:  # noqa: PTH123 - a bytes path
        handle.write(b"LGMar 1, 2025\nA Study of CafesAnn Lee\nAbstract.\n")
    out = tmp_path / "out"
    summary = run_flow(raw_dir, out)
    assert summary.published
    assert "caf\\xe9_2026-11-20.txt: renamed" in summary.warnings[0]
    papers = version_tables(out / "latest", ["papers"])["papers"]
    assert "caf\\xe9_2026-11-20.txt" in set(papers["source_file"])
    report_markdown(summary).encode("utf-8")  # printable


def test_a_first_run_with_no_usable_record_publishes_nothing(prefect_server, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "listing_2026-11-26.txt").write_bytes(b"")
    with pytest.raises(NothingToPublishError, match="a first version without papers is not published"):
        run_flow(raw, tmp_path / "out")
    assert Store.open(tmp_path / "out").version_ids() == []


def test_reject_threshold_publishes_nothing_and_says_where_rejects_are(prefect_server, tmp_path: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    (raw / "listing_2026-01-01.txt").write_text(P1 + "XXMar 1, 2025\nBad SuffixAnn Lee\nAbstract.\n", encoding="utf-8")
    with pytest.raises(RejectRateExceededError, match=r"1 of 2 records rejected \(50.0% > 5.0%\)") as err:
        run_flow(raw, out)
    assert Store.open(out).version_ids() == []
    assert Store.open(out).latest_id() is None
    csv = Path(str(err.value).rsplit(" ", 1)[-1])
    assert csv.is_file()
    assert pd.read_csv(csv)["rule"].tolist() == ["unknown_category"]
    refused = json.loads((csv.parent / "manifest.json").read_text(encoding="utf-8"))
    assert (refused["records"], refused["rejects"], refused["schema_fingerprint"]) == (2, 1, schema_fingerprint())
    assert run_flow(raw, out, max_reject_rate=0.5).published
