"""The fixed cost of a run, and what removes it: Prefect's temporary server.

Times, in fresh processes, a bare Prefect flow with one no-op task and `python -m pipeline run` on
the sample (into a new folder each time): first as a one-off run does (no server configured: each
starts Prefect's temporary server and stops it), then against one running server
(`prefect server start` on 127.0.0.1, `PREFECT_API_URL` set), alternating. The difference is what
the temporary server costs a run.
Run: ``.venv/bin/python -m benchmarks.startup [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.scale import BARE_FLOW, machine, machine_label, prefect_server

ROOT = Path(__file__).resolve().parent.parent


def timed(command: list[str], cwd: Path, api_url: str | None) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    if api_url:
        env["PREFECT_API_URL"] = api_url
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    found: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "prefect-home"
        home.mkdir()
        with prefect_server(home, Path(tmp)) as url:
            for i in range(args.repeat):
                for mode, api in (("temporary server", None), ("running server", url))[:: 1 if i % 2 == 0 else -1]:
                    found.setdefault(("bare flow", mode), []).append(
                        timed([sys.executable, "-c", BARE_FLOW], Path(tmp), api)
                    )
                    out = Path(tmp) / f"out-{mode.split()[0]}-{i}"
                    command = [
                        sys.executable,
                        "-m",
                        "pipeline",
                        "run",
                        "--raw",
                        str(ROOT / "data/raw"),
                        "--out",
                        str(out),
                    ]
                    found.setdefault(("sample run", mode), []).append(timed(command, Path(tmp), api))
    print(f"## The fixed cost of a run ({machine_label(machine())}), medians of {args.repeat}")
    print()
    print("| run | no server configured (temporary server) | against a running server | the temporary server's cost |")
    print("|---|---:|---:|---:|")
    for run in ("bare flow", "sample run"):
        temporary = statistics.median(found[run, "temporary server"])
        running = statistics.median(found[run, "running server"])
        print(f"| {run} | {temporary:.1f} s | {running:.1f} s | {temporary - running:.1f} s |")


if __name__ == "__main__":
    main()
