"""A loopback HTTP front for the sandbox that the tests control: it forwards every request to the
sandbox and answers, in front of it, the statuses a test asks for on chosen paths (the sandbox's own
fault knobs only touch data requests, never ``POST /v1/oauth``)::

    with HttpFront(sandbox.base_url, fail={"/v1/oauth": [503, 503]}) as front:
        hook = make_hook(host=front.base_url)   # the first two token requests get 503, then the real one

``front.seen`` lists (method, path, status) of every request, in order. Two more controls, per path:
``hold={"/v1/alerts/query-alerts": 1.0}`` keeps each answer back that many seconds (so requests sent
at once are open at once; ``front.most_open[path]`` is the most that were), and ``edit`` rewrites a
JSON answer: ``edit(path, request_json, answer_json, n)`` (``n``: how many requests of that path came
before) returns the body to send instead, or None to send the sandbox's. Bounded: a threading server
on 127.0.0.1 whose handlers time out; ``close()`` shuts it down and joins its thread.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import urlsplit

import requests

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


class HttpFront:
    def __init__(self, target: str, *, fail: dict[str, list[int]] | None = None, hold: dict[str, float] | None = None,
                 edit: Callable[[str, object, object, int], object] | None = None) -> None:
        self.target = target.rstrip("/")
        self.fail = {path: list(statuses) for path, statuses in (fail or {}).items()}
        self.hold, self.edit = dict(hold or {}), edit
        self.seen: list[tuple[str, str, int]] = []
        self.most_open: Counter[str] = Counter()
        self._open: Counter[str] = Counter()
        self._asked: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._upstream = requests.Session()
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 30

            def log_message(self, *args) -> None:  # quiet: nothing of a request reaches the test logs
                pass

            def _handle(self) -> None:
                path = urlsplit(self.path).path
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with front._lock:
                    planned = front.fail.get(path)
                    status = planned.pop(0) if planned else None
                    before, front._asked[path] = front._asked[path], front._asked[path] + 1
                    front._open[path] += 1
                    front.most_open[path] = max(front.most_open[path], front._open[path])
                try:
                    self._answer(path, body, status, before)
                finally:
                    with front._lock:
                        front._open[path] -= 1

            def _answer(self, path: str, body: bytes, status: int | None, before: int) -> None:
                if status is not None:
                    payload = json.dumps({"title": "injected by the test's HTTP front", "status": status}).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    if status == 429:
                        self.send_header("Retry-After", "0")
                    self.end_headers()
                    self.wfile.write(payload)
                else:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", *_HOP_BY_HOP)}
                    answer = front._upstream.request(self.command, front.target + self.path, headers=headers,
                                                     data=body, timeout=30)
                    status, content = answer.status_code, answer.content
                    if front.edit is not None and status == 200:
                        edited = front.edit(path, json.loads(body) if body else None, answer.json(), before)
                        content = content if edited is None else json.dumps(edited).encode()
                    time.sleep(front.hold.get(path, 0))
                    self.send_response(status)
                    for name, value in answer.headers.items():
                        if name.lower() not in _HOP_BY_HOP:
                            self.send_header(name, value)
                    self.send_header("Content-Length", str(len(content)))
                    self.end_headers()
                    self.wfile.write(content)
                with front._lock:
                    front.seen.append((self.command, path, status))

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="http-front", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        self._upstream.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
