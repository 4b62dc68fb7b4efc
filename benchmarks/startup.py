"""Fixed cost of a run: `python -m pipeline run` on the sample vs a bare Prefect flow with one no-op task.

Both run in a fresh process with Prefect's temporary server, as a one-off run does.
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

ROOT = Path(__file__).resolve().parent.parent
BARE_FLOW = """
from prefect import flow, task

@task
def noop() -> None:
    return None

@flow
def bare() -> None:
    noop()

bare()
"""


def timed(command: list[str], cwd: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    bare, sample = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            bare.append(timed([sys.executable, "-c", BARE_FLOW], Path(tmp)))
            out = Path(tmp) / f"out{i}"
            sample.append(
                timed(
                    [sys.executable, "-m", "pipeline", "run", "--raw", str(ROOT / "data/raw"), "--out", str(out)],
                    Path(tmp),
                )
            )
    b, s = statistics.median(bare), statistics.median(sample)
    print(f"bare Prefect flow, one no-op task: median {b:.2f} s  ({', '.join(f'{x:.2f}' for x in bare)})")
    print(f"pipeline run on the sample:        median {s:.2f} s  ({', '.join(f'{x:.2f}' for x in sample)})")
    print(f"ratio: {s / b:.2f}x; the pipeline's own share: {s - b:.2f} s")


if __name__ == "__main__":
    main()
