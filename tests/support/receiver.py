"""A real HTTP receiver for notification tests: a process of its own that records every POST it gets.

``python tests/support/receiver.py`` binds 127.0.0.1 on a free port and prints it. ``POST /<any path>`` is
recorded (path, JSON body, arrival time) and answered 200, or as the path's fault says: ``PUT /_control/<path>``
with ``{"status": 500}`` or ``{"hang": 30}`` (seconds before answering); ``GET /_received`` lists what arrived.
``Receiver`` starts and stops it from a test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_received: list[dict[str, Any]] = []
_faults: dict[str, dict[str, Any]] = {}
_lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: Any = None) -> None:
        data = json.dumps(body if body is not None else {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self) -> None:
        with _lock:
            self._answer(200, list(_received))

    def do_PUT(self) -> None:
        path = self.path.removeprefix("/_control")
        with _lock:
            _faults[path] = json.loads(self._body() or b"{}")
        self._answer(200)

    def do_POST(self) -> None:
        raw = self._body()
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        with _lock:
            _received.append({"path": self.path, "body": body, "at": time.time()})
            fault = dict(_faults.get(self.path, {}))
        if fault.get("hang"):
            time.sleep(float(fault["hang"]))
        self._answer(int(fault.get("status", 200)))


class Receiver:
    """The receiver process; ``url(path)`` is an apprise ``json://`` URL that posts to it."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, __file__], stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())

    def url(self, path: str) -> str:
        return f"json://127.0.0.1:{self.port}/{path.strip('/')}"

    def fault(self, path: str, **fault: Any) -> None:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/_control/{path.strip('/')}", method="PUT",
                                         data=json.dumps(fault).encode())
        urllib.request.urlopen(request, timeout=5).read()

    def received(self, path: str | None = None) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/_received", timeout=5) as answer:
            got: list[dict[str, Any]] = json.loads(answer.read())
        return [r for r in got if path is None or r["path"] == "/" + path.strip("/")]

    def wait_for(self, count: int, path: str | None = None, timeout: float = 15.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            got = self.received(path)
            if len(got) >= count or time.monotonic() > deadline:
                return got
            time.sleep(0.05)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(timeout=5)


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()
