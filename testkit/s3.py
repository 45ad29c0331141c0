"""A real S3 API on loopback for tests and benches: moto's standalone server on 127.0.0.1.

Why moto and not Ceph's radosgw: Debian 12's radosgw is Ceph 16.2 (Pacific); the standalone `dbstore`
backend and the `rgw_backend_store` option that selects it (ceph/ceph PR 43054) came after Pacific, and
only in builds with WITH_RADOSGW_DBSTORE. Without it radosgw needs a RADOS cluster (monitors, OSDs).
moto's server speaks the S3 REST API over HTTP (botocore's own request parser), which is what pyarrow's
S3 client talks to; it keeps objects in memory. It is a PyPI package (`dev` extra), started here per use.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # (the child imports testkit from here)


@dataclass
class S3Server:
    endpoint: str   # http://127.0.0.1:<port>
    bucket: str

    def uri(self, prefix: str) -> str:
        return f"s3://{self.bucket}/{prefix}"

    @property
    def env(self) -> dict[str, str]:
        """What a process needs to reach it: the usual AWS variables, read by pyarrow's S3 filesystem."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}

    def requests(self, reset: bool = False) -> dict[str, int]:
        """The requests answered so far, by kind (a server started with `counting=True`: testkit/s3count.py);
        `reset` zeroes the counts after reading them."""
        req = urllib.request.Request(f"{self.endpoint}/__counts__", method="POST" if reset else "GET")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def keys(self, prefix: str) -> list[str]:
        import pyarrow.fs as pafs

        fs = pafs.S3FileSystem(endpoint_override=self.endpoint, scheme="http", access_key="testing",
                               secret_key="testing", region="us-east-1")
        infos = fs.get_file_info(pafs.FileSelector(f"{self.bucket}/{prefix}", recursive=True, allow_not_found=True))
        return sorted(i.path[len(self.bucket) + 1:] for i in infos if i.type == pafs.FileType.File)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def s3_server(bucket: str = "curate", counting: bool = False) -> Iterator[S3Server]:
    """Start moto's S3 server on 127.0.0.1, create `bucket`, stop it afterwards; `counting`: one that counts
    its requests (`S3Server.requests`)."""
    port = _free_port()
    command = ["-m", "testkit.s3count", str(port)] if counting else ["-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, *command], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    server = S3Server(f"http://127.0.0.1:{port}", bucket)
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"{server.endpoint}/moto-api/", timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"moto's S3 server did not start on port {port}") from None
                time.sleep(0.1)
        req = urllib.request.Request(f"{server.endpoint}/{bucket}", method="PUT")  # CreateBucket
        urllib.request.urlopen(req, timeout=10).close()
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def unique_prefix(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


@contextmanager
def s3_environment(server: S3Server) -> Iterator[None]:
    """The server's variables in os.environ for the duration (for in-process runs and the Ray they start)."""
    saved = {k: os.environ.get(k) for k in server.env}
    os.environ.update(server.env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
