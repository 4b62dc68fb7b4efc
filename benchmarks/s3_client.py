"""Which S3 client: obstore (the Rust object_store delta-rs uses) beside boto3, each fresh against SeaweedFS.

Run: ``.venv/bin/python -m benchmarks.s3_client [--rounds 5] [--mb 64]``.

Each round starts one Python process per client, alternating which goes first, that imports the
client, makes it from the standard AWS environment, and then writes and reads a small object, a
put-if-absent that must lose, and a `--mb` MB object up and down. Printed per client: the process's
PSS growth over a bare interpreter (what the client costs a run's memory), the seconds to import
and make the first request, and the seconds of the large transfer; medians over the rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.scale import ROOT, log

PROBE = r"""
import json, os, sys, time
import psutil

def pss() -> float:
    return psutil.Process().memory_full_info().pss

client, size = sys.argv[1], int(sys.argv[2])
payload = os.urandom(size)
base = pss()
started = time.perf_counter()
if client == "boto3":
    import boto3, botocore.exceptions
    s3 = boto3.session.Session().client("s3")
    s3.put_object(Bucket="listings", Key="probe/small", Body=b"1")
    s3.get_object(Bucket="listings", Key="probe/small")["Body"].read()
    try:
        s3.put_object(Bucket="listings", Key="probe/small", Body=b"2", IfNoneMatch="*")
        raise SystemExit("put-if-absent overwrote")
    except botocore.exceptions.ClientError:
        pass
    first = time.perf_counter() - started
    moved = time.perf_counter()
    s3.put_object(Bucket="listings", Key="probe/large", Body=payload)
    assert s3.get_object(Bucket="listings", Key="probe/large")["Body"].read() == payload
else:
    import obstore
    from obstore.store import S3Store
    store = S3Store("listings", client_options={"allow_http": True})
    obstore.put(store, "probe/small", b"1")
    bytes(obstore.get(store, "probe/small").bytes())
    try:
        obstore.put(store, "probe/small", b"2", mode="create")
        raise SystemExit("put-if-absent overwrote")
    except obstore.exceptions.AlreadyExistsError:
        pass
    first = time.perf_counter() - started
    moved = time.perf_counter()
    obstore.put(store, "probe/large", payload)
    assert bytes(obstore.get(store, "probe/large").bytes()) == payload
transfer = time.perf_counter() - moved
print(json.dumps({"pss_growth": pss() - base, "first_request_s": first, "transfer_s": transfer}))
"""


def run_one(client: str, size: int, env: dict[str, str]) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", PROBE, client, str(size)], capture_output=True, text=True, env=env,
                          cwd=ROOT, check=True, timeout=600)  # fmt: skip
    return json.loads(done.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.s3_client", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mb", type=int, default=64, help="size of the large object (default: %(default)s)")
    args = parser.parse_args(argv)
    from tests.s3server import start_s3_server

    with tempfile.TemporaryDirectory(prefix="bench-s3-client-") as work:
        server = start_s3_server(Path(work) / "seaweedfs")
        try:
            import os

            env = {**os.environ, **server.env()}
            found: dict[str, list[dict[str, float]]] = {"obstore": [], "boto3": []}
            for n in range(args.rounds):
                for client in ["obstore", "boto3"] if n % 2 == 0 else ["boto3", "obstore"]:
                    found[client].append(run_one(client, args.mb << 20, env))
                    log(f"round {n + 1}, {client}: {found[client][-1]}")
        finally:
            server.stop()
    print(
        f"| client | PSS growth MiB (median of {args.rounds}) | import + first requests s "
        f"| {args.mb} MB up and down s |"
    )
    print("|---|---:|---:|---:|")
    for client, rows in found.items():
        growth = statistics.median(r["pss_growth"] for r in rows) / 2**20
        first = statistics.median(r["first_request_s"] for r in rows)
        transfer = statistics.median(r["transfer_s"] for r in rows)
        print(f"| {client} | {growth:.1f} | {first:.2f} | {transfer:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
