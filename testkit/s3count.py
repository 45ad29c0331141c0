"""moto's S3 server (testkit/s3.py) counting the requests it answers, by kind: for benches that measure requests.

`python -m testkit.s3count PORT` serves S3 on 127.0.0.1:PORT as `python -m moto.server` does, and answers
`GET /__counts__` with the counts so far (JSON: GET, GET-range, HEAD, PUT, LIST, DELETE, POST, other) and
`POST /__counts__` by zeroing them. The counts are taken at the server, so they include every request the
S3 client makes (a HEAD before a ranged read, a LIST behind an `exists` on a folder), not just those the
storage layer asks for.
"""
from __future__ import annotations

import json
import sys
import threading
from collections import Counter

from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

COUNTS_PATH = "/__counts__"


def kind(environ: dict) -> str:
    """The request's kind: a GET of an object (ranged or whole), a LIST (a GET of a bucket with a listing
    query), or the method."""
    method = environ["REQUEST_METHOD"]
    if method != "GET":
        return method if method in ("HEAD", "PUT", "DELETE", "POST") else "other"
    path, query = environ.get("PATH_INFO", "/"), environ.get("QUERY_STRING", "")
    if path.strip("/").count("/") == 0 or "list-type" in query or "prefix=" in query or "delimiter" in query:
        return "LIST"
    return "GET-range" if "HTTP_RANGE" in environ else "GET"


def counting(app):
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def wrapped(environ, start_response):
        if environ.get("PATH_INFO") == COUNTS_PATH:
            with lock:
                body = json.dumps(dict(counts)).encode()
                if environ["REQUEST_METHOD"] == "POST":
                    counts.clear()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        with lock:
            counts[kind(environ)] += 1
        return app(environ, start_response)

    return wrapped


def main(port: int) -> None:
    app = DomainDispatcherApplication(create_backend_app)
    run_simple("127.0.0.1", port, counting(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main(int(sys.argv[1]))
