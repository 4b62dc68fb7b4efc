"""Two runs at once on one dataset folder: each waits for the writer lock and publishes a version of its own inputs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.published import Store
from tests.assembly import version_tables
from tests.conftest import LineWatcher

pytestmark = pytest.mark.flow

P1 = "LGMar 1, 2025\nA Study of GraphsSébastien Bubeck, Ann Lee\nAbstract one.\n"
P2 = "CLMar 2, 2025\nLanguage Models RevisitedBo Chen, Cy Wu\nAbstract two.\n"
P3 = "CVMar 3, 2025\nVision at ScaleŁukasz Kaiser · openai\nAbstract three.\n"


@pytest.mark.subprocess
def test_two_runs_at_once_publish_one_version_each_in_order(cli_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    raws = []
    for name, text in (("a", P1 + P2), ("b", P3)):
        raw = tmp_path / name
        raw.mkdir()
        (raw / f"listing_2026-01-0{len(raws) + 1}.txt").write_text(text, encoding="utf-8")
        raws.append(raw)

    # Hold the writer lock until both runs have parsed their input and say they wait for it.
    with Store.open(out).lock(5):
        procs = [
            subprocess.Popen(
                # each run replaces the other's papers: allow the removal
                [
                    sys.executable,
                    "-m",
                    "pipeline",
                    "run",
                    "--raw",
                    str(raw),
                    "--out",
                    str(out),
                    "--max-removed-rate",
                    "1",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=cli_env,
            )
            for raw in raws
        ]
        watchers = [LineWatcher(p.stderr, "waiting for the writer lock") for p in procs]
        for proc, watcher in zip(procs, watchers, strict=True):
            assert watcher.seen.wait(timeout=600), (proc.poll(), watcher.lines)
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    logs = [w.join() for w in watchers]
    assert [p.returncode for p in procs] == [0, 0], logs
    published = sorted(re.search(r"published new version (\d+)", o).group(1) for o in outputs)  # type: ignore[union-attr]
    assert published == ["000001", "000002"]
    store = Store.open(out)
    assert store.version_ids() == ["000001", "000002"]
    first, second = (store.manifest(v) for v in ("000001", "000002"))
    assert (first.parent_id, second.parent_id) == (None, "000001")
    for manifest in (first, second):
        # never a mix: every paper of a version comes from that version's own inputs
        papers = version_tables(out / "versions" / manifest.id, ["papers"])["papers"]
        assert set(papers["source_file"]) == {i["path"] for i in manifest.document["inputs"]}
        assert len(manifest.document["inputs"]) == 1
    assert set(version_tables(out / "versions" / "000002", ["changes"])["changes"]["change"]) == {"added", "removed"}
