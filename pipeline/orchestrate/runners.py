"""Where a run's tasks run: Prefect's thread pool on this machine by default, or a Dask cluster."""

from __future__ import annotations

from typing import Any

from prefect.task_runners import TaskRunner


def task_runner(workers: int | None, dask_address: str | None) -> TaskRunner[Any] | None:
    """A Dask task runner for the per-file tasks (an existing cluster, or a local one of N
    worker processes), or None for Prefect's default thread pool on this machine."""
    if dask_address is None and workers is None:
        return None
    # Imported only when asked for: Dask is heavy to import, and a run on this machine never needs it.
    from prefect_dask import DaskTaskRunner

    if dask_address is not None:
        return DaskTaskRunner(address=dask_address)
    assert workers is not None
    return DaskTaskRunner(cluster_kwargs=local_cluster_kwargs(workers))


def local_cluster_kwargs(workers: int) -> dict[str, Any]:
    """A local Dask cluster of `workers` processes that listens on 127.0.0.1 only: a dashboard
    shows task data to anyone who can reach it. The scheduler's HTTP endpoints take a free port
    (with no address they still try 8787, and warn on stderr when another cluster holds it)."""
    return {
        "n_workers": workers,
        "threads_per_worker": 1,
        "processes": True,
        "host": "127.0.0.1",
        "dashboard_address": "127.0.0.1:0",
        "worker_dashboard_address": None,
    }
