"""First-ever one-off runs on a busy machine: do they publish, and how long do they take?

Starts 6 busy-loop processes and one fsync-heavy writer (as on a busy shared CI runner), then
runs `python -m pipeline run` on the sample, each run with a fresh PREFECT_HOME (so its temporary
Prefect server must create and migrate its database), and prints each run's exit code and time.

Run: ``.venv/bin/python -m benchmarks.under_load [--runs 2] [--sequential] [--busy 6]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def busy_loop() -> None:
    """Burn a core until killed."""
    while True:
        pass


def fsync_writer(path: str) -> None:
    """Write and fsync 8 MiB over and over until killed: SQLite's commits wait behind it."""
    block = os.urandom(1 << 20)
    while True:
        with open(path, "wb") as handle:  # noqa: PTH123 - a plain loop of writes
            for _ in range(8):
                handle.write(block)
                handle.flush()
                os.fsync(handle.fileno())


def one_off_run(work: Path, index: int) -> subprocess.Popen[str]:
    """A first-ever run: fresh Prefect home, no server configured, the sample as input."""
    home = work / f"prefect-home-{index}"
    home.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_HOME": str(home)}
    for name in ("PREFECT_API_URL", "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"):
        env.pop(name, None)
    command = [sys.executable, "-m", "pipeline", "run", "--raw", str(ROOT / "data" / "raw"),
               "--out", str(work / f"out-{index}"), "--quiet"]  # fmt: skip
    return subprocess.Popen(command, env=env, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--busy", type=int, default=6, help="busy-loop processes (default: %(default)s)")
    parser.add_argument("--sequential", action="store_true", help="one run after the other (default: together)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        load = [multiprocessing.Process(target=busy_loop, daemon=True) for _ in range(args.busy)]
        load.append(multiprocessing.Process(target=fsync_writer, args=(str(work / "fsync.bin"),), daemon=True))
        for process in load:
            process.start()
        print(f"load: {args.busy} busy loops + 1 fsync writer on {os.cpu_count()} cores", flush=True)
        try:
            results = []
            started = time.perf_counter()
            if args.sequential:
                for index in range(args.runs):
                    begin = time.perf_counter()
                    proc = one_off_run(work, index)
                    out, err = proc.communicate()
                    results.append((index, proc.returncode, time.perf_counter() - begin, out, err))
            else:
                procs = [(index, one_off_run(work, index)) for index in range(args.runs)]
                for index, proc in procs:
                    out, err = proc.communicate()
                    results.append((index, proc.returncode, time.perf_counter() - started, out, err))
        finally:
            for process in load:
                process.kill()
    for index, code, seconds, out, err in results:
        outcome = next((line.strip("*") for line in out.splitlines() if "version" in line), "")
        print(f"run {index + 1}: exit {code} after {seconds:.0f} s  {outcome or err.strip().splitlines()[-1:]}")
    published = sum(1 for _, code, *_ in results if code == 0)
    print(f"{published} of {len(results)} first-ever runs published under load")


if __name__ == "__main__":
    main()
