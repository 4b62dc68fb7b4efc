"""The flow's steps: what cannot reach Prefect or cannot be pruned after publishing is no failure of the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import StoreWriteError


@pytest.mark.flow
def test_reports_that_cannot_reach_prefect_do_not_fail_a_published_run(
    prefect_server, raw_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    import httpx

    from pipeline.orchestrate import steps
    from tests.conftest import run_flow

    def unreachable(**kwargs):
        raise httpx.ConnectError("All connection attempts failed")

    monkeypatch.setattr(steps, "create_markdown_artifact", unreachable)
    summary = run_flow(raw_dir, tmp_path / "out")
    assert (summary.published, summary.version_id) == (True, "000001")


@pytest.mark.flow
def test_a_version_that_cannot_be_pruned_is_a_warning(
    prefect_server, raw_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    from pipeline.orchestrate import steps
    from tests.conftest import run_flow

    out = tmp_path / "out"
    run_flow(raw_dir, out)

    def refuse(store, keep: int) -> list[str]:
        raise StoreWriteError("cannot write versions/000001: Operation not permitted")

    monkeypatch.setattr(steps, "prune", refuse)
    summary = run_flow(raw_dir, out, force=True, keep=1)
    assert (summary.published, summary.version_id, summary.pruned) == (True, "000002", [])
