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
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmarks.scale import BARE_FLOW, machine, machine_label

ROOT = Path(__file__).resolve().parent.parent


def timed(command: list[str], cwd: Path, api_url: str | None) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    if api_url:
        env["PREFECT_API_URL"] = api_url
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def running_server(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`prefect server start` on 127.0.0.1 and a free port, once it answers /health."""
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("prefect server start exited")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return server, url
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise RuntimeError("prefect server start did not answer within 600 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    found: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        server, url = running_server(Path(tmp) / "prefect-home")
        try:
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
        finally:
            server.terminate()
            server.wait(30)
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
